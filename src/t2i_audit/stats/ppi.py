"""Label-calibrated estimators of class shares: prediction-powered inference and per-group CLEAM.

Design. A probe (zero-shot CLIP, the PictoWorld oracle) reads a class for every audited image of a
group (``pred``: class index, -1 when it abstains). A seeded simple random sample of the group's
images is labelled by a human (``labelled`` mask, ``label``: class index, -1 for 'unsure' or
'no person'). Images of one prompt are correlated (``cluster``). Three estimators of the share
``theta_c = P(true = c)`` of every class ``c`` in every group:

* ``ppi_shares`` -- PPI++ (Angelopoulos, Bates, Fannjiang, Jordan, Zrnic, Science 2023;
  Angelopoulos, Duchi, Zrnic, "PPI++: Efficient prediction-powered inference", 2023):
  ``theta = lam * mean_unlabelled(yhat) + mean_labelled(y - lam * yhat)`` with ``y`` and ``yhat``
  the one-hot true and predicted class and ``lam`` power-tuned (clipped to [0, 1] as ppi_py does).
  Abstention: an abstaining reading is ``yhat = 0`` for every class. For ANY fixed ``lam`` the
  estimate is unbiased whatever ``yhat`` is, since ``E[yhat]`` cancels between the two terms; the
  rectifier carries the mass the probe missed. (Tuning ``lam`` on the same data adds O(1/n) bias.)
* ``confusion_shares`` -- CLEAM-like (Teo et al. 2023) with the confusion matrix measured on the
  group's own labels: ``A[j, i] = P(pred i | true j, answered)`` and ``a[j] = P(abstain | true j)``;
  the group's answered counts are corrected by EM on the simplex and re-weighted by ``1/(1-a_j)``
  (as ``t2i_audit.audits.correction`` does). Consistent, not unbiased.
* ``probe_shares`` -- the raw share of each class among the probe's answered readings (biased
  whenever the probe errs; shown side by side).

Labels -1 ('unsure', 'no person') are DROPPED: such images are neither labelled nor unlabelled. The
estimand is then the share among images a labeller can read, and PPI stays unbiased for it when
the probe's readings of the dropped images are distributed like the readable ones'.
The unlabelled set of PPI is the group's images not drawn for labelling.

Intervals. ``interval="bootstrap"`` (default): percentile cluster bootstrap that resamples the
group's prompts with replacement; a resampled prompt brings its labelled and unlabelled images
together (the labels move with their images, so the stratified-by-group, clustered design is
kept); ``lam`` is re-tuned in every replicate. All three estimators use the same draws for one
seed. ``interval="clt"`` (PPI only): the PPI++ normal interval treating images as i.i.d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from t2i_audit.audits.correction import em_simplex
from t2i_audit.errors import InputError

MIN_LABELS = 10
MIN_PROMPTS = 5
INTERVALS = ("bootstrap", "clt")


@dataclass(frozen=True)
class ShareEstimate:
    """One class's share in one group: point, 95% (1 - alpha) interval, counts, PPI's lam."""

    group: str
    cls: str
    point: float
    lo: float
    hi: float
    n_images: int
    n_labelled: int
    n_prompts: int
    lam: float
    method: str


def _ppi_from_sums(n, N, sy, sh, syy, shh, syh, shu, shu2, lam=None):
    """PPI++ mean from sums (vectorised over any shape): labelled count ``n``, unlabelled ``N``,
    sums of y, yhat, y^2, yhat^2, y*yhat over labelled and of yhat, yhat^2 over unlabelled.

    ``lam`` as in ppi_py's ``_calc_lam_glm`` (one coordinate): ``cov_n(y, yhat) /
    ((1 + n/N) var_{n+N-1}(yhat over both sets))``, clipped to [0, 1]; 0 where yhat is constant.
    Variance as ppi_py's ``ppi_mean_ci``: ``var(y - lam yhat)/n + lam^2 var(yhat_u)/N`` (ddof 0).
    Returns (point, variance, lam)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        yb, hb, hu = sy / n, sh / n, shu / N
        if lam is None:
            cov = syh / n - yb * hb
            m = n + N
            s_all = sh + shu
            var_all = (shh + shu2 - s_all ** 2 / m) / (m - 1)
            lam = np.where(var_all > 1e-15, cov / ((1 + n / N) * var_all), 0.0)
            lam = np.clip(lam, 0.0, 1.0)
        lam = np.asarray(lam, dtype=np.float64)
        point = np.where(N > 0, lam * hu, 0.0) + yb - lam * hb   # no unlabelled images: lam = 0
        var_rect = (syy - 2 * lam * syh + lam ** 2 * shh) / n - (yb - lam * hb) ** 2
        var_imp = np.where(N > 0, lam ** 2 * (shu2 / N - hu ** 2) / N, 0.0)
        var = np.maximum(var_rect, 0.0) / n + np.maximum(var_imp, 0.0)
    return point, var, lam


