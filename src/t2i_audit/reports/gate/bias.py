"""Baseline rules on bias class shares: the difference run − baseline from the two runs' counts.

A bias share is a proportion of images, so the difference of two runs' shares is a two-sample
comparison of proportions, and the gate computes it from counts rather than from the two reported
intervals:

* **Counts.** A group's row in ``audits/bias.parquet`` holds ``n_images``, ``abstain_rate`` and the
  raw share of every class, so the probe's answered count of each class is recovered exactly
  (``n_answered = n_images·(1 − abstain_rate)``, ``k_c = raw_c·n_answered``; rows whose shares are
  not such ratios are refused and the generic method is used).
* **Prompts.** The images of a group are pooled across its prompts (paraphrases of one profession).
  Both runs audit the same suite, so the same prompts, with the same images per prompt: the
  prompts are fixed strata shared by the runs, between-prompt differences are the same fixed
  effect in both and cancel in the difference, and images are independent given the prompt (each
  has its own seed). The pooled binomial variance is then an upper bound of the stratified
  variance (it adds Σ n_i (p_i − p̄)²), so the interval is valid and at worst slightly
  conservative. Runs with a different number of prompts in the group are compared by the generic
  method instead (with a warning).
* **Interval.** Newcombe's hybrid score interval (Newcombe 1998, method 10) for the difference of
  the raw shares, built from the two Wilson intervals at the rule's level (Bonferroni-adjusted for
  wildcards); its coverage is close to nominal and, unlike the normal (Wald) interval, stays
  inside [−1, 1] and behaves at small counts. The p-value is the pooled two-proportion score
  test's.
* **Corrected shares** (``share`` of a calibrated probe). When both runs used the same calibration
  (identical confusion counts in ``audits/bias.json``, as every PictoWorld run does by default),
  the correction is one fixed map from raw to corrected shares; "same corrected share" then
  holds exactly when "same raw share" does, and the calibration's own uncertainty is shared by the
  two runs instead of counting twice. The raw interval is carried onto the corrected scale by the
  map's slope at the pooled raw shares (delta method; ``t2i_audit.stats.correction.correct``),
  around the reported corrected difference. Runs calibrated differently fall back to the generic
  method (each run's interval, combined in quadrature), which counts both calibrations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from t2i_audit.stats.proportions import Difference
from t2i_audit.stats.resampling import wilson_interval  # numpy-only: no model, no torch

METHOD = ("two-sample difference of proportions from the runs' counts (images pooled over each group's prompts, "
          "the same in both runs); Newcombe hybrid score interval at the check's level; p: pooled score test")


def newcombe(k1: float, n1: float, k2: float, n2: float, level: float = 0.95) -> tuple[float, float, float]:
    """(d, low, high): Newcombe's hybrid score interval for k1/n1 − k2/n2 at ``level``."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def score_p_value(k1: float, n1: float, k2: float, n2: float) -> float:
    """Two-sided p-value of the pooled two-proportion score (z) test."""
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    d = k1 / n1 - k2 / n2
    if se == 0:
        return 1.0 if d == 0 else 0.0
    return float(2 * stats.norm.sf(abs(d) / se))


def group_counts(bias: pd.DataFrame | None, detail: dict) -> dict | str:
    """The answered counts of one bias group (all classes) from its rows, or why they cannot be had."""
    if bias is None:
        return "no bias table"
    rows = bias[(bias["attribute"].astype(str) == detail["attribute"]) & (bias["group"].astype(str) == detail["group"])]
    if "probe" in bias.columns and detail.get("probe") is not None:
        rows = rows[rows["probe"].astype(str) == detail["probe"]]
    if rows.empty or rows["cls"].duplicated().any():
        return "the group's rows are missing or repeated"
    n_img = float(rows["n_images"].iloc[0])
    abst = float(rows["abstain_rate"].iloc[0])
    n = round(n_img * (1 - abst))
    raw = rows["raw"].to_numpy(dtype=np.float64)
    if n <= 0 or not np.all(np.isfinite(raw)):
        return "no answered images"
    k = np.round(raw * n)
    # the shares must be ratios of whole counts that add up to the answered images
    if abs(n_img * (1 - abst) - n) > 1e-6 * max(n_img, 1) or k.sum() != n or np.max(np.abs(k / n - raw)) > 1e-9:
        return "the shares are not ratios of whole image counts"
    corr = rows["corrected"].to_numpy(dtype=np.float64)
    return {"classes": [str(c) for c in rows["cls"]], "k": k, "n": float(n), "n_prompts": int(rows["n_prompts"].iloc[0]),
            "corrected": corr if np.all(np.isfinite(corr)) else None}


