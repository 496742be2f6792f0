"""Does a probe's calibration set come from the same distribution as the audited images?

A confusion matrix (or any accuracy) measured on a calibration set transfers to the audited images
only if both come from one distribution (CLEAM, Teo et al. 2023, assumes it silently). This module
tests that assumption with two two-sample tests and says when it fails:

- **MMD² on evaluator embeddings** (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012):
  Gaussian kernel k(x, y) = exp(-|x - y|² / (2 h²)), bandwidth h = median pairwise distance of the
  pooled sample (the median heuristic), unbiased U-statistic, p-value from ``permutations`` random
  relabellings of the pooled sample: p = (1 + #{MMD²_perm >= MMD²_obs}) / (1 + permutations).
  Each side is subsampled (seeded) to at most ``max_per_side`` rows so the kernel stays small.
- **Kolmogorov-Smirnov on the probe's confidence** (e.g. the zero-shot probe's top-1 minus top-2
  margin): a probe that reads clean renders with near-certain margins and generated images with
  hesitant ones is being applied outside its calibration, whatever the embeddings say. Its p-value
  is a permutation one too, on the same subsample and the same strata.

Strata (optional, per image; e.g. the prompt's group and the probes' predicted classes): both
statistics are then size-weighted means of per-stratum statistics, permuted within strata, so a
change of class shares alone (label shift, which a confusion matrix survives) is not flagged.

Clusters (optional, per image; the prompt): images of one prompt are correlated, so the permutation
relabels whole prompt clusters (within each stratum), not single images; permuting images one by one
makes a run with prompt-level variation look "shifted" from a calibration set drawn like it.

The tests are combined with the Bonferroni correction: shift is detected when
``min_i p_i * T <= alpha`` for T tests, so the family-wise false-alarm rate is at most ``alpha``.
Pure numpy/scipy; deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.stats.diversity_features import check_features

MIN_SAMPLES = 10


@dataclass(frozen=True)
class ShiftResult:
    """Outcome of :func:`detect_shift`. ``statistic`` is the MMD²; ``p_value`` the Bonferroni one."""

    detected: bool
    statistic: float
    p_value: float
    n_calib: int
    n_run: int
    tests: list[tuple[str, float, float]] = field(default_factory=list)  # (name, statistic, raw p)

    def record(self, probe: str) -> dict:
        """One ``calibration_shift`` entry: {probe, detected, statistic, p_value, n_calib, n_run, tests}."""
        return {"probe": probe, "detected": bool(self.detected), "statistic": float(self.statistic),
                "p_value": float(self.p_value), "n_calib": int(self.n_calib), "n_run": int(self.n_run),
                "tests": [{"name": n, "statistic": float(s), "p_value": float(p)} for n, s, p in self.tests]}


def _features(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return check_features(a[:, None] if a.ndim == 1 else a, name, MIN_SAMPLES,
                          "the shift test needs that many images per side (add images to the calibration "
                          "set or the run)")


def _subsample(idx: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    return idx if len(idx) <= cap else np.sort(rng.choice(idx, cap, replace=False))


def median_bandwidth(z: np.ndarray) -> float:
    """Median of the pairwise Euclidean distances among the rows of ``z`` (the median heuristic)."""
    sq = np.sum(z * z, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    iu = np.triu_indices(len(z), 1)
    h = float(np.sqrt(np.median(d2[iu])))
    return h if h > 0 else 1.0


def _mmd2_stats(z: np.ndarray, ix: np.ndarray, h: float) -> np.ndarray:
    """Unbiased MMD² of the rows of z marked 1 vs 0 in each column of ``ix`` ((N, R) side labels;
    column 0: observed). NaN where a column has fewer than 2 rows on a side."""
    sq = np.sum(z * z, 1)
    K = np.exp(-np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0) / (2 * h * h))
    np.fill_diagonal(K, 0.0)
    n = ix.sum(0)
    m = len(z) - n
    kx = K @ ix  # per column: each row's kernel sum over the "x" members
    sxx = np.sum(ix * kx, 0)
    sxy = np.sum((1 - ix) * kx, 0)
    syy = K.sum() - 2 * sxy - sxx
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
    return np.where((n >= 2) & (m >= 2), out, np.nan)


def _side_labels(n: int, m: int, blocks: np.ndarray | None, permutations: int, rng: np.random.Generator
                 ) -> np.ndarray:
    """(n + m, permutations + 1) side labels (1 = first sample): column 0 observed, then random
    relabellings. With ``blocks`` (one id per row; a block never spans both sides) whole blocks are
    relabelled -- the images of one prompt move together -- keeping the number of blocks per side."""
    ix = np.zeros((n + m, permutations + 1))
    ix[:n, 0] = 1.0
    if blocks is None:
        for j in range(1, permutations + 1):
            ix[rng.permutation(n + m)[:n], j] = 1.0
        return ix
    uniq, code = np.unique(blocks, return_inverse=True)
    side = np.zeros(len(uniq))
    side[code[:n]] = 1.0
    for j in range(1, permutations + 1):
        ix[:, j] = rng.permutation(side)[code]
    return ix


def mmd2_permutation(x: np.ndarray, y: np.ndarray, permutations: int, rng: np.random.Generator,
                     x_strata=None, y_strata=None, x_clusters=None, y_clusters=None) -> tuple[float, float, float]:
    """MMD² of x vs y (Gaussian kernel, median bandwidth), permutation p-value, bandwidth.

    With strata (e.g. the probe's predicted class per image), the statistic is the size-weighted
    mean of the per-stratum MMD² and labels are permuted within strata: the test then asks whether
    images *read alike* look alike, so a change of class shares alone (label shift, which a
    confusion matrix survives) is not flagged. Strata with fewer than 2 images on a side are skipped.
    """
    h = median_bandwidth(np.concatenate([x, y]))
    obs, p = _stratified(lambda z, ix: _mmd2_stats(z, ix, h), x, y, x_strata, y_strata, permutations, rng,
                         x_clusters, y_clusters)
    return obs, p, h


def _stratified(stats_fn, x: np.ndarray, y: np.ndarray, x_strata, y_strata, permutations: int,
                rng: np.random.Generator, x_clusters=None, y_clusters=None) -> tuple[float, float]:
    """Size-weighted mean over strata of ``stats_fn(pooled, side_labels)`` (the observed statistic,
    then one per relabelling within the stratum), and its permutation p-value.

    With clusters (e.g. the prompt of each image), the relabelled unit is a cluster's images within
    the stratum, not an image: images of one prompt are correlated, and permuting them one by one
    understates the null spread (false alarms). A relabelling that leaves a side of a stratum with
    fewer than 2 images scores that stratum 0 (the null mean)."""
    sx = np.zeros(len(x), dtype=int) if x_strata is None else np.asarray(x_strata)
    sy = np.zeros(len(y), dtype=int) if y_strata is None else np.asarray(y_strata)
    blocks = None
    if x_clusters is not None or y_clusters is not None:
        cx = np.arange(len(x)).astype(str) if x_clusters is None else np.asarray(x_clusters).astype(str)
        cy = np.arange(len(y)).astype(str) if y_clusters is None else np.asarray(y_clusters).astype(str)
        blocks = np.concatenate([np.char.add("x:", cx), np.char.add("y:", cy)])
        bx, by = blocks[:len(x)], blocks[len(x):]
    total, weight = np.zeros(permutations + 1), 0
    for u in np.unique(np.concatenate([sx, sy])):
        xu, yu = x[sx == u], y[sy == u]
        if len(xu) < 2 or len(yu) < 2:
            continue
        b = None if blocks is None else np.concatenate([bx[sx == u], by[sy == u]])
        st = stats_fn(np.concatenate([xu, yu]), _side_labels(len(xu), len(yu), b, permutations, rng))
        total += (len(xu) + len(yu)) * np.where(np.isfinite(st), st, 0.0)
        weight += len(xu) + len(yu)
    if weight == 0:
        raise InputError("shift test strata: no stratum has 2 or more images on both sides; "
                         "pass coarser strata or none")
    stats = total / weight
    return float(stats[0]), float((1 + np.sum(stats[1:] >= stats[0] - 1e-12)) / (1 + permutations))


def _ks_stats(v: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """KS distance of the values marked 1 vs 0 in each column of ``ix`` (ties handled)."""
    order = np.argsort(v, kind="stable")
    last = np.r_[np.diff(v[order]) != 0, True]  # evaluate the ECDFs after each run of tied values
    lab = ix.T[:, order]
    n = lab.sum(1, keepdims=True)
    m = len(v) - n
    with np.errstate(invalid="ignore", divide="ignore"):
        step = lab / n - (1 - lab) / m
        out = np.max(np.abs(np.cumsum(step, 1)[:, last]), 1)
    return np.where((n[:, 0] >= 1) & (m[:, 0] >= 1), out, np.nan)


def ks_permutation(cx: np.ndarray, cy: np.ndarray, permutations: int, rng: np.random.Generator,
                   x_strata=None, y_strata=None, x_clusters=None, y_clusters=None) -> tuple[float, float]:
    """Kolmogorov-Smirnov distance of two 1-D samples with a permutation p-value.

    With strata, the statistic is the size-weighted mean of the per-stratum KS distances and
    labels are permuted within strata (as in :func:`mmd2_permutation`): a probe is more confident
    on some classes than others, so a change of class shares alone moves the pooled distribution.
    """
    return _stratified(_ks_stats, cx, cy, x_strata, y_strata, permutations, rng, x_clusters, y_clusters)


def detect_shift(calib_features, run_features, calib_conf=None, run_conf=None, alpha: float = 0.05,
                 permutations: int = 200, seed: int = 0, max_per_side: int = 1000,
                 calib_strata=None, run_strata=None, calib_clusters=None, run_clusters=None) -> ShiftResult:
    """Test whether the calibration images and the audited (run) images share one distribution.

    ``calib_features`` / ``run_features``: (n, d) evaluator embeddings of the calibration set and of
    the run. ``calib_conf`` / ``run_conf``: optional 1-D probe confidences (margins), given together.
    ``calib_strata`` / ``run_strata``: optional per-image stratum (e.g. the probes' joint predicted
    class); the MMD² is then computed within strata (see :func:`mmd2_permutation`).
    ``calib_clusters`` / ``run_clusters``: optional per-image cluster (the prompt); permutations then
    move a cluster's images together (see :func:`_stratified`); a side without them: one image each.
    Returns a :class:`ShiftResult`; ``detected`` is the Bonferroni-combined decision at ``alpha``.
    """
    x = _features(calib_features, "calibration features")
    y = _features(run_features, "run features")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"calibration features have {x.shape[1]} dimensions, run features {y.shape[1]}: "
                         "embed both sets with the same evaluator")
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha!r}: must be in (0, 1), e.g. 0.05")
    if int(permutations) < 19:
        raise InputError(f"permutations {permutations!r}: need at least 19 for a p-value below 0.05 "
                         "(use 200 or more)")
    if (calib_conf is None) != (run_conf is None):
        raise InputError("probe confidences: give both calib_conf and run_conf, or neither")
    if (calib_strata is None) != (run_strata is None):
        raise InputError("shift test strata: give both calib_strata and run_strata, or neither")
    sx = np.zeros(len(x), dtype=int) if calib_strata is None else np.asarray(calib_strata)
    sy = np.zeros(len(y), dtype=int) if run_strata is None else np.asarray(run_strata)
    if sx.shape != (len(x),) or sy.shape != (len(y),):
        raise InputError(f"shift test strata: {sx.shape} / {sy.shape} for {len(x)} / {len(y)} images; "
                         "give one stratum per image")
    kx = None if calib_clusters is None else np.asarray(calib_clusters)
    ky = None if run_clusters is None else np.asarray(run_clusters)
    for k, nm, size in ((kx, "calib_clusters", len(x)), (ky, "run_clusters", len(y))):
        if k is not None and k.shape != (size,):
            raise InputError(f"shift test {nm}: {k.shape} for {size} images; give one cluster per image")
    rng = np.random.default_rng(seed)
    ix = _subsample(np.arange(len(x)), max_per_side, rng)
    iy = _subsample(np.arange(len(y)), max_per_side, rng)
    cl = (None if kx is None else kx[ix], None if ky is None else ky[iy])
    mmd, p_mmd, h = mmd2_permutation(x[ix], y[iy], int(permutations), rng, sx[ix], sy[iy], *cl)
    name = "mmd2_gaussian" + ("_stratified" if calib_strata is not None else "")
    tests = [(f"{name}(h={h:.3g})", mmd, p_mmd)]
    if calib_conf is not None:
        cc = _features(calib_conf, "calibration confidences")
        rc = _features(run_conf, "run confidences")
        if cc.shape[1] != 1 or rc.shape[1] != 1:
            raise InputError("probe confidences: expected one number per image (1-D arrays)")
        if len(cc) != len(x) or len(rc) != len(y):
            raise InputError(f"probe confidences: {len(cc)} / {len(rc)} values for {len(x)} / {len(y)} "
                             "images; give one confidence per embedded image")
        d, p_ks = ks_permutation(cc[ix, 0], rc[iy, 0], int(permutations), rng, sx[ix], sy[iy], *cl)
        tests.append(("ks_confidence" + ("_stratified" if calib_strata is not None else ""), d, p_ks))
    p_bonf = min(1.0, min(t[2] for t in tests) * len(tests))
    return ShiftResult(bool(p_bonf <= alpha), mmd, p_bonf, len(x), len(y), tests)