def ppi_mean(y, yhat, yhat_unlabelled, lam=None, alpha=0.05):
    """PPI++ estimate of E[y] with a CLT interval (Angelopoulos et al. 2023; PPI++, ADZ 2023).

    ``y``, ``yhat``: labels and predictions of the n labelled items; ``yhat_unlabelled``: predictions
    of the N unlabelled items. ``lam=None`` power-tunes lam (clipped to [0, 1]); ``lam=1`` is plain
    PPI, ``lam=0`` the classical mean of ``y``. Matches ``ppi_py.ppi_mean_pointestimate`` and
    ``ppi_py.ppi_mean_ci``. Returns ``(point, lo, hi, lam)``."""
    y, yhat, yu = (np.asarray(v, dtype=np.float64) for v in (y, yhat, yhat_unlabelled))
    if y.ndim != 1 or yhat.shape != y.shape or yu.ndim != 1:
        raise InputError(f"ppi_mean: y and yhat must be 1-D of one length (got {y.shape} and "
                         f"{yhat.shape}) and yhat_unlabelled 1-D (got {yu.shape}); pass one value per item")
    if len(y) < 2 or len(yu) < 2:
        raise InputError(f"ppi_mean: need >= 2 labelled and >= 2 unlabelled items (got {len(y)} and "
                         f"{len(yu)}); label or read more items")
    _check_alpha(alpha)
    sums = (len(y), len(yu), y.sum(), yhat.sum(), (y * y).sum(), (yhat * yhat).sum(), (y * yhat).sum(),
            yu.sum(), (yu * yu).sum())
    point, var, lam = _ppi_from_sums(*sums, lam=lam)
    half = norm.ppf(1 - alpha / 2) * np.sqrt(var)
    return float(point), float(point - half), float(point + half), float(lam)


def _check_alpha(alpha):
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1) (got {alpha}); use 0.05 for a 95% interval")


@dataclass
class _Group:
    """One group's images summarised per prompt (rows) in the columns named by ``_columns``."""

    name: str
    stats: np.ndarray
    n_images: int
    n_labelled: int


def _columns(k: int) -> dict:
    """Column slices of the per-prompt statistics: labelled and unlabelled counts, per-class sums of
    y, yhat, y*yhat (labelled) and yhat (unlabelled), the labelled confusion counts (true x
    outcome, abstain last) and the counts of every outcome over all images."""
    sizes = [("n", 1), ("N", 1), ("sy", k), ("sh", k), ("syh", k), ("shu", k), ("conf", k * (k + 1)),
             ("out", k + 1)]
    cols, start = {}, 0
    for name, size in sizes:
        cols[name] = slice(start, start + size)
        start += size
    cols["width"] = start
    return cols


def _as_1d(name, v):
    v = np.asarray(v)
    if v.ndim != 1:
        raise InputError(f"{name} must be 1-D, one entry per image (got shape {v.shape})")
    return v


