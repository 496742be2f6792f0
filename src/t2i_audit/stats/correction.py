"""Correcting observed class shares for a probe's errors, and bootstrap intervals.

Model. Among images the probe answers (does not abstain), the predicted-class distribution is
``q = A' p'``: ``A'[j, i] = P(pred i | true j, answered)`` is the calibration's conditional
confusion matrix and ``p'`` the true distribution among answered images. ``p'`` is estimated on the
probability simplex, by maximum likelihood with EM (default; each EM step keeps ``p'`` on the
simplex) or by least squares under simplex constraints, and then re-weighted by ``1 / (1 - a_j)``
(``a_j`` = the probe's abstention rate on true class ``j``) to undo class-dependent abstention.

Intervals. Bootstrap over both samples: the calibration counts are resampled within
each true class (a multinomial draw per class, equal in law to resampling its images), and the
audit images are resampled for the estimand (``stats.clusters``: prompts with replacement for
*prompts as a sample*, images within each prompt for *these prompts*; no silent switch between them),
and intervals are effective-n Wilson intervals from the replicates (``share_interval``). Calibration replicates are shared by
all groups of one bootstrap replicate, so between-group statistics see the same classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from t2i_audit.stats.clusters import (
    DEFAULT_ESTIMAND,
    MIN_PROMPTS,
    resampled_totals,
    share_interval,
    within_cluster_draws,
)

METHODS = ("em", "lsq", "inverse")


def conditional_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalise answered counts; a class never answered gets a uniform row (no information)."""
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.shape[-2]
    ans = counts[..., :k]
    tot = ans.sum(-1, keepdims=True)
    A = np.where(tot > 0, ans / np.maximum(tot, 1e-300), 1.0 / k)
    allc = counts.sum(-1)
    a = np.where(allc > 0, 1.0 - tot[..., 0] / np.maximum(allc, 1e-300), 0.0)
    return A, np.minimum(a, 0.99)


def outcome_index(labels: np.ndarray, k: int) -> np.ndarray:
    """Map probe labels to outcome columns: class i -> i, unsure (-1) -> k, no person (-2) -> k + 1."""
    labels = np.asarray(labels)
    return np.where(labels >= 0, labels, np.where(labels == -1, k, k + 1)).astype(np.int64)


def em_simplex(n: np.ndarray, A: np.ndarray, iters: int = 5000, tol: float = 1e-9) -> np.ndarray:
    """ML estimate of ``p`` for counts ``n (..., K)`` ~ Multinomial(A^T p), ``A (..., K, K)`` rows
    true class. Vectorised over leading axes. Starts from uniform; EM keeps ``p`` on the simplex."""
    n = np.asarray(n, dtype=np.float64)
    A = np.broadcast_to(np.asarray(A, dtype=np.float64), n.shape[:-1] + (n.shape[-1],) * 2)
    tot = n.sum(-1, keepdims=True)
    p = np.full(n.shape, 1.0 / n.shape[-1])
    for _ in range(iters):
        q = np.einsum("...j,...ji->...i", p, A)
        ratio = np.where(q > 0, n / np.maximum(q, 1e-300), 0.0)
        new = p * np.einsum("...ji,...i->...j", A, ratio) / np.maximum(tot, 1e-300)
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return np.where(tot > 0, p, np.nan)


def lsq_simplex(n: np.ndarray, A: np.ndarray, weight: float = 1e4) -> np.ndarray:
    """Least squares ``min ||A^T p - n/N||`` with ``p >= 0`` (NNLS) and ``sum p = 1`` (a heavily
    weighted extra row). Loops over leading axes."""
    n = np.asarray(n, dtype=np.float64)
    A = np.broadcast_to(np.asarray(A, dtype=np.float64), n.shape[:-1] + (n.shape[-1],) * 2)
    k = n.shape[-1]
    flat_n, flat_A = n.reshape(-1, k), A.reshape(-1, k, k)
    out = np.full(flat_n.shape, np.nan)
    for b in range(flat_n.shape[0]):
        tot = flat_n[b].sum()
        if tot <= 0:
            continue
        M = np.vstack([flat_A[b].T, weight * np.ones((1, k))])
        y = np.concatenate([flat_n[b] / tot, [weight]])
        p, _ = nnls(M, y)
        out[b] = p / p.sum()
    return out.reshape(n.shape)


