"""Meta-evaluation of a score (a judge's VQAScore / TIFA, CLIPScore) against human ratings.

Over all pairs of items (or pairs within each group, e.g. a prompt, when a group column is given):

- **Kendall tau_b** = (C - D) / sqrt((P - T_h)(P - T_m)), with C / D concordant / discordant pairs, P
  pairs, T_h / T_m pairs tied in the human / metric ratings (equal to ``scipy.stats.kendalltau``).
- **Pairwise accuracy with tie calibration** (Deutsch, Foster & Freitag 2023, the protocol
  t2v_metrics reports on GenAI-Bench): a metric pair counts as tied when its scores differ by at most
  epsilon; a pair is right when both tie, or neither ties and they order the items the same way;
  acc(eps) = right / P, and epsilon is chosen to maximise it over {0} and every pairwise difference,
  so a metric that cannot produce ties is not penalised against a human scale that has many.

Intervals: 95% percentile bootstrap over items (or over groups when given), epsilon fixed at its
full-data value (the stated estimand: agreement on items like these).
"""

from __future__ import annotations

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.stats.resampling import cluster_resample, percentile_interval


def _pairs(n: int, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, 1)
    if groups is not None:
        keep = groups[i] == groups[j]
        i, j = i[keep], j[keep]
    return i, j


def kendall_tau_b(human, metric, groups=None) -> float:
    h, m = np.asarray(human, np.float64), np.asarray(metric, np.float64)
    i, j = _pairs(len(h), None if groups is None else np.asarray(groups))
    dh, dm = np.sign(h[i] - h[j]), np.sign(m[i] - m[j])
    p = len(i)
    th, tm = int((dh == 0).sum()), int((dm == 0).sum())
    denom = np.sqrt(float(p - th) * float(p - tm))
    return float((dh * dm).sum() / denom) if denom > 0 else float("nan")


def pairwise_accuracy(human, metric, groups=None, epsilon: float | None = None) -> tuple[float, float]:
    """(accuracy, epsilon): the tie-calibrated pairwise accuracy, at ``epsilon`` when given."""
    h, m = np.asarray(human, np.float64), np.asarray(metric, np.float64)
    i, j = _pairs(len(h), None if groups is None else np.asarray(groups))
    if len(i) == 0:
        return float("nan"), float("nan")
    d = np.abs(m[i] - m[j])
    htie = h[i] == h[j]
    agree = ~htie & (np.sign(h[i] - h[j]) == np.sign(m[i] - m[j]))
    if epsilon is not None:
        return float(((htie & (d <= epsilon)) | (agree & (d > epsilon))).mean()), float(epsilon)
    cand = np.unique(np.concatenate([[0.0], d]))
    dt, da = np.sort(d[htie]), np.sort(d[agree])
    right = np.searchsorted(dt, cand, side="right") + (len(da) - np.searchsorted(da, cand, side="right"))
    k = int(np.argmax(right))
    return float(right[k] / len(i)), float(cand[k])


def _draw_labels(g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """A label per resampled item naming its draw, so a group drawn twice forms two groups."""
    size = {k: int(v) for k, v in zip(*np.unique(g, return_counts=True))}
    out = np.empty(len(idx), dtype=np.int64)
    pos = d = 0
    while pos < len(idx):
        n = size[g[idx[pos]]]
        out[pos:pos + n] = d
        pos, d = pos + n, d + 1
    return out


def meta_evaluate(human, scores: dict[str, np.ndarray], groups=None, reps: int = 1000, seed: int = 0) -> list[dict]:
    """One row per score column: tau_b and tie-calibrated pairwise accuracy with 95% intervals."""
    h = np.asarray(human, np.float64)
    if len(h) < 3:
        raise InputError(f"human ratings: {len(h)} items; need at least 3 to compare pairs")
    g = None if groups is None else np.asarray(groups).astype(str)
    draws = cluster_resample(g if g is not None else np.arange(len(h)), reps, seed) if reps else []
    out = []
    for name, col in scores.items():
        m = np.asarray(col, np.float64)
        if not np.all(np.isfinite(m)):
            raise InputError(f"score column {name!r}: {int((~np.isfinite(m)).sum())} missing or non-numeric values")
        tau = kendall_tau_b(h, m, g)
        acc, eps = pairwise_accuracy(h, m, g)
        bt, ba = [], []
        for idx in draws:
            gi = None if g is None else _draw_labels(g, idx)
            bt.append(kendall_tau_b(h[idx], m[idx], gi))
            ba.append(pairwise_accuracy(h[idx], m[idx], gi, eps)[0])
        t_lo, t_hi = percentile_interval(np.array(bt)[np.isfinite(bt)]) if draws else (np.nan, np.nan)
        a_lo, a_hi = percentile_interval(np.array(ba)) if draws else (np.nan, np.nan)
        n_pairs = len(_pairs(len(h), g)[0])
        out.append({"score": name, "kendall_tau_b": tau, "tau_ci_low": t_lo, "tau_ci_high": t_hi,
                    "pairwise_accuracy": acc, "acc_ci_low": a_lo, "acc_ci_high": a_hi, "epsilon": eps,
                    "n_items": len(h), "n_pairs": n_pairs, "n_groups": None if g is None else len(set(g)),
                    "method": f"95% percentile bootstrap over {'groups' if g is not None else 'items'}, {reps} "
                              "reps; epsilon fixed at its full-data value"})
    return out