def _validate(pred, label, labelled, cluster, group, k):
    arrays = {"pred": pred, "label": label, "labelled": labelled, "cluster": cluster}
    if group is not None:
        arrays["group"] = group
    arrays = {name: _as_1d(name, v) for name, v in arrays.items()}
    lengths = {name: len(v) for name, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise InputError("pred, label, labelled, cluster and group need one entry per image; got lengths "
                         + ", ".join(f"{a}={b}" for a, b in lengths.items()))
    if arrays["labelled"].dtype != bool:
        raise InputError("labelled must be a boolean mask (True = drawn for labelling); "
                         f"got dtype {arrays['labelled'].dtype}")
    for name in ("pred", "label"):
        if not np.issubdtype(arrays[name].dtype, np.integer):
            raise InputError(f"{name} must hold integer class indices (-1 = none); got dtype "
                             f"{arrays[name].dtype}")
    lab = arrays["label"][arrays["labelled"]]
    for name, v in (("pred", arrays["pred"]), ("label", lab)):
        bad = v[(v < -1) | (v >= k)]
        if bad.size:
            raise InputError(f"{name} has values outside -1..{k - 1} (e.g. {int(bad[0])}); use class "
                             f"indices 0..{k - 1} for the {k} classes and -1 for none")
    return arrays


def _groups(pred, label, labelled, cluster, group, classes, min_labels=MIN_LABELS):
    """Validate the inputs and summarise every group per prompt (``_Group`` list, sorted by name)."""
    k = len(classes)
    if k < 2:
        raise InputError(f"classes must name >= 2 classes (got {list(classes)})")
    a = _validate(pred, label, labelled, cluster, group, k)
    gr = a["group"] if group is not None else np.zeros(len(a["pred"]), dtype=np.int64)
    sure = a["labelled"] & (a["label"] >= 0)
    keep = ~(a["labelled"] & (a["label"] < 0))               # labels -1 are dropped everywhere
    unl = ~a["labelled"]
    eye = np.vstack([np.eye(k), np.zeros((1, k))])          # row k: abstain -> yhat = 0
    out_idx = np.where(a["pred"] >= 0, a["pred"], k)
    yhat = eye[out_idx]
    y = eye[np.where(sure, a["label"], k)]
    per_image = np.concatenate([
        sure[:, None], unl[:, None], y * sure[:, None], yhat * sure[:, None], y * yhat * sure[:, None],
        yhat * unl[:, None],
        (np.eye(k * (k + 1))[np.where(sure, a["label"], 0) * (k + 1) + out_idx]) * sure[:, None],
        np.eye(k + 1)[out_idx] * keep[:, None]], axis=1)
    out = []
    for g in np.unique(gr):
        m = (gr == g) & keep
        n_lab = int(sure[m].sum())
        if n_lab < min_labels:
            raise InputError(f"too few labels in group {g}: n={n_lab}; need ≥ {min_labels} "
                             "(label more images of this group)")
        _, inv = np.unique(a["cluster"][m], return_inverse=True)
        stats = np.zeros((inv.max() + 1, per_image.shape[1]))
        np.add.at(stats, inv, per_image[m])
        out.append(_Group(str(g), stats, int(m.sum()), n_lab))
    return out


def _replicates(groups, B, seed, min_prompts=MIN_PROMPTS):
    """(G, B, width) cluster-bootstrap sums: each group's prompts resampled with replacement, a
    prompt's labelled and unlabelled images together. One generator, groups in sorted order."""
    if int(B) != B or B < 1:
        raise InputError(f"B must be a positive integer number of bootstrap replicates (got {B})")
    rng = np.random.default_rng(seed)
    reps = []
    for g in groups:
        p = g.stats.shape[0]
        if p < min_prompts:
            raise InputError(f"group {g.name} has {p} prompts; the cluster bootstrap needs ≥ {min_prompts} "
                             "(add prompts, or use interval='clt' for PPI)")
        w = rng.multinomial(p, np.full(p, 1.0 / p), size=int(B)).astype(np.float64)
        reps.append(w @ g.stats)
    return np.stack(reps)


def _ppi_cols(s, c, lam=None):
    """PPI++ per class from summed statistics ``s (..., width)``; y and yhat are 0/1."""
    n, N = s[..., c["n"]], s[..., c["N"]]
    sy, sh, syh, shu = s[..., c["sy"]], s[..., c["sh"]], s[..., c["syh"]], s[..., c["shu"]]
    return _ppi_from_sums(n, N, sy, sh, sy, sh, syh, shu, shu, lam)


def _confusion_cols(s, c, k):
    """Per-group CLEAM: A and a from the labelled confusion counts (a class never answered gets a
    uniform row, a <= 0.99, as ``calibration.conditional_from_counts``), EM on the answered counts."""
    conf = s[..., c["conf"]].reshape(s.shape[:-1] + (k, k + 1))
    ans = conf[..., :k]
    tot = ans.sum(-1, keepdims=True)
    A = np.where(tot > 0, ans / np.maximum(tot, 1e-300), 1.0 / k)
    allc = conf.sum(-1)
    a = np.minimum(np.where(allc > 0, 1.0 - tot[..., 0] / np.maximum(allc, 1e-300), 0.0), 0.99)
    p = em_simplex(s[..., c["out"]][..., :k], A)
    w = p / (1.0 - a)
    return w / np.sum(w, -1, keepdims=True)


def _raw_cols(s, c, k):
    out = s[..., c["out"]][..., :k]
    tot = out.sum(-1, keepdims=True)
    return np.where(tot > 0, out / np.maximum(tot, 1e-300), np.nan)


def _percentile(reps, alpha):
    import warnings

    with warnings.catch_warnings():  # a replicate without labels or answers is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(reps, [alpha / 2, 1 - alpha / 2], axis=-2)


def _assemble(groups, classes, point, lo, hi, lam, method):
    return [ShareEstimate(g.name, str(cls), float(point[i, j]), float(lo[i, j]), float(hi[i, j]),
                          g.n_images, g.n_labelled, g.stats.shape[0], float(lam[i, j]), method)
            for i, g in enumerate(groups) for j, cls in enumerate(classes)]


def ppi_shares(pred, label, labelled, cluster, classes, group=None, *, interval="bootstrap", lam=None,
               B=1000, seed=0, alpha=0.05) -> list[ShareEstimate]:
    """PPI++ share of every class in every group (see the module doc for the design).

    Arrays hold one entry per audited image: ``pred`` (probe class index, -1 abstain), ``label``
    (true class index, -1 unsure / no person: dropped; read only where ``labelled``), ``labelled``
    (bool, the group's random labelling draw), ``cluster`` (prompt id), ``group`` (group id; None =
    one group). ``lam`` None power-tunes lam per class (re-tuned in every bootstrap replicate).
    ``interval``: 'bootstrap' (cluster bootstrap, B replicates, ``seed``) or 'clt' (i.i.d. images).
    Returns one ``ShareEstimate`` per (group, class), groups sorted."""
    if interval not in INTERVALS:
        raise InputError(f"interval must be one of {', '.join(INTERVALS)} (got {interval!r})")
    _check_alpha(alpha)
    groups = _groups(pred, label, labelled, cluster, group, classes)
    c = _columns(len(classes))
    tot = np.stack([g.stats.sum(0) for g in groups])
    point, var, lam_hat = _ppi_cols(tot, c, lam)
    lam_hat = np.broadcast_to(lam_hat, point.shape)
    if interval == "clt":
        half = norm.ppf(1 - alpha / 2) * np.sqrt(var)
        return _assemble(groups, classes, point, point - half, point + half, lam_hat, "ppi++ clt (i.i.d.)")
    reps = _ppi_cols(_replicates(groups, B, seed), c, lam)[0]
    lo, hi = _percentile(reps, alpha)
    return _assemble(groups, classes, point, lo, hi, lam_hat, f"ppi++ cluster bootstrap (B={B})")


def confusion_shares(pred, label, labelled, cluster, classes, group=None, *, B=1000, seed=0,
                     alpha=0.05) -> list[ShareEstimate]:
    """CLEAM-like shares (Teo et al. 2023) with the confusion matrix of each group's own labels,
    EM on the simplex, cluster-bootstrap interval (labels move with their prompt). Arguments as
    ``ppi_shares``; ``lam`` is NaN in the result."""
    _check_alpha(alpha)
    groups = _groups(pred, label, labelled, cluster, group, classes)
    k, c = len(classes), _columns(len(classes))
    point = _confusion_cols(np.stack([g.stats.sum(0) for g in groups]), c, k)
    lo, hi = _percentile(_confusion_cols(_replicates(groups, B, seed), c, k), alpha)
    return _assemble(groups, classes, point, lo, hi, np.full(point.shape, np.nan),
                     f"group confusion EM cluster bootstrap (B={B})")


def probe_shares(pred, label, labelled, cluster, classes, group=None, *, B=1000, seed=0,
                 alpha=0.05) -> list[ShareEstimate]:
    """Raw share of each class among the probe's answered readings (biased when the probe errs),
    cluster-bootstrap interval. Arguments as ``ppi_shares``; labels are only counted (n_labelled)."""
    _check_alpha(alpha)
    groups = _groups(pred, label, labelled, cluster, group, classes, min_labels=0)
    k, c = len(classes), _columns(len(classes))
    point = _raw_cols(np.stack([g.stats.sum(0) for g in groups]), c, k)
    lo, hi = _percentile(_raw_cols(_replicates(groups, B, seed), c, k), alpha)
    return _assemble(groups, classes, point, lo, hi, np.full(point.shape, np.nan),
                     f"raw probe cluster bootstrap (B={B})")


def labels_needed(agreement, width, share=0.5, n_images=None, alpha=0.05) -> int:
    """Labels per group for a PPI++ share interval of total ``width`` (CLT, level 1 - alpha).

    Model (binary view of one class c): y, yhat in {0, 1} with share ``s`` = P(y = 1), and the probe
    disagrees with the label (a misreading or an abstention) at rate ``d = 1 - agreement``.
    Assumptions: errors balanced (P(yhat = 1) = s), every disagreement involves class c (exact for
    two classes, conservative otherwise); default s = 0.5 is the worst case. Then
    ``sigma^2 = s(1-s)``, ``cov(y, yhat) = sigma^2 - d/2`` and, with the tuned
    ``lam = cov / ((1 + n/N) sigma^2)``, the PPI++ variance is
    ``V(n) = [sigma^2 - cov^2 / (sigma^2 (1 + n/N))] / n``. With N -> inf (``n_images`` None):
    ``n = ceil(4 z^2 (d - d^2 / (4 sigma^2)) / width^2)`` (= 4 z^2 a(1-a)/width^2 at s = 0.5).
    With ``n_images`` the smallest n with ``2 z sqrt(V(n)) <= width``, N = n_images - n."""
    if not 0 < agreement <= 1:
        raise InputError(f"agreement must be in (0, 1] (got {agreement}); measure it on labelled images")
    if not 0 < width < 1:
        raise InputError(f"width must be in (0, 1) (got {width}); e.g. 0.1 for +-5 pp")
    if not 0 < share < 1:
        raise InputError(f"share must be in (0, 1) (got {share}); 0.5 is the worst case")
    _check_alpha(alpha)
    z2 = norm.ppf(1 - alpha / 2) ** 2
    s2, d = share * (1 - share), 1.0 - agreement
    cov = max(s2 - d / 2, 0.0)
    if n_images is None:
        return max(int(np.ceil(4 * z2 * (s2 - cov ** 2 / s2) / width ** 2 - 1e-9)), 2)
    n = np.arange(2, int(n_images) - 1, dtype=np.float64)
    v = (s2 - cov ** 2 / (s2 * (1 + n / (n_images - n)))) / n
    ok = np.flatnonzero(4 * z2 * v <= width ** 2)
    if not ok.size:
        raise InputError(f"width {width} is out of reach with {n_images} images at agreement {agreement}; "
                         "widen the target or audit more images")
    return int(n[ok[0]])
