"""A judge's error, measured and corrected with labels on a random subset of (image, question) pairs.

Labels file (CSV): ``image`` (image id or path as in the manifest), ``question_id``, ``label`` in
{yes, no, unsure}. A pair is *right* when the image shows what the question asks (the label equals the
question's expected answer). Per question type (skill), with the judge's prediction f on every pair
(its soft P(right) = p_right where it gives token probabilities, else the hard reading 1[its answer is
the expected one]) and the label Y = 1[right] on the labelled ones, the share of right pairs is
estimated by PPI++ (``ppi_soft``: the bias engine's estimator ``stats.labelled.ppi_shares``, two
classes right / wrong, extended to a soft f; 'unsure' labels count in neither class, so the estimand
is the share among pairs a labeller can read). Interval: a Wilson interval on the labelled pairs' effective n (``stats.clusters.share_interval``;
not estimable below 5 prompts), from the cluster bootstrap over
prompts, labelled and unlabelled pairs of a prompt moving together.

The judge's measured accuracy per skill (agreement with the labels, Wilson interval) is reported, and
compared with the accuracy it was calibrated at, when given: a difference of two independent
proportions (``stats.proportions.independent_difference``), Bonferroni over skills at alpha 0.05.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.errors import InputError
from t2i_audit.evals.alignment.ppi_soft import ppi_sizes, prompt_sums, right_share
from t2i_audit.stats.clusters import ppi_binomial_n, share_interval
from t2i_audit.stats.labelled import MIN_LABELS
from t2i_audit.stats.proportions import independent_difference
from t2i_audit.stats.resampling import cluster_draw_counts, wilson_interval

LABELS = ("yes", "no", "unsure")
NOT_LABELLED = -9
METHOD = ("PPI++ (power-tuned lambda, per skill; prediction: the judge's soft P(right) where it gives one, else "
          "its hard answer) of the share of right (image, question) pairs among readable ones; 95% Wilson "
          "interval on PPI++'s effective n (design effect from a cluster bootstrap over prompts, "
          "{reps} reps; t quantile on prompts - 1 df; not estimable below 5 prompts)")


def read_labels(path: str | Path) -> pd.DataFrame:
    """The labels CSV as a frame (image, question_id, label); one-line errors name file and line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--labels {p}: no such file")
    rows = []
    with open(p, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        head = reader.fieldnames or []
        img_col = next((c for c in ("image", "image_id", "path") if c in head), None)
        if img_col is None or "question_id" not in head or "label" not in head:
            raise InputError(f"{p}:1: need columns image (or image_id/path), question_id, label; got {', '.join(head)}")
        for r in reader:
            lab = (r["label"] or "").strip().lower()
            if lab not in LABELS:
                raise InputError(f"{p}:{reader.line_num}: label {r['label']!r}: expected yes, no or unsure")
            rows.append({"image": (r[img_col] or "").strip(), "question_id": (r["question_id"] or "").strip(),
                         "label": lab})
    out = pd.DataFrame(rows, columns=["image", "question_id", "label"])
    dup = out.duplicated(["image", "question_id"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{p}: pair ({out.image[i]}, {out.question_id[i]}) labelled twice; keep one label per pair")
    return out


def attach_labels(answers: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """answers + column ``truth`` (0 right, 1 wrong, -1 unsure, NOT_LABELLED); and the number of labels
    that matched no (image, question) pair of the run."""
    a = answers.copy()
    key = {}
    for col in ("image_id", "image_path"):
        if col in a.columns:
            key.update({(str(i), str(q)): j for j, (i, q) in enumerate(zip(a[col], a["question_id"]))})
    truth = np.full(len(a), NOT_LABELLED, dtype=np.int64)
    unmatched = 0
    expected = a["answer"].astype(str).str.lower().to_numpy()
    for img, qid, lab in zip(labels["image"], labels["question_id"], labels["label"]):
        j = key.get((img, qid))
        if j is None:
            unmatched += 1
            continue
        truth[j] = -1 if lab == "unsure" else (0 if lab == expected[j] else 1)
    a["truth"] = truth
    return a, unmatched


def ppi_right_share(pred_wrong: np.ndarray, truth: np.ndarray, prompts: np.ndarray, reps: int, seed: int,
                    f_right: np.ndarray | None = None) -> dict:
    """PPI++ share of right pairs with its cluster interval. The prediction is ``f_right`` (the judge's
    soft P(right), ``ppi_soft``) when given, else the hard reading 1 - ``pred_wrong``."""
    f = 1.0 - np.asarray(pred_wrong, dtype=np.float64) if f_right is None else np.asarray(f_right, np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    n_lab = int(((truth == 0) | (truth == 1)).sum())
    if n_lab < MIN_LABELS:
        return {"value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_labelled": n_lab,
                "note": f"too few labels: n={n_lab}; need >= {MIN_LABELS}"}
    sums = prompt_sums(f, truth, prompts)
    counts = np.concatenate(list(cluster_draw_counts(sums.shape[0], reps, seed)))
    value = float(right_share(sums.sum(0)))
    # the one interval rule of stats.clusters: a Wilson interval on PPI++'s effective n (the labelled
    # and unlabelled pairs weighed by lambda), so a share near 0 or 1 never gets zero width
    lam, n_unl, n_read = ppi_sizes(sums)
    n_floor = ppi_binomial_n(lam, n_unl, n_read)
    lo, hi, _, _, note = share_interval(value, right_share(counts @ sums), n_floor, sums.shape[0])
    out = {"value": value, "ci_low": float(lo), "ci_high": float(hi), "n_labelled": n_lab}
    return {**out, "note": note} if note else out


def calibrated_table(answers: pd.DataFrame, reps: int = 2000, seed: int = 0,
                     calibration: dict | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Per skill: raw (judge), label-calibrated (PPI++) share of right pairs, the judge's accuracy on the
    labelled pairs, and a shift flag against ``calibration`` ({skill: {"accuracy", "n"}})."""
    from t2i_audit.evals.alignment.scores import prepare

    a = prepare(answers)
    skills = sorted(set(a["skill"]))
    rows = []
    for i, s in enumerate(skills):
        g = a[a["skill"] == s]
        pred_wrong = (g["correct"].to_numpy() < 0.5).astype(np.int64)
        truth = g["truth"].to_numpy()
        prompts = g["prompt_id"].astype(str).to_numpy()
        soft = g["soft"].to_numpy(bool) if "soft" in g.columns else np.zeros(len(g), bool)
        f = np.where(soft, g["p_right"].to_numpy(), 1.0 - pred_wrong)  # soft P(right) where the judge gives it
        est = ppi_right_share(pred_wrong, truth, prompts, reps, seed + 31 * i, f)
        lab = truth >= 0
        agree = int((pred_wrong[lab] == truth[lab]).sum())
        acc_lo, acc_hi = wilson_interval(agree, int(lab.sum()), nan_if_empty=True)
        row = {"skill": s, "n_pairs": len(g), "n_prompts": len(set(prompts)), "raw": float(1 - pred_wrong.mean()),
               "calibrated": est["value"], "calibrated_ci_low": est["ci_low"], "calibrated_ci_high": est["ci_high"],
               "n_labelled": est["n_labelled"], "prediction": "soft P(right)" if soft.all() else (
                   "hard answer" if not soft.any() else "soft P(right) where available"), "n_unsure": int((truth == -1).sum()),
               "judge_accuracy": agree / lab.sum() if lab.any() else np.nan, "judge_accuracy_ci_low": acc_lo,
               "judge_accuracy_ci_high": acc_hi, "note": est.get("note", "")}
        row.update(_shift(row, (calibration or {}).get(s), alpha / max(1, len(skills))))
        rows.append(row)
    return pd.DataFrame(rows)


def _shift(row: dict, cal: dict | None, alpha: float) -> dict:
    if not cal or not np.isfinite(row["judge_accuracy"]):
        return {"calibration_accuracy": np.nan, "shift_p": np.nan, "shift_detected": None}
    k, n = int(round(cal["accuracy"] * cal["n"])), int(cal["n"])
    lo, hi = wilson_interval(k, n)
    d = independent_difference(row["judge_accuracy"], row["judge_accuracy_ci_low"], row["judge_accuracy_ci_high"],
                               k / n, lo, hi)
    return {"calibration_accuracy": k / n, "shift_p": d.p_value, "shift_detected": bool(d.p_value <= alpha)}


def shift_warnings(table: pd.DataFrame, judge: str) -> list[str]:
    """One line per skill where the judge's error on this run differs from its calibration."""
    out = []
    for r in table.itertuples():
        if r.shift_detected:
            out.append(f"warning: judge {judge} on {r.skill}: accuracy {r.judge_accuracy:.3f} on this run's "
                       f"{r.n_labelled} labels vs {r.calibration_accuracy:.3f} at calibration (p={r.shift_p:.2g}, "
                       "Bonferroni over skills): its error here differs; trust the label-calibrated column")
    return out
