"""Class shares from a probe's reading of every image plus true labels on a random subset of them.

The audited images of one group are split into a labelled subset (a simple random sample drawn
within the group: the labelling design is stratified by group) and the rest. Everything the two
estimators need is a pair of count tables, per prompt (images of one prompt are correlated):

- ``L (P, K + 1, K + 2)``: labelled images, label (rows: the K classes, then 'none' for a label
  'unsure' / 'no person') x probe outcome (columns: the K classes, then 'unsure' and 'no person'
  for an abstaining probe).
- ``U (P, K + 2)``: unlabelled images, probe outcome.

Estimators (each vectorised over leading axes, so bootstrap replicates cost one call):

- :func:`ppi_shares` -- prediction-powered inference, PPI++ (Angelopoulos, Bates, Fannjiang, Jordan
  & Zrnic, Science 2023; Angelopoulos, Duchi & Zrnic 2023): for class c with f = 1[probe reads c]
  (0 when it abstains) and Y = 1[label is c] (0 for a label 'none'), ``theta = lam * mean_unl(f) +
  mean_lab(Y - lam f)`` with the power-tuned ``lam = cov_lab(Y, f) / ((1 + n/N) var_all(f))``
  clipped to [0, 1], tuned per class ("element" mode). With lambda fixed this is unbiased for
  P(label = c) whatever the probe's errors; with lambda estimated from the same labels and clipped
  it is consistent, not exactly unbiased, and a good probe only narrows the interval. Equal to
  ``ppi_py.ppi_mean_pointestimate`` on one-hot inputs (``normalise=False``). The audit's estimand is
  the share among images a labeller can read, so by default the K estimates are divided by their sum
  (a ratio estimator, consistent but not unbiased: images labelled 'none' count in neither
  numerator nor denominator).
- :func:`confusion_shares` -- the confusion matrix measured on the labelled subset of *this* group
  (CLEAM-like: Teo et al. 2023), then the probe's outcome counts of all the group's images
  corrected through it by EM on the simplex (``stats.correction``).

Intervals: :func:`resample_tables` resamples for the estimand (``stats.clusters``): prompts with
their labelled and unlabelled images together (prompts as a sample), or images within each prompt
(these prompts); the interval is ``stats.clusters.share_interval`` on the replicates, its binomial
floor on :func:`ppi_interval_n` images (``stats.clusters.ppi_binomial_n``). ``ppi_ci_iid`` is the CLT interval of ``ppi_py.ppi_mean_ci`` (i.i.d. images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import (
    check_estimand,
    cluster_draw_matrix,
    ppi_binomial_n,
    within_cluster_totals,
)
from t2i_audit.stats.correction import conditional_from_counts, correct, outcome_index

MIN_LABELS = 10  # fewer valid labels in a group: no label-calibrated estimate (said in the output)


@dataclass(frozen=True)
class LabelTables:
    """Per-prompt count tables of one group (see the module doc)."""

    L: np.ndarray  # (P, K, K + 2) int
    U: np.ndarray  # (P, K + 2) int

    @property
    def n_labelled(self) -> int:
        """Labelled images with a class label (labels 'unsure' / 'no person' not counted)."""
        return int(self.L[..., :-1, :].sum())

    @property
    def n_images(self) -> int:
        return int(self.U.sum() + self.L.sum())


def outcome_columns(pred: np.ndarray, k: int) -> np.ndarray:
    """Probe labels (class index, -1 unsure, -2 no person) -> outcome columns 0..K+1, validated
    (``stats.correction.outcome_index``)."""
    pred = np.asarray(pred, dtype=np.int64)
    if pred.size and (pred.max() >= k or pred.min() < -2):
        raise InputError(f"probe readings must be class indices 0..{k - 1}, -1 (unsure) or -2 (no person)")
    return outcome_index(pred, k)


def label_tables(pred, truth, prompts, k: int) -> LabelTables:
    """Count tables from per-image arrays: ``pred`` (probe reading), ``truth`` (label class index;
    -1 for a label 'unsure'/'no person'; -9 for an image outside the labelled subset), ``prompts``
    (cluster ids)."""
    pred, truth = np.asarray(pred), np.asarray(truth, dtype=np.int64)
    prompts = np.asarray(list(prompts))
    if not (len(pred) == len(truth) == len(prompts)):
        raise InputError(f"readings ({len(pred)}), labels ({len(truth)}) and prompts ({len(prompts)}) differ in length")
    if truth.size and truth.max() >= k:
        raise InputError(f"label index {int(truth.max())} out of range for {k} classes")
    col = outcome_columns(pred, k)
    uniq, inv = np.unique(prompts, return_inverse=True)
    L = np.zeros((len(uniq), k + 1, k + 2), dtype=np.int64)
    U = np.zeros((len(uniq), k + 2), dtype=np.int64)
    lab = truth != -9
    np.add.at(L, (inv[lab], np.where(truth[lab] >= 0, truth[lab], k), col[lab]), 1)
    np.add.at(U, (inv[~lab], col[~lab]), 1)
    return LabelTables(L, U)


def replicate_tables(t: LabelTables, counts: np.ndarray) -> LabelTables:
    """The group's summed tables under cluster-bootstrap draw counts ``(B, P)``
    (``stats.clusters.cluster_draws``): prompts resampled with replacement."""
    return LabelTables(np.einsum("bp,pij->bij", counts, t.L), counts @ t.U)


def resample_tables(t: LabelTables, B: int, rng: np.random.Generator, estimand: str) -> LabelTables:
    """``B`` replicates of the group's summed tables for ``estimand``: prompts resampled (labelled
    and unlabelled images of a prompt together), or -- *these prompts* -- labelled and unlabelled
    images resampled within each prompt (stratified as the labelling design is)."""
    P = t.U.shape[0]
    if check_estimand(estimand) == "prompts":
        return replicate_tables(t, cluster_draw_matrix(P, B, rng))
    shape = t.L.shape[1:]
    L = within_cluster_totals(t.L.reshape(P, -1), B, rng).reshape((B,) + shape)
    return LabelTables(L, within_cluster_totals(t.U, B, rng))


def _sums(L: np.ndarray, U: np.ndarray, k: int):
    """Per class: n, N, sum Y, sum f (labelled), sum Y f, sum f (unlabelled); leading axes kept."""
    n = L.sum((-1, -2)).astype(np.float64)
    N = U.sum(-1).astype(np.float64)
    sy = L.sum(-1)[..., :k].astype(np.float64)  # (..., K): labels of class c
    sf = L.sum(-2)[..., :k].astype(np.float64)  # probe read c, labelled
    syf = np.diagonal(L[..., :k, :k], axis1=-2, axis2=-1).astype(np.float64)
    uf = U[..., :k].astype(np.float64)
    return n[..., None], N[..., None], sy, sf, syf, uf


def ppi_lambda(L: np.ndarray, U: np.ndarray) -> np.ndarray:
    """PPI++ power-tuned lambda per class (clipped to [0, 1]; 0 where the probe never reads c)."""
    k = L.shape[-2] - 1
    n, N, sy, sf, syf, uf = _sums(L, U, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = syf / n - (sy / n) * (sf / n)
        m = n + N
        s = sf + uf
        var = (s - s * s / m) / (m - 1)
        lam = cov / ((1 + n / N) * var)
    return np.clip(np.where(np.isfinite(lam), lam, 0.0), 0.0, 1.0)


def ppi_shares(L: np.ndarray, U: np.ndarray, lam: np.ndarray | None = None, normalise: bool = True
               ) -> np.ndarray:
    """PPI++ estimate of every class share (..., K) from summed tables ``L (..., K+1, K+2)``,
    ``U (..., K+2)``. ``lam`` None: power-tuned per class; 1: plain PPI; 0: labels only.
    ``normalise``: divide by the sum over classes (shares among readable images; see module doc)."""
    k = L.shape[-2] - 1
    n, N, sy, sf, syf, uf = _sums(L, U, k)
    lam = ppi_lambda(L, U) if lam is None else np.broadcast_to(np.asarray(lam, dtype=np.float64), sy.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        unl = np.divide(uf, N, out=np.zeros_like(uf), where=N > 0)  # every image labelled: labels only
        theta = lam * unl + sy / n - lam * sf / n
        if normalise:
            theta = np.clip(theta, 0, None)
            theta = theta / theta.sum(-1, keepdims=True)
    return theta


def ppi_interval_n(L: np.ndarray, U: np.ndarray) -> float:
    """Effective images of the PPI++ shares of summed tables ``L``, ``U`` for the binomial floor of
    their interval (``stats.clusters.ppi_binomial_n``: power-tuned lambda, the N unlabelled images,
    the labels with a class)."""
    return ppi_binomial_n(ppi_lambda(L, U), U.sum(), L[..., :-1, :].sum())


def ppi_ci_iid(L: np.ndarray, U: np.ndarray, lam: np.ndarray | None = None, level: float = 0.95
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point and CLT interval of P(label = c) per class, images i.i.d. (``ppi_py.ppi_mean_ci``)."""
    k = L.shape[-2] - 1
    n, N, sy, sf, syf, uf = _sums(L, U, k)
    lam = ppi_lambda(L, U) if lam is None else np.broadcast_to(np.asarray(lam, dtype=np.float64), sy.shape)
    theta = ppi_shares(L, U, lam, normalise=False)
    var_unl = lam**2 * (uf / N) * (1 - uf / N)  # variance of lam * f over the unlabelled images
    # variance of Y - lam f over the labelled images, from the same sums (Y, f binary)
    mean_r = sy / n - lam * sf / n
    second = sy / n - 2 * lam * syf / n + lam**2 * sf / n
    var_rect = second - mean_r**2
    se = np.sqrt(np.maximum(var_unl, 0) / N + np.maximum(var_rect, 0) / n)
    z = norm.ppf(1 - (1 - level) / 2)
    return theta, theta - z * se, theta + z * se


def confusion_shares(L: np.ndarray, U: np.ndarray, method: str = "em") -> np.ndarray:
    """Shares corrected through the confusion matrix measured on the labelled images of the group
    (rows: true class; abstention as its own outcome, re-weighted as ``stats.correction`` does)."""
    k = L.shape[-2] - 1
    A, a = conditional_from_counts(L[..., :k, :])
    answered = (L.sum(-2) + U)[..., :k]
    return correct(answered, A, a, method)


def check_labels(t: LabelTables, group: str, minimum: int = MIN_LABELS) -> str | None:
    """A one-line note when a group has too few valid labels for a label-calibrated estimate."""
    if t.n_labelled < minimum:
        return f"too few labels in group {group}: n={t.n_labelled}; need >= {minimum}"
    return None
