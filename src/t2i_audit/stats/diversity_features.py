"""Feature-space fidelity and diversity of a generated set against a reference set, with
cluster-bootstrap intervals, memory-bounded (pure numpy/scipy, no torch).

Metrics, on Euclidean distances between feature rows (e.g. CLIP embeddings):

- precision, recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS), k = 3: precision is the share of fakes inside the real manifold
  (some real i with d(f, r_i) < its k-NN radius), recall the share of reals inside the fake
  manifold (some fake j with d(r, f_j) < the fake's k-NN radius);
- density, coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models", ICML), k = 5: density counts real balls containing each fake, /k, averaged over fakes;
  coverage is the share of reals whose ball holds at least one fake;
- Vendi score (Friedman & Dieng 2023) of the fakes, overall and per prompt (see ``stats.vendi``).

Conventions follow the reference package ``prdc`` (Naeem et al.): the k-NN radius of a point is
the (k+1)-th smallest distance to its own set *including itself* (distance 0), i.e. the distance
to its k-th neighbour other than itself; ball membership is strict (<). Results agree with
``prdc.compute_prdc`` to round-off.

Memory: distances are computed in row blocks of ``block`` rows (block × N or block × M float64),
never as an N×N or N×M matrix; what is kept is O(N + M) plus two N × C boolean tables (C prompts).

Intervals: a percentile cluster bootstrap over the fakes' prompts (images of one prompt are
correlated); recall, coverage and the overall Vendi score fall with the number of distinct prompts
(a with-replacement draw holds ~63% of them), so their interval is centred on the estimate (the
spread of the replicates, shifted so their mean is the estimate, as ``evals.stats`` does for FD). Per-fake quantities (precision hit, density count) and per-(real, prompt) quantities
(some fake of the prompt holds the real in its ball; the prompt's nearest fake lies in the real's
ball) are computed once, so a replicate is a reduction over the drawn prompts, not a new k-NN
search. The bootstrap is conditional: the reals and all k-NN radii (real and fake) are held at
their full-sample values; a drawn prompt counts once for recall/coverage (an "any" over its
fakes) and by its multiplicity for precision/density/Vendi. It measures the variability due to
which prompts were generated, not the variability of the reference set or of the radii.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.stats.resampling import centred_interval, cluster_draw_counts, percentile_interval
from t2i_audit.stats.vendi import (
    cluster_moments,
    normalise_rows,
    per_cluster_vendi,
    vendi_score,
    vendi_score_from_moment,
    weighted_vendi_from_moments,
)

LEVEL = 0.95
DEFAULT_REPS = 1000
DEFAULT_BLOCK = 1024


@dataclass(frozen=True)
class DiversityEstimate:
    """One metric: value, percentile interval [lo, hi], sample sizes, k (None for Vendi) and method.
    ``n_real`` is 0 for metrics of the generated set alone (Vendi)."""

    metric: str
    value: float
    lo: float
    hi: float
    n_real: int
    n_fake: int
    n_clusters: int
    k: int | None
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def check_features(x, name: str, min_rows: int = 1, fix: str = "add images or lower k") -> np.ndarray:
    """``x`` as a finite float64 n×d array with at least ``min_rows`` rows, or InputError (``fix``
    says what to do about too few rows). Feature checks of every stats module go through here."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"{name}: shape {a.shape} is not a 2-D n×d array; pass one feature row per image")
    if a.shape[0] < min_rows:
        raise InputError(f"{name}: {a.shape[0]} rows, need at least {min_rows}; {fix}")
    if not np.all(np.isfinite(a)):
        bad = int((~np.all(np.isfinite(a), axis=1)).sum())
        raise InputError(f"{name}: {bad} rows hold NaN/Inf; drop or re-extract those features")
    return a


def _group(clusters, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order sorting fakes by cluster, start index of each cluster in that order, cluster sizes)."""
    if clusters is None:
        codes = np.arange(m)
    else:
        c = np.asarray(clusters)
        if c.ndim != 1 or c.shape[0] != m:
            raise InputError(f"clusters: {c.shape} labels for {m} fake rows; give one prompt id per fake row")
        codes = np.unique(c, return_inverse=True)[1].reshape(-1)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return order, starts, sizes


def _dist_block(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances of rows of ``a`` to rows of ``b`` (‖a‖² + ‖b‖² − 2ab, clipped at 0)."""
    d = a @ b.T
    d *= -2.0
    d += (a * a).sum(axis=1)[:, None]
    d += b_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return np.sqrt(d, out=d)


