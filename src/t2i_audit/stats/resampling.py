"""Interval statistics shared by metrics, audits and comparisons (pure numpy, vectorised, seeded).

Images generated from one prompt are correlated, so every interval here resamples *prompts*
(clusters, drawn by ``stats.clusters``, the one home of cluster draws), never single images: a cluster bootstrap (Davison & Hinkley 1997, sec. 3.8) redraws
prompts with replacement and keeps all images of each drawn prompt. Two runs of the same suite are
compared image by image, paired on (prompt_id, seed).

All functions take an explicit ``seed`` and build one ``numpy.random.Generator`` from it, so an
interval is reproducible from its inputs alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import (
    cluster_draw_matrix,
    cluster_draws,
    cluster_rows,
    share_interval,
    wilson_bounds,
)

DEFAULT_REPS = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class IntervalEstimate:
    """A point estimate with its interval, sample sizes and how it was computed."""

    value: float
    ci_low: float
    ci_high: float
    n_clusters: int
    n: int
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size and not np.all(np.isfinite(a)):
        raise InputError(f"{name}: {int((~np.isfinite(a)).sum())} non-finite values (NaN/Inf); "
                         "drop or fix those items before computing an interval")
    return a


def _codes(clusters, n: int) -> tuple[np.ndarray, int]:
    if clusters is None:
        return np.arange(n), n
    c = np.asarray(clusters)
    if c.shape[0] != n:
        raise InputError(f"clusters: {c.shape[0]} labels for {n} values; give one prompt id per value")
    _, codes = np.unique(c, return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1 if n else 0


def percentile_interval(boot: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Equal-tailed percentile interval of a bootstrap distribution."""
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(boot, dtype=np.float64), [a, 1.0 - a])
    return float(lo), float(hi)


def finite_percentile_interval(boot, level: float = LEVEL) -> tuple[float, float]:
    """:func:`percentile_interval` of the finite replicates (a replicate whose resample lacks a class
    is NaN); (NaN, NaN) when none is finite."""
    b = np.asarray(boot, dtype=np.float64)
    b = b[np.isfinite(b)]
    return percentile_interval(b, level) if b.size else (float("nan"), float("nan"))


