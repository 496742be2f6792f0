"""The one home of cluster resampling, and the intervals of shares for both estimands.

Images of one prompt are correlated, and real generators answer paraphrases differently. An
interval answers one of two questions (the *estimand*), and every output names which:

- ``prompts`` -- *prompts as a sample* (the default for bias, diversity, safety and quality): the
  suite's prompts stand for the ways a user could ask, so the variation between prompts belongs in
  the interval. Resampling: prompts drawn with replacement (cluster bootstrap, Davison & Hinkley
  1997, sec. 3.8). Below ``MIN_PROMPTS`` prompts in a group the interval is *not estimable* (NaN with
  a reason), never a narrow one.
- ``these-prompts`` -- conditional on the suite's exact prompts: images resampled within each prompt
  (a bootstrap stratified by prompt); the truth is the image-weighted mean of the prompts' own shares.

Every cluster draw of the package comes from :func:`cluster_draws` (prompts with replacement, as
count matrices) or :func:`within_cluster_totals` (images within prompts); no other module draws
clusters (``tests/test_one_home.py`` checks the call sites).

Intervals of shares (:func:`share_interval`): the plain percentile cluster bootstrap is too narrow
with 4-10 prompts and collapses to zero width at shares of 0 or 1. Instead, the bootstrap variance
(scaled by P/(P-1) for prompts) gives a design effect against the binomial variance of an
Agresti-Coull adjusted share, deff = max(1, var / (p~(1-p~)/n)), an effective number of images
n_eff = n / deff, and a Wilson score interval on n_eff with the t quantile on P - 1 degrees of
freedom (prompts) or the normal quantile (these prompts): the effective-sample-size Wilson interval
for clustered proportions (Korn & Graubard 1998; Dean & Pagano 2015). Coverage measured by
``bench/bias_planted.py`` and ``bench/bias_shift.py``: docs/estimators.md. For a PPI++ share the
binomial floor is on the estimate's own size (:func:`ppi_binomial_n`), not on all the images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy import stats

from t2i_audit.errors import InputError

ESTIMANDS = ("prompts", "these-prompts")
DEFAULT_ESTIMAND = "prompts"
MIN_PROMPTS = 5  # prompts-as-sample intervals need at least this many prompts in a group (bench/bias_planted.py)
LEVEL = 0.95
ESTIMAND_TEXT = {
    "prompts": "prompts as a sample: the suite's prompts stand for the ways a user could ask; "
               "between-prompt variation is in the interval (prompts resampled)",
    "these-prompts": "these prompts: conditional on the suite's exact prompts (images resampled "
                     "within each prompt)",
}


def check_estimand(estimand: str) -> str:
    if estimand not in ESTIMANDS:
        raise InputError(f"--estimand {estimand!r}: use one of {', '.join(ESTIMANDS)}")
    return estimand


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def cluster_draws(n_clusters: int, reps: int, seed=0, chunk: int = 250) -> Iterator[np.ndarray]:
    """Cluster-bootstrap draws as counts, in chunks of at most ``chunk`` replicates: each replicate
    draws ``n_clusters`` clusters with replacement; row b, column c = times cluster c was drawn.
    ``seed``: an int or a ``numpy.random.Generator`` (then advanced)."""
    rng = _rng(seed)
    for s in range(0, reps, chunk):
        b = min(chunk, reps - s)
        idx = rng.integers(0, n_clusters, size=(b, n_clusters))
        flat = (idx + n_clusters * np.arange(b)[:, None]).reshape(-1)
        yield np.bincount(flat, minlength=b * n_clusters).reshape(b, n_clusters).astype(np.float64)


def cluster_draw_matrix(n_clusters: int, reps: int, seed=0) -> np.ndarray:
    """All of :func:`cluster_draws` as one ``(reps, n_clusters)`` matrix."""
    if reps == 0 or n_clusters == 0:
        return np.zeros((reps, n_clusters))
    return np.concatenate(list(cluster_draws(n_clusters, reps, seed)))


def cluster_rows(clusters) -> list[np.ndarray]:
    """Row indices of each cluster (in order of the sorted cluster labels)."""
    c = np.asarray(clusters)
    _, codes = np.unique(c, return_inverse=True)
    codes = codes.reshape(-1)
    k = int(codes.max()) + 1 if codes.size else 0
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=k))])
    return [order[bounds[i]:bounds[i + 1]] for i in range(k)]


def within_cluster_draws(counts: np.ndarray, reps: int, seed=0) -> np.ndarray:
    """``(reps, P, C)`` outcome counts resampled within each cluster: row p of ``counts`` ``(P, C)``
    redrawn Multinomial(n_p, counts_p / n_p) (a bootstrap stratified by cluster; a row of zeros stays
    zero)."""
    rng = _rng(seed)
    counts = np.asarray(counts, dtype=np.int64)
    out = np.zeros((reps,) + counts.shape, dtype=np.int64)
    for p, row in enumerate(counts):
        m = int(row.sum())
        if m:
            out[:, p] = rng.multinomial(m, row / m, size=reps)
    return out


def within_cluster_totals(counts: np.ndarray, reps: int, seed=0) -> np.ndarray:
    """``(reps, C)`` totals of :func:`within_cluster_draws` (the *these prompts* bootstrap)."""
    return within_cluster_draws(counts, reps, seed).sum(1)


def resampled_totals(counts: np.ndarray, reps: int, seed, estimand: str) -> tuple[np.ndarray, str]:
    """``(reps, C)`` resampled totals of per-prompt outcome counts ``(P, C)`` for ``estimand``, and
    the scheme in words."""
    P = counts.shape[0]
    if check_estimand(estimand) == "prompts":
        return cluster_draw_matrix(P, reps, seed) @ counts, f"prompts resampled ({P} prompts)"
    return within_cluster_totals(counts, reps, seed), f"images resampled within each of {P} prompts"


def not_estimable_reason(n_prompts: int, estimand: str, min_prompts: int = MIN_PROMPTS) -> str | None:
    """Why a prompts-as-sample interval cannot be given (None when it can)."""
    if estimand == "prompts" and n_prompts < min_prompts:
        return (f"not estimable: {n_prompts} prompt(s) in the group, prompts-as-sample intervals need "
                f">= {min_prompts} (add paraphrases, or --estimand these-prompts)")
    return None


def share_interval(point, reps, n, n_prompts: int, estimand: str = DEFAULT_ESTIMAND, level: float = LEVEL,
                   min_prompts: int = MIN_PROMPTS):
    """Interval of share(s) ``point`` (shape (K,) or scalar) from bootstrap replicates ``reps``
    ((B, K) or (B,)) over ``n`` images in ``n_prompts`` prompts (see the module doc).

    Returns (lo, hi, deff, n_eff, note): arrays like ``point``; ``note`` is the not-estimable reason
    (then lo, hi are NaN) or None.
    """
    point = np.asarray(point, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64).reshape((-1,) + point.shape)
    nan = np.full(point.shape, np.nan)
    note = not_estimable_reason(n_prompts, check_estimand(estimand), min_prompts)
    n = float(n)
    if note or n <= 0:
        return nan, nan.copy(), nan.copy(), nan.copy(), note or "not estimable: no images"
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(reps).sum(0) >= 2
        var = np.where(ok, np.nanvar(np.where(np.isfinite(reps), reps, np.nan), axis=0, ddof=1)
                       if reps.shape[0] > 1 else 0.0, 0.0)
    pt = (point * n + 2.0) / (n + 4.0)
    v0 = pt * (1 - pt) / n
    if estimand == "prompts":
        var = var * n_prompts / max(n_prompts - 1, 1)
    deff = np.maximum(1.0, var / v0)
    n_eff = n / deff
    z = float(stats.norm.ppf(0.5 + level / 2))
    if estimand == "prompts":  # the binomial part is known (z); the excess is estimated on P - 1 df (t)
        t = float(stats.t.ppf(0.5 + level / 2, max(n_prompts - 1, 1)))
        q = np.sqrt((z * z + t * t * (deff - 1)) / deff)
    else:
        q = z
    lo, hi = wilson_bounds(point, n_eff, q)
    bad = ~np.isfinite(point)
    return (np.where(bad, np.nan, lo), np.where(bad, np.nan, hi), np.where(bad, np.nan, deff),
            np.where(bad, np.nan, n_eff), None)


def ppi_binomial_n(lam, n_unlabelled: float, n_labelled: float) -> float:
    """Images a PPI++ share stands on, for the binomial floor of :func:`share_interval`:
    ``lam * mean_unl(f) + mean_lab(Y - lam f)`` weighs the N unlabelled readings by lam and the n labels
    by 1 - lam, so n_eff = 1 / (lam^2 / N + (1 - lam)^2 / n), the smallest over classes ``lam``. With
    lam = 0 (e.g. no labelled positive: every replicate 0) the floor counts the labels, not all images,
    and the interval's upper bound stays above a small true share (``bench/bias_shift.py``)."""
    lam = np.clip(np.asarray(lam, dtype=np.float64).reshape(-1), 0.0, 1.0)
    N, n = float(n_unlabelled), float(n_labelled)
    if n <= 0 or lam.size == 0:
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        unl = np.where(lam > 0, lam * lam / N if N > 0 else np.inf, 0.0)
        inv = unl + (1 - lam) ** 2 / n
    return float(np.min(1.0 / inv))