def knn_radii(x, ks, *, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """k-NN radii of each row within its own set, one column per k in ``ks``: the (k+1)-th smallest
    distance counting the row itself (prdc's convention). Computed in blocks of ``block`` rows."""
    x = np.asarray(x, dtype=np.float64)
    ks = [int(k) for k in np.atleast_1d(ks)]
    sq = (x * x).sum(axis=1)
    out = np.empty((x.shape[0], len(ks)))
    for s in range(0, x.shape[0], block):
        d = _dist_block(x[s:s + block], x, sq)
        out[s:s + block] = np.partition(d, ks, axis=1)[:, ks]
    return out


def _cross_pass(real, fake, r_pr, f_pr, r_dc, starts, block):
    """One blocked pass over real × fake distances. Returns per-fake precision hits and density
    counts, and the per-(real, cluster) recall and coverage tables (N × C booleans)."""
    n, m, c = real.shape[0], fake.shape[0], starts.size
    f_sq = (fake * fake).sum(axis=1)
    prec_hit = np.zeros(m, bool)
    dens = np.zeros(m, np.int64)
    rec_rc = np.empty((n, c), bool)
    cov_rc = np.empty((n, c), bool)
    for s in range(0, n, block):
        d = _dist_block(real[s:s + block], fake, f_sq)
        prec_hit |= (d < r_pr[s:s + block, None]).any(axis=0)
        dens += (d < r_dc[s:s + block, None]).sum(axis=0)
        rec_rc[s:s + block] = np.logical_or.reduceat(d < f_pr[None, :], starts, axis=1)
        cov_rc[s:s + block] = np.minimum.reduceat(d, starts, axis=1) < r_dc[s:s + block, None]
    return prec_hit, dens, rec_rc, cov_rc


def _interval(boot: np.ndarray, level: float, centre: float | None = None) -> tuple[float, float]:
    """Percentile interval (``stats.resampling``); with ``centre``, the centred interval: for
    statistics that fall with the number of distinct prompts, which a with-replacement draw lowers
    to ~63%."""
    if boot.size == 0:
        return math.nan, math.nan
    return percentile_interval(boot, level) if centre is None else centred_interval(centre, boot, level)


def _method(base: str, c: int, reps: int, seed: int, level: float, centred: bool = False) -> str:
    if c < 2 or reps == 0:
        return f"{base}; no interval (fewer than 2 prompts or reps = 0)"
    kind = "centred percentile" if centred else "percentile"
    return (f"{base}; {int(round(level * 100))}% {kind} cluster bootstrap over {c} prompts, {reps} reps, "
            f"seed {seed}, conditional on the reals and full-sample k-NN radii")


def _check_args(k_values, block: int, reps: int, level: float) -> None:
    for name, k in k_values.items():
        if int(k) != k or k < 1:
            raise InputError(f"{name}: {k} is not a positive integer neighbour count; use e.g. 3 or 5")
    if int(block) != block or block < 1:
        raise InputError(f"block: {block} rows per block; use a positive integer such as 1024")
    if int(reps) != reps or reps < 0:
        raise InputError(f"reps: {reps} bootstrap replicates; use a non-negative integer (default 1000)")
    if not 0 < level < 1:
        raise InputError(f"level: {level} is not a confidence level; use a value in (0, 1) such as 0.95")


def prdc_features(real, fake, clusters=None, *, k_pr: int = 3, k_dc: int = 5, block: int = DEFAULT_BLOCK,
                  reps: int = DEFAULT_REPS, seed: int = 0, level: float = LEVEL) -> dict[str, DiversityEstimate]:
    """Precision and recall (Kynkäänniemi et al. 2019, k = ``k_pr``) and density and coverage
    (Naeem et al. 2020, k = ``k_dc``) of ``fake`` (M×d) against ``real`` (N×d), with percentile
    cluster-bootstrap intervals over ``clusters`` (one prompt id per fake row; None: every fake its
    own cluster). Distances in float64 blocks of ``block`` rows; point values equal
    ``prdc.compute_prdc(real, fake, k)`` when k_pr = k_dc = k. See the module docstring for the
    conditional bootstrap. Returns {"precision", "recall", "density", "coverage"}.
    """
    _check_args({"k_pr": k_pr, "k_dc": k_dc}, block, reps, level)
    k_max = max(k_pr, k_dc)
    real = check_features(real, "real features", min_rows=k_max + 1)
    fake = check_features(fake, "fake features", min_rows=k_max + 1)
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"features: real rows have {real.shape[1]} dims, fake rows {fake.shape[1]}; "
                         "extract both sets with the same feature model")
    order, starts, sizes = _group(clusters, fake.shape[0])
    fake = fake[order]
    rr = knn_radii(real, [k_pr, k_dc], block=block)
    f_pr = knn_radii(fake, [k_pr], block=block)[:, 0]
    prec_hit, dens, rec_rc, cov_rc = _cross_pass(real, fake, rr[:, 0], f_pr, rr[:, 1], starts, block)
    n, m, c = real.shape[0], fake.shape[0], starts.size
    values = {"precision": float(prec_hit.mean()), "density": float(dens.sum() / (k_dc * m)),
              "recall": float(rec_rc.any(axis=1).mean()), "coverage": float(cov_rc.any(axis=1).mean())}
    boot = {name: [] for name in values}
    if c >= 2 and reps > 0:
        prec_c = np.add.reduceat(prec_hit.astype(np.float64), starts)
        dens_c = np.add.reduceat(dens.astype(np.float64), starts)
        rec_f, cov_f = rec_rc.astype(np.float32), cov_rc.astype(np.float32)
        for w in cluster_draw_counts(c, reps, seed):
            tot = w @ sizes
            present = (w > 0).astype(np.float32).T
            boot["precision"].append(w @ prec_c / tot)
            boot["density"].append(w @ dens_c / (k_dc * tot))
            boot["recall"].append(((rec_f @ present) > 0).mean(axis=0))
            boot["coverage"].append(((cov_f @ present) > 0).mean(axis=0))
    papers = {"precision": ("Kynkäänniemi et al. 2019", k_pr), "recall": ("Kynkäänniemi et al. 2019", k_pr),
              "density": ("Naeem et al. 2020", k_dc), "coverage": ("Naeem et al. 2020", k_dc)}
    out = {}
    for name, v in values.items():
        b = np.concatenate(boot[name]) if boot[name] else np.empty(0)
        centred = name in ("recall", "coverage")
        lo, hi = _interval(b, level, v if centred else None)
        paper, k = papers[name]
        base = f"{name} ({paper}), k = {k} Euclidean k-NN radii, prdc conventions"
        out[name] = DiversityEstimate(name, v, lo, hi, n, m, c, k,
                                      _method(base, c, reps, seed, level, centred))
    return out