def basic_interval(estimate: float, boot: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval 2θ̂ − q, for the population value under the
    bootstrap principle θ̂ − θ ~ θ* − θ̂ (it moves below θ̂ when replicates are biased upward)."""
    lo, hi = percentile_interval(boot, level)
    return float(2 * estimate - hi), float(2 * estimate - lo)


def centred_interval(estimate: float, boot: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the bootstrap distribution shifted so that its mean is the estimate:
    θ̂ + (q − mean(θ*)). For statistics biased in the number of distinct samples (Fréchet distance,
    KID), resampling with replacement duplicates images and shifts every replicate upward; this
    removes that shift and keeps the spread, i.e. it describes the sampling variability of the
    statistic at the run's N (it is not an interval for the N → ∞ value: see FD∞)."""
    b = np.asarray(boot, dtype=np.float64)
    lo, hi = percentile_interval(b, level)
    shift = float(b.mean()) - estimate
    return float(lo - shift), float(hi - shift)


def _ratio_boot(sums: np.ndarray, counts: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of Σ sums / Σ counts over clusters drawn with replacement
    (``stats.clusters.cluster_draws``, in chunks so memory stays bounded)."""
    return np.concatenate([(d @ sums) / (d @ counts) for d in cluster_draws(sums.size, reps, seed)])


def cluster_bootstrap_draws(values, clusters=None, *, reps: int = DEFAULT_REPS,
                            seed: int = 0) -> tuple[float, np.ndarray, int, int]:
    """(mean, bootstrap replicates of the mean, n clusters, n values) for a cluster bootstrap.

    Each replicate draws as many clusters as there are, with replacement, and computes the
    image-weighted mean (sum of drawn values / number of drawn images), the estimator the point
    value uses. With ``clusters=None`` every value is its own cluster. Fewer than 2 clusters give
    an empty replicate array.
    """
    v = _as_1d(values, "values")
    n = v.size
    if n == 0:
        raise InputError("values: no items to average; the run has no scored images for this group")
    codes, k = _codes(clusters, n)
    if k < 2:
        return float(v.mean()), np.empty(0), k, n
    sums = np.bincount(codes, weights=v, minlength=k)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    return float(v.mean()), _ratio_boot(sums, counts, reps, seed), k, n


def cluster_bootstrap_mean(values, clusters=None, *, reps: int = DEFAULT_REPS, seed: int = 0,
                           level: float = LEVEL) -> IntervalEstimate:
    """Mean of ``values`` with a percentile cluster-bootstrap interval over ``clusters``
    (see :func:`cluster_bootstrap_draws`)."""
    value, boot, k, n = cluster_bootstrap_draws(values, clusters, reps=reps, seed=seed)
    if boot.size == 0:
        return IntervalEstimate(value, math.nan, math.nan, k, n, "mean; no interval (fewer than 2 prompts)")
    lo, hi = percentile_interval(boot, level)
    return IntervalEstimate(value, lo, hi, k, n,
                    f"mean; {int(level * 100)}% percentile cluster bootstrap over prompts, {reps} reps, seed {seed}")


def cluster_bootstrap_proportion(passed, clusters=None, *, reps: int = DEFAULT_REPS, seed: int = 0,
                                 level: float = LEVEL) -> IntervalEstimate:
    """Share of True in ``passed`` with the shares' one interval rule (``stats.clusters.share_interval``,
    prompts as a sample): a Wilson interval on the effective n from the cluster bootstrap's design
    effect, so a share of 0 or 1 keeps a width; not estimable below ``MIN_PROMPTS`` prompts."""
    p = np.asarray(passed)
    if p.dtype != bool and p.size and not np.isin(p, (0, 1)).all():
        raise InputError("passed: expected booleans or 0/1 values")
    value, boot, k, n = cluster_bootstrap_draws(p.astype(np.float64), clusters, reps=reps, seed=seed)
    lo, hi, _, _, note = share_interval(value, boot if boot.size else np.full(2, value), n, k, level=level)
    method = (f"proportion; {note}" if note else
              f"proportion; {int(level * 100)}% Wilson interval on the effective n (cluster bootstrap over "
              f"prompts, {reps} reps, seed {seed}; t quantile on prompts - 1 df)")
    return IntervalEstimate(value, float(lo), float(hi), k, n, method)


def wilson_interval(k: int, n: int, level: float = LEVEL, *, nan_if_empty: bool = False) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (Wilson 1927).

    The Wilson interval of a count (``stats.clusters.wilson_bounds``: the package's one Wilson formula). ``nan_if_empty`` returns (nan, nan) for n = 0 (a table
    cell with nothing to count) instead of raising.
    """
    if n == 0 and nan_if_empty:
        return math.nan, math.nan
    if n <= 0:
        raise InputError("wilson_interval: n must be positive")
    if not 0 <= k <= n:
        raise InputError(f"wilson_interval: k={k} outside 0..n={n}")
    from scipy.stats import norm

    lo, hi = wilson_bounds(k / n, n, float(norm.ppf(0.5 + level / 2)))
    return float(lo), float(hi)


def cluster_resample(clusters, reps: int, seed: int = 0) -> list[np.ndarray]:
    """Row indices of ``reps`` cluster-bootstrap resamples (for statistics that are not means,
    e.g. Fréchet distance of a resampled image set), from ``stats.clusters.cluster_draw_matrix``."""
    groups = cluster_rows(clusters)
    draws = cluster_draw_matrix(len(groups), reps, seed).astype(np.int64)
    return [np.concatenate([np.tile(groups[j], c) for j, c in enumerate(row) if c]) for row in draws]


def cluster_draw_counts(n_clusters: int, reps: int, seed: int, chunk: int = 250) -> Iterator[np.ndarray]:
    """``stats.clusters.cluster_draws`` (kept for callers of this module)."""
    return cluster_draws(n_clusters, reps, seed, chunk)
