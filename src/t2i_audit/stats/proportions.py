"""Statistics used by compare and gate: paired cluster bootstrap, exact McNemar, and the
difference of two independent estimates from their reported intervals.

Only numpy/scipy: no model and no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import MIN_PROMPTS, cluster_draw_matrix

Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class Difference:
    """An estimated difference (A − B or run − baseline) with its interval and p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int            # paired items (or images) behind the estimate
    n_clusters: int   # prompts
    method: str


def paired_cluster_bootstrap(diff: np.ndarray, clusters: np.ndarray, *, n_boot: int = 2000,
                             seed: int = 0, level: float = 0.95) -> Difference:
    """Mean of per-item differences with a percentile interval from resampling clusters (prompts).

    Each replicate draws prompts with replacement and takes the mean of all their item differences
    (weighted by items, as the point estimate). The two-sided p-value is the share of replicates,
    re-centred on 0 (the null), at least as far from 0 as the estimate: (1 + #) / (1 + B).
    """
    diff = np.asarray(diff, dtype=np.float64)
    clusters = np.asarray(clusters)
    if diff.size == 0:
        raise InputError("paired_cluster_bootstrap: no paired items; pair the runs by (prompt_id, seed) first")
    if clusters.shape != diff.shape:
        raise InputError(f"paired_cluster_bootstrap: {clusters.size} clusters for {diff.size} differences; "
                         "give one prompt id per paired item")
    keys, inv = np.unique(clusters, return_inverse=True)
    k = len(keys)
    sums = np.bincount(inv, weights=diff, minlength=k)
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    est = float(sums.sum() / counts.sum())
    if k < MIN_PROMPTS:
        return Difference(est, float("nan"), float("nan"), float("nan"), int(diff.size), k,
                          f"mean paired difference; not estimable: {k} prompt(s), fewer than {MIN_PROMPTS} "
                          "(a bootstrap over so few prompts gives a falsely narrow interval)")
    draws = cluster_draw_matrix(k, n_boot, seed)  # (B, k): times each prompt was drawn
    boot = (draws @ sums) / np.maximum(draws @ counts, 1e-12)
    alpha = 1.0 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    # small-sample correction of the percentile interval: the bootstrap variance of a mean over k
    # clusters is (k-1)/k of the unbiased one, and its quantiles are normal where t(k-1) belongs
    widen = float(np.sqrt(k / (k - 1)) * stats.t.ppf(1 - alpha / 2, k - 1) / stats.norm.ppf(1 - alpha / 2))
    lo, hi = est - (est - lo) * widen, est + (hi - est) * widen
    centred = (boot - boot.mean()) * widen
    p = float((1 + np.sum(np.abs(centred) >= abs(est) - 1e-12)) / (1 + n_boot))
    method = (f"mean paired difference; {int(level * 100)}% percentile interval from a cluster bootstrap "
              f"over prompts (B={n_boot}, seed={seed}), widened by sqrt(k/(k-1))·t(k-1)/z for k={k} prompts; "
              f"not estimable below {MIN_PROMPTS} prompts; p: share of null-centred replicates as extreme")
    return Difference(est, float(lo), float(hi), min(p, 1.0), int(diff.size), k, method)


def mcnemar_exact(a_pass: np.ndarray, b_pass: np.ndarray) -> tuple[int, int, float]:
    """Exact (binomial) McNemar test on paired pass/fail outcomes.

    Returns (b, c, p): b = A passes and B fails, c = A fails and B passes, and the two-sided
    exact p-value 2·P(X ≤ min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1.
    """
    a = np.asarray(a_pass, dtype=bool).reshape(-1)
    b_ = np.asarray(b_pass, dtype=bool).reshape(-1)
    if a.shape != b_.shape:
        raise InputError(f"mcnemar_exact: {a.size} vs {b_.size} outcomes; pair the runs by (prompt_id, seed) first")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    if b + c == 0:
        return b, c, 1.0
    p = float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), b + c, 0.5)))
    return b, c, p


def independent_difference(est_a: float, lo_a: float, hi_a: float, est_b: float, lo_b: float,
                           hi_b: float, *, level: float = 0.95, n: int = 0) -> Difference:
    """A − B for two independent estimates known only by their 95% intervals.

    Each interval gives a standard error (width / (2·1.96)); the difference's standard error is
    their root sum of squares, its interval est ± z·se at ``level``, its p-value two-sided normal.
    Conservative for positively correlated (e.g. paired) runs.
    """
    se_a = max(hi_a - lo_a, 0.0) / (2 * Z95)
    se_b = max(hi_b - lo_b, 0.0) / (2 * Z95)
    se = float(np.hypot(se_a, se_b))
    d = float(est_a - est_b)
    z = float(stats.norm.ppf(0.5 + level / 2))
    if se == 0:
        p = 1.0 if d == 0 else 0.0
    else:
        p = float(2 * stats.norm.sf(abs(d) / se))
    method = (f"difference of independent estimates; se from each 95% interval (width/3.92), "
              f"combined in quadrature; {level * 100:.4g}% normal interval")
    return Difference(d, d - z * se, d + z * se, p, n, 0, method)