def _moment_boot(x: np.ndarray, starts, sizes, reps: int, seed: int, q: float,
                 max_bytes: int = 1 << 30) -> np.ndarray:
    """Vendi replicates of the clustered fakes: per-cluster moments (C·d² floats) when they fit in
    ``max_bytes``, else each replicate's moment rebuilt from the rows (slower, same values)."""
    c, d = starts.size, x.shape[1]
    if c * d * d * 8 <= max_bytes:
        moments = cluster_moments(x, starts)
        return np.concatenate([weighted_vendi_from_moments(moments, sizes.astype(np.float64), w, q)
                               for w in cluster_draw_counts(c, reps, seed)])
    codes = np.repeat(np.arange(c), sizes)
    out = []
    for w in cluster_draw_counts(c, reps, seed):
        for row in w:
            wr = row[codes]
            s = (x * wr[:, None]).T @ x / wr.sum()
            out.append(vendi_score_from_moment(s, q))
    return np.array(out)


def vendi_features(fake, clusters=None, *, q: float = 1.0, reps: int = DEFAULT_REPS, seed: int = 0,
                   level: float = LEVEL) -> dict[str, DiversityEstimate]:
    """Vendi score (Friedman & Dieng 2023, cosine kernel, order ``q``) of all fakes, and the mean
    over prompts of the per-prompt (intra-prompt) Vendi score, each with a percentile cluster
    bootstrap over ``clusters``. The overall replicate is the Vendi score of the drawn prompts'
    images (a prompt drawn twice counts twice, via per-prompt second moments; O(C·d²) memory);
    the per-prompt replicate is the mean of the drawn prompts' scores.
    Returns {"vendi", "vendi_per_prompt"}.
    """
    _check_args({}, 1, reps, level)
    x = normalise_rows(check_features(fake, "fake features", min_rows=1), "fake features")
    order, starts, sizes = _group(clusters, x.shape[0])
    x = x[order]
    m, c = x.shape[0], starts.size
    value = vendi_score(x, q, normalize=False)
    per = per_cluster_vendi(x, starts, q)
    ok = c >= 2 and reps > 0
    boot = _moment_boot(x, starts, sizes, reps, seed, q) if ok else np.empty(0)
    boot_pp = (np.concatenate([w @ per / c for w in cluster_draw_counts(c, reps, seed)])
               if ok else np.empty(0))
    qs = f"order q = {q:g}, cosine kernel on L2-normalised features (Friedman & Dieng 2023)"
    lo, hi = _interval(boot, level, value)
    lo_p, hi_p = _interval(boot_pp, level)
    return {
        "vendi": DiversityEstimate("vendi", value, lo, hi, 0, m, c, None,
                                   _method(f"Vendi score of all fakes, {qs}", c, reps, seed, level, True)),
        "vendi_per_prompt": DiversityEstimate(
            "vendi_per_prompt", float(per.mean()), lo_p, hi_p, 0, m, c, None,
            _method(f"mean over prompts of the intra-prompt Vendi score, {qs}", c, reps, seed, level)),
    }


def diversity_features(real, fake, clusters=None, *, k_pr: int = 3, k_dc: int = 5, q: float = 1.0,
                       block: int = DEFAULT_BLOCK, reps: int = DEFAULT_REPS, seed: int = 0,
                       level: float = LEVEL) -> dict[str, DiversityEstimate]:
    """All metrics: :func:`prdc_features` and :func:`vendi_features` with the same bootstrap draws
    (same ``seed``). Returns {"precision", "recall", "density", "coverage", "vendi",
    "vendi_per_prompt"}."""
    out = prdc_features(real, fake, clusters, k_pr=k_pr, k_dc=k_dc, block=block, reps=reps, seed=seed,
                        level=level)
    out.update(vendi_features(fake, clusters, q=q, reps=reps, seed=seed, level=level))
    return out
