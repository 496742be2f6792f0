"""Alignment scores from a judge's answers, per image, per prompt and per question type.

Input: one row per (image, question) with the judge's P(yes) (``answers`` frame: image_id, prompt_id,
question_id, skill, answer (the expected one), p_yes, parents). Derived per row:
``p_right`` = P(yes) if the expected answer is yes, else 1 - P(yes); ``correct`` = 1[p_right >= 0.5].

Per image (``whole-prompt`` questions only in VQAScore, every other question in the rest):

- ``vqascore``     P(yes) of 'Does this figure show "{prompt}"?' (Lin et al. 2024)
- ``tifa``         mean of ``correct`` over the image's questions (Hu et al. 2023)
- ``dsg``          the same mean over the DSG question set without gating
- ``dsg_gated``    ``correct`` set to 0 for a question any of whose parents (after gating, so
                   transitively) scored 0, then the mean (Cho et al. 2024)
- ``soft_tifa_am`` arithmetic mean of ``p_right`` (atom level, GenEval 2)
- ``soft_tifa_gm`` geometric mean of ``p_right`` (prompt level; 0 if any is 0), = scipy.stats.gmean

Per prompt: the mean over the prompt's images. Overall: the image-weighted mean with a 95%
percentile cluster bootstrap over prompts (``stats.resampling``); the estimand treats the suite's
prompts as a sample of the ways to ask. Per skill: the share of correct answers among the skill's
(image, question) pairs with the shares' interval rule (a Wilson interval on the effective n, not
estimable below 5 prompts: ``stats.clusters.share_interval``), and the mean ``p_right``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from t2i_audit.errors import InputError
from t2i_audit.stats.resampling import DEFAULT_REPS, cluster_bootstrap_mean, cluster_bootstrap_proportion

SCORES = ("vqascore", "tifa", "dsg", "dsg_gated", "soft_tifa_am", "soft_tifa_gm")
WHOLE = "whole-prompt"
ESTIMAND = ("prompts treated as a sample of the ways to ask (between-prompt variation in the interval): "
            "95% percentile cluster bootstrap over prompts for scores; shares: a Wilson interval on the "
            "effective n (design effect from that bootstrap, t quantile on prompts - 1 df)")


def prepare(answers: pd.DataFrame) -> pd.DataFrame:
    """Add ``p_right`` and ``correct``; check the columns and probabilities."""
    need = ("image_id", "prompt_id", "question_id", "skill", "answer", "p_yes")
    missing = [c for c in need if c not in answers.columns]
    if missing:
        raise InputError(f"answers: missing column(s) {', '.join(missing)}")
    a = answers.copy()
    p = a["p_yes"].to_numpy(np.float64)
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise InputError("answers: p_yes must be a probability in [0, 1] for every (image, question)")
    yes = a["answer"].astype(str).str.lower().eq("yes").to_numpy()
    a["p_right"] = np.where(yes, p, 1.0 - p)
    a["correct"] = (a["p_right"] >= 0.5).astype(np.float64)
    if "parents" not in a.columns:
        a["parents"] = [()] * len(a)
    return a


def gmean(x: np.ndarray) -> float:
    """Geometric mean, 0 when any value is 0 (scipy.stats.gmean's value)."""
    x = np.asarray(x, dtype=np.float64)
    if (x <= 0).any():
        return 0.0
    return float(np.exp(np.mean(np.log(x))))


def gated(correct: dict[str, float], parents: dict[str, tuple]) -> dict[str, float]:
    """DSG gating of one image: a question counts 0 when any parent (itself gated) counts 0.
    Parents outside the image's question set are ignored."""
    out: dict[str, float] = {}

    def value(q: str, stack: tuple = ()) -> float:
        if q in out:
            return out[q]
        if q in stack:
            raise InputError(f"question dependencies form a cycle through {q!r}")
        v = correct[q]
        if v > 0 and any(value(p, stack + (q,)) == 0 for p in parents.get(q, ()) if p in correct):
            v = 0.0
        out[q] = v
        return v

    for q in correct:
        value(q)
    return out


def image_scores(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per image: prompt_id, image_id, and every score it has (NaN where it has no questions)."""
    a = prepare(answers)
    rows = []
    for (pid, iid), g in a.groupby(["prompt_id", "image_id"], sort=True):
        whole = g[g["skill"] == WHOLE]
        qs = g[g["skill"] != WHOLE]
        r = {"prompt_id": pid, "image_id": iid, "vqascore": float(whole["p_yes"].mean()) if len(whole) else np.nan}
        if len(qs):
            c = dict(zip(qs["question_id"], qs["correct"]))
            gq = gated(c, dict(zip(qs["question_id"], qs["parents"].map(tuple))))
            pr = qs["p_right"].to_numpy()
            r.update(tifa=float(qs["correct"].mean()), dsg=float(qs["correct"].mean()),
                     dsg_gated=float(np.mean(list(gq.values()))), soft_tifa_am=float(pr.mean()),
                     soft_tifa_gm=gmean(pr), n_questions=len(qs))
        rows.append(r)
    out = pd.DataFrame(rows)
    for s in SCORES:
        if s not in out.columns:
            out[s] = np.nan
    return out


def prompt_scores(images: pd.DataFrame) -> pd.DataFrame:
    """Per prompt: the mean of each score over the prompt's images, and the image count."""
    g = images.groupby("prompt_id", sort=True)
    out = g[list(SCORES)].mean()
    out["n_images"] = g.size()
    return out.reset_index()


def _est(values, clusters, reps: int, seed: int, proportion: bool = False) -> dict | None:
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    f = cluster_bootstrap_proportion if proportion else cluster_bootstrap_mean
    e = f(v[ok] if not proportion else v[ok].astype(bool), np.asarray(clusters)[ok], reps=reps, seed=seed)
    return {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n, "n_prompts": e.n_clusters,
            "method": e.method}


def overall(images: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0) -> dict[str, dict]:
    """Each score over all images with its 95% cluster interval (None: no image has it)."""
    out = {}
    for i, s in enumerate(SCORES):
        e = _est(images[s].to_numpy(), images["prompt_id"].to_numpy(), reps, seed + i)
        if e is not None:
            out[s] = e
    return out


def skill_table(answers: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0) -> pd.DataFrame:
    """Per skill: accuracy (share correct) and Soft-TIFA (mean p_right) with cluster intervals."""
    a = prepare(answers)
    rows = []
    for i, (skill, g) in enumerate(a.groupby("skill", sort=True)):
        for stat, col, prop in (("accuracy", "correct", True), ("soft", "p_right", False)):
            e = _est(g[col].to_numpy(), g["prompt_id"].to_numpy(), reps, seed + 17 * i, prop)
            rows.append({"skill": skill, "statistic": stat, **e})
    return pd.DataFrame(rows)