def clustered_rate_interval(flags, clusters, B: int = 2000, seed=0, level: float = LEVEL,
                            min_prompts: int = MIN_PROMPTS):
    """Prompts-as-sample interval of the rate of binary ``flags`` whose images are clustered by
    ``clusters`` (the prompt of each image): cluster bootstrap over prompts -> :func:`share_interval`
    (design effect, effective n, Wilson). Returns (rate, lo, hi, deff, n_eff, note)."""
    f = np.asarray(flags, dtype=np.float64).reshape(-1)
    rows = cluster_rows(clusters)
    x = np.array([f[r].sum() for r in rows])
    m = np.array([float(len(r)) for r in rows])
    n = float(m.sum())
    rate = float(x.sum() / n) if n else math.nan
    draws = cluster_draw_matrix(len(rows), B, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (draws @ x) / (draws @ m)
    lo, hi, deff, n_eff, note = share_interval(rate, reps, n, len(rows), "prompts", level, min_prompts)
    return rate, float(lo), float(hi), float(deff), float(n_eff), note


def wilson_bounds(p, n, q):
    """Wilson score bounds of share ``p`` on (possibly fractional) ``n`` with quantile ``q``."""
    p, n = np.clip(np.asarray(p, dtype=np.float64), 0, 1), np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = 1 + q * q / n
        centre = (p + q * q / (2 * n)) / denom
        half = q * np.sqrt(p * (1 - p) / n + q * q / (4 * n * n)) / denom
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def interval_method(estimand: str, B: int, seed: int, min_prompts: int = MIN_PROMPTS) -> str:
    """The interval method in words, for methodology texts."""
    if estimand == "prompts":
        return (f"95% effective-n Wilson interval (t quantile, P - 1 df) from a cluster bootstrap over prompts "
                f"({B} replicates, seed {seed}, variance x P/(P-1)); not estimable below {min_prompts} prompts")
    return (f"95% effective-n Wilson interval (normal quantile) from images resampled within each prompt "
            f"({B} replicates, seed {seed})")


def icc_anova(x, m) -> float:
    """One-way ANOVA estimate of the intraclass correlation of a binary outcome: ``x`` successes out of
    ``m`` images per prompt. Clipped to [0, 1]; NaN with fewer than 2 prompts or no variation."""
    x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
    keep = m > 0
    x, m = x[keep], m[keep]
    P, N = x.size, m.sum()
    if P < 2 or N <= P:
        return math.nan
    p = x.sum() / N
    msb = (np.sum(x * x / m) - N * p * p) / (P - 1)
    msw = (x.sum() - np.sum(x * x / m)) / (N - P)
    m0 = (N - np.sum(m * m) / N) / (P - 1)
    denom = msb + (m0 - 1) * msw
    if denom <= 0:
        return math.nan
    return float(min(1.0, max(0.0, (msb - msw) / denom)))
