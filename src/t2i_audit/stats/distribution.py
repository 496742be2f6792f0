"""Bias statistics of a class distribution ``p`` (one group) against a reference ``r``.

All functions take arrays whose last axis is the class axis, so the same code computes a point
estimate and its bootstrap replicates. Formulas are in docs/audits.md.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps


def parity_gap(p: np.ndarray) -> np.ndarray:
    """max_c p_c - min_c p_c (0 = parity)."""
    p = np.asarray(p, dtype=np.float64)
    return p.max(-1) - p.min(-1)


def normalized_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) / log K in [0, 1] (1 = uniform); OpenBias's severity is 1 minus this."""
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), -1)
    return h / np.log(k)


def total_variation(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """TV(p, r) = 1/2 sum |p - r|."""
    return 0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(r, dtype=np.float64)).sum(-1)


def kl_divergence(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """KL(p || r) in nats; infinite when p puts mass where r has none."""
    p = np.asarray(p, dtype=np.float64)
    r = np.broadcast_to(np.asarray(r, dtype=np.float64), p.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(r)), 0.0)
    return terms.sum(-1)


def heim_deviation(p: np.ndarray) -> np.ndarray:
    """HEIM's bias measure: mean_c |p_c - 1/K|; for two classes this is |p - 0.5|."""
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[-1]
    return np.abs(p - 1.0 / k).mean(-1) if k > 2 else np.abs(p[..., 0] - 0.5)


def goodness_of_fit(observed: np.ndarray, expected_shares: np.ndarray, test: str = "chi2"
                    ) -> tuple[float, int, float]:
    """Pearson chi-square (``chi2``) or G-test (``g``) of observed counts against expected shares.
    Returns (statistic, degrees of freedom, p-value). Classes with zero expected share are dropped
    (a count there makes the statistic infinite and p = 0)."""
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected_shares, dtype=np.float64)
    exp = exp / exp.sum()
    keep = exp > 0
    if np.any(obs[~keep] > 0):
        return float("inf"), int(keep.sum() - 1), 0.0
    obs, exp = obs[keep], exp[keep] * obs[keep].sum()
    if len(obs) < 2 or obs.sum() == 0:
        return float("nan"), 0, float("nan")
    lam = {"chi2": "pearson", "g": "log-likelihood"}[test]
    stat, pv = sps.power_divergence(obs, exp, lambda_=lam)
    return float(stat), int(len(obs) - 1), float(pv)


def _on_finite(pvalues, adjust) -> np.ndarray:
    """Adjusted p-values of the non-NaN entries (NaNs stay NaN and do not count as tests).
    ``adjust(v) -> (order, adjusted)`` gives the adjusted values of ``v`` in ``order``."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    order, adj = adjust(p[ok])
    res = np.empty(len(order))
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def _holm(v: np.ndarray):
    order = np.argsort(v, kind="stable")
    return order, np.maximum.accumulate((len(v) - np.arange(len(v))) * v[order])


def _bh(v: np.ndarray):
    order = np.argsort(v, kind="stable")[::-1]
    return order, np.minimum.accumulate(v[order] * len(v) / np.arange(len(v), 0, -1))


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (family-wise error); NaNs stay NaN."""
    return _on_finite(pvalues, _holm)


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (false discovery rate); NaNs stay NaN."""
    return _on_finite(pvalues, _bh)


ADJUST = {"holm": holm, "bh": benjamini_hochberg}

# statistic name -> (function of p and r, needs a reference)
DISTRIBUTION_STATS = {
    "parity_gap": (lambda p, r: parity_gap(p), False),
    "normalized_entropy": (lambda p, r: normalized_entropy(p), False),
    "heim_deviation": (lambda p, r: heim_deviation(p), False),
    "tv_to_reference": (total_variation, True),
    "kl_to_reference": (kl_divergence, True),
}


def distribution_stats(p: np.ndarray, r: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every statistic of ``p`` (point or replicates); reference statistics need ``r``."""
    out = {}
    for name, (fn, needs_ref) in DISTRIBUTION_STATS.items():
        if needs_ref and r is None:
            continue
        out[name] = fn(p, r)
    return out
