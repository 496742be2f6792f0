"""The PictoWorld oracle as a labeller of (image, question) pairs, and as the truth of every pair.

- :func:`sample_pairs`: a seeded simple random sample of ``n`` pairs per question type (skill),
  drawn within the skill (the labelling design PPI++ per skill needs), independent of row order.
- :func:`oracle_labels`: 'yes' / 'no' / 'unsure' (the oracle abstains: it never guesses) per pair,
  written as the labels CSV ``image,question_id,label`` that ``align --labels`` reads.
- :func:`truth_table`: the oracle's reading of *every* pair, per skill: the share of right pairs
  among readable ones with a 95% cluster-bootstrap interval over prompts -- the figure a judge-raw
  and a label-calibrated estimate are checked against on PictoWorld. On generated images the
  oracle has its own, measured, error (``bench/world_oracle.py``); it is the truth by construction
  only on clean renders.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from t2i_audit.stats.resampling import cluster_bootstrap_proportion

TRUTH_METHOD = ("PictoWorld oracle on every (image, question) pair: share right among pairs it can read; 95% "
                "Wilson interval on the effective n (design effect from a cluster bootstrap over prompts, {reps} reps)")


def sample_pairs(answers: pd.DataFrame, n_per_skill: int, seed: int = 0) -> np.ndarray:
    """Row indices of ``n_per_skill`` pairs drawn at random without replacement within each skill (all
    of a smaller skill), seeded; the draw depends on the set of (image, question) keys, not their order."""
    keys = (answers["image_id"].astype(str) + "\x1f" + answers["question_id"].astype(str)).to_numpy()
    order = np.argsort(keys, kind="stable")
    out = []
    for skill in sorted(set(answers["skill"])):
        rows = order[answers["skill"].to_numpy()[order] == skill]
        h = int(hashlib.sha256(f"{seed}|{skill}".encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(h)
        out.append(rows[np.sort(rng.choice(len(rows), min(n_per_skill, len(rows)), replace=False))])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def oracle_labels(requests) -> list[str]:
    """The oracle's label per (image, question) request: 'yes', 'no' or 'unsure'."""
    from t2i_audit.evals.alignment.oracle_judge import oracle_label

    return oracle_label(list(requests))


def labels_frame(answers: pd.DataFrame, rows: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """The labels CSV rows (image, question_id, label) for ``rows`` of ``answers``."""
    a = answers.iloc[np.asarray(rows, dtype=np.int64)]
    return pd.DataFrame({"image": a["image_id"].astype(str).to_numpy(),
                         "question_id": a["question_id"].astype(str).to_numpy(), "label": list(labels)})


def truth_codes(answers: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """0 right, 1 wrong, -1 unreadable per pair, from oracle labels of every pair."""
    lab = np.asarray(labels, dtype=object)
    expected = answers["answer"].astype(str).str.lower().to_numpy()
    return np.where(lab == "unsure", -1, np.where(lab == expected, 0, 1)).astype(np.int64)


def truth_table(answers: pd.DataFrame, truth: np.ndarray, reps: int, seed: int) -> list[dict]:
    """Per skill: the oracle's share of right pairs among readable ones, with its cluster interval."""
    out = []
    skills = answers["skill"].to_numpy()
    prompts = answers["prompt_id"].astype(str).to_numpy()
    for i, s in enumerate(sorted(set(skills))):
        m = (skills == s) & (truth >= 0)
        if not m.any():
            continue
        e = cluster_bootstrap_proportion(truth[m] == 0, prompts[m], reps=reps, seed=seed + 13 * i)
        out.append({"skill": s, "value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n,
                    "n_prompts": e.n_clusters, "n_unsure": int(((skills == s) & (truth == -1)).sum()),
                    "method": TRUTH_METHOD.format(reps=reps)})
    return out