def inverse(n: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Unconstrained ``p = (A^T)^-1 q`` (can leave the simplex; shown for comparison only)."""
    n = np.asarray(n, dtype=np.float64)
    q = n / np.maximum(n.sum(-1, keepdims=True), 1e-300)
    return np.linalg.solve(np.swapaxes(A, -1, -2), q[..., None])[..., 0]


def correct(answered: np.ndarray, A: np.ndarray, a: np.ndarray, method: str = "em") -> np.ndarray:
    """Corrected true-class shares from answered counts, conditional confusion ``A`` and
    per-class abstention ``a`` (all vectorised over leading axes)."""
    if method not in METHODS:
        raise ValueError(f"unknown correction method {method!r}; use one of {', '.join(METHODS)}")
    fn = {"em": em_simplex, "lsq": lsq_simplex, "inverse": inverse}[method]
    p_ans = fn(answered, A)
    w = p_ans / (1.0 - np.asarray(a))
    return w / np.sum(w, -1, keepdims=True)


def raw_shares(answered: np.ndarray) -> np.ndarray:
    answered = np.asarray(answered, dtype=np.float64)
    tot = answered.sum(-1, keepdims=True)
    return np.where(tot > 0, answered / np.maximum(tot, 1e-300), np.nan)


def calibration_replicates(counts: np.ndarray, B: int, rng: np.random.Generator
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``B`` bootstrap replicates of (A, a): each true class's outcome counts redrawn
    Multinomial(n_j, empirical row j)."""
    return conditional_from_counts(within_cluster_draws(counts, B, rng))


@dataclass
class GroupSample:
    """Outcome counts of one audit group, per prompt: ``(P, K + 2)`` (classes, unsure, no person)."""

    counts: np.ndarray

    @staticmethod
    def from_labels(labels: np.ndarray, prompts, k: int) -> GroupSample:
        prompts = np.asarray(list(prompts))
        uniq, inv = np.unique(prompts, return_inverse=True)
        counts = np.zeros((len(uniq), k + 2), dtype=np.int64)
        np.add.at(counts, (inv, outcome_index(labels, k)), 1)
        return GroupSample(counts)

    @property
    def total(self) -> np.ndarray:
        return self.counts.sum(0)

    @property
    def n_images(self) -> int:
        return int(self.counts.sum())

    @property
    def n_prompts(self) -> int:
        return int(self.counts.shape[0])

    def replicates(self, B: int, rng: np.random.Generator, estimand: str = DEFAULT_ESTIMAND
                   ) -> tuple[np.ndarray, str]:
        """(B, K + 2) resampled total counts for ``estimand`` (``stats.clusters``), and the scheme."""
        return resampled_totals(self.counts, B, rng, estimand)


@dataclass
class GroupShareEstimate:
    """Point estimates and bootstrap replicates for one group."""

    classes: tuple[str, ...]
    raw: np.ndarray
    raw_reps: np.ndarray
    corrected: np.ndarray | None
    corr_reps: np.ndarray | None
    abstain: float
    abstain_reps: np.ndarray
    n_images: int
    n_prompts: int
    scheme: str
    estimand: str = DEFAULT_ESTIMAND
    min_prompts: int = MIN_PROMPTS
    # label-calibrated estimates (stats.labelled), set when labels on the audited images are given
    ppi: np.ndarray | None = None
    ppi_reps: np.ndarray | None = None
    lab_conf: np.ndarray | None = None
    lab_conf_reps: np.ndarray | None = None
    n_labelled: int = 0
    label_note: str | None = None
    ppi_n: float | None = None  # images the PPI++ interval's binomial floor counts (stats.labelled.ppi_interval_n)

    def headline(self) -> tuple[str, np.ndarray, np.ndarray]:
        """(basis, shares, replicates) the statistics use: label-calibrated (PPI++) when labels were
        given, else corrected through the calibration set's confusion matrix, else raw."""
        if self.ppi is not None:
            return "label-calibrated (PPI++)", self.ppi, self.ppi_reps
        if self.corrected is not None:
            return "corrected", self.corrected, self.corr_reps
        return "raw", self.raw, self.raw_reps

    @property
    def n_answered(self) -> float:
        return self.n_images * (1 - self.abstain)

    def n_for(self, reps) -> float:
        """Images the binomial floor of an interval from ``reps`` counts: the PPI++ effective size for
        the PPI++ replicates or a view of them (e.g. one class's column), else the answered images."""
        if self.ppi_n is not None and self.ppi_reps is not None and np.shares_memory(reps, self.ppi_reps):
            return min(self.ppi_n, self.n_answered)
        return self.n_answered

    def interval(self, point: np.ndarray, reps: np.ndarray, level: float = 0.95):
        """(lo, hi, deff, n_eff, note) of shares ``point`` from ``reps`` for this group's estimand
        (``stats.clusters.share_interval`` on :meth:`n_for` images; note = why not estimable, else None)."""
        return share_interval(point, reps, self.n_for(reps), self.n_prompts, self.estimand, level,
                              self.min_prompts)

    def ci(self, reps: np.ndarray, level: float = 0.95, point: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
        """Interval of the shares whose replicates are ``reps`` (the point: the matching estimate)."""
        if point is None:
            point = next(p for p, r in ((self.raw, self.raw_reps), (self.corrected, self.corr_reps),
                                        (self.ppi, self.ppi_reps), (self.lab_conf, self.lab_conf_reps))
                         if r is reps)
        lo, hi, *_ = self.interval(point, reps, level)
        return lo, hi


def estimate_group(sample: GroupSample, classes, cal_counts: np.ndarray | None = None,
                   cal_reps: tuple[np.ndarray, np.ndarray] | None = None, B: int = 1000,
                   rng: np.random.Generator | None = None, method: str = "em",
                   estimand: str = DEFAULT_ESTIMAND, min_prompts: int = MIN_PROMPTS) -> GroupShareEstimate:
    """Raw and corrected shares of one group with bootstrap replicates (see the module doc)."""
    rng = rng or np.random.default_rng(0)
    k = len(classes)
    tot = sample.total
    reps, scheme = sample.replicates(B, rng, estimand)
    raw = raw_shares(tot[:k])
    raw_reps = raw_shares(reps[:, :k])
    n_all = np.maximum(reps.sum(1), 1)
    abst_reps = reps[:, k:].sum(1) / n_all
    abst = float(tot[k:].sum() / max(tot.sum(), 1))
    corr = corr_reps = None
    if cal_counts is not None:
        A, a = conditional_from_counts(cal_counts)
        corr = correct(tot[:k], A, a, method)
        if cal_reps is None:
            cal_reps = calibration_replicates(cal_counts, B, rng)
        corr_reps = correct(reps[:, :k], cal_reps[0], cal_reps[1], method)
    return GroupShareEstimate(tuple(classes), raw, raw_reps, corr, corr_reps, abst, abst_reps, sample.n_images,
                    sample.n_prompts, scheme, estimand, min_prompts)