def _calibration(meta: dict | None, probe: str | None) -> dict | None:
    cal = (meta or {}).get("calibration") or {}
    return cal[probe] if probe is not None and isinstance(cal.get(probe), dict) else None


def _slope(k1, k2, c: int, counts_cal, method: str) -> float:
    """d corrected_c / d raw_c at the pooled raw shares, mass moved from the other classes pro rata."""
    from t2i_audit.stats.correction import conditional_from_counts, correct

    A, a = conditional_from_counts(np.asarray(counts_cal, dtype=np.float64))
    q = (k1 + k2) / (k1 + k2).sum()
    rest = q.copy()
    rest[c] = 0.0
    if rest.sum() <= 0:
        return float("nan")
    direction = -rest / rest.sum()
    direction[c] = 1.0
    eps = 1e-4  # q + t·direction stays on the simplex for t in [−q_c, 1 − q_c]
    lo, hi = max(-eps, -q[c]), min(eps, 1 - q[c])
    if hi - lo <= 0:
        return float("nan")
    g = correct(np.stack([q + lo * direction, q + hi * direction]) * 1e6, A, a, method)[:, c]
    return float((g[1] - g[0]) / (hi - lo))


def share_difference(run, base, detail: dict, level: float) -> tuple[Difference | None, str]:
    """The two-sample difference of one class share, or (None, why the generic method is needed)."""
    a, b = group_counts(run.bias, detail), group_counts(base.bias, detail)
    for who, x in (("run", a), ("baseline", b)):
        if isinstance(x, str):
            return None, f"{who}: {x}"
    if a["classes"] != b["classes"]:
        return None, "the runs' classes differ"
    if a["n_prompts"] != b["n_prompts"]:
        return None, (f"the runs have {a['n_prompts']} and {b['n_prompts']} prompts in this group, so "
                      "between-prompt variation does not cancel")
    c = a["classes"].index(detail["cls"])
    d_raw, lo, hi = newcombe(a["k"][c], a["n"], b["k"][c], b["n"], level)
    p = score_p_value(a["k"][c], a["n"], b["k"][c], b["n"])
    method = METHOD
    n = int(a["n"] + b["n"])
    if detail["kind"] == "raw_share" or (a["corrected"] is None and b["corrected"] is None):
        return Difference(d_raw, lo, hi, p, n, a["n_prompts"], method + "; raw shares"), ""
    if a["corrected"] is None or b["corrected"] is None:
        return None, "one run's shares are corrected and the other's are not"
    ca, cb = _calibration(run.bias_meta, detail.get("probe")), _calibration(base.bias_meta, detail.get("probe"))
    if ca is None or cb is None or "counts" not in ca or "counts" not in cb:
        return None, "a run's bias.json has no calibration counts for this probe"
    if not np.array_equal(np.asarray(ca["counts"]), np.asarray(cb["counts"])):
        return None, "the runs were calibrated on different labelled images"
    cfg = (run.bias_meta or {}).get("config") or {}
    s = _slope(a["k"], b["k"], c, ca["counts"], str(cfg.get("method", "em")))
    if not (math.isfinite(s) and s > 0):
        return None, "the correction has no positive slope at these shares"
    d = float(a["corrected"][c] - b["corrected"][c])
    method += ("; corrected shares: the raw interval through the runs' shared calibration (slope of the "
               "correction at the pooled raw shares, delta method)")
    return Difference(d, d + s * (lo - d_raw), d + s * (hi - d_raw), p, n, a["n_prompts"], method), ""
