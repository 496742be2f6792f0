"""Vendi score of a feature set (Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation
Metric for Machine Learning", TMLR), pure numpy/scipy, memory O(d²) or O(n²), whichever is smaller.

With X the n×d features, each row L2-normalised, and K = XXᵀ the cosine-similarity kernel, the
order-q Vendi score is exp(H_q(λ)) where λ are the eigenvalues of K/n (they sum to 1) and H_q the
Rényi entropy of order q (q = 1: Shannon). It reads as "the effective number of distinct items":
1 for n identical rows, n for n orthogonal rows. K/n and XᵀX/n share their non-zero eigenvalues,
so for n > d the d×d matrix is decomposed instead (the `vendi_score.vendi.score_dual` route).

The score is a functional of the empirical second-moment matrix Σ p_i x_i x_iᵀ, so a weighted
sample (cluster-bootstrap replicate) has a well-defined score: :func:`weighted_vendi_from_moments`.
Note: the reference package's ``score_X`` ignores its ``q`` argument (always Shannon);
``score_dual`` and ``score_K`` honour it.
"""

from __future__ import annotations

import math

import numpy as np

from t2i_audit.errors import InputError


def normalise_rows(x: np.ndarray, name: str = "features") -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); an all-zero row has no direction and is refused."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise InputError(f"{name}: {int((norms == 0).sum())} all-zero rows have no direction for the cosine "
                         "kernel; drop them before computing the Vendi score")
    return x / norms[:, None]


def entropy_q(p: np.ndarray, q: float = 1.0) -> float:
    """Rényi entropy of order q of a probability vector (q = 1 Shannon, q = inf min-entropy).
    Eigenvalues below max · n · eps (round-off of a positive semi-definite matrix, which would
    otherwise count for q < 1) are dropped."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > p.max() * p.size * np.finfo(np.float64).eps]  # numerical rank, as numpy's matrix_rank
    if q == 1:
        return float(-(p * np.log(p)).sum())
    if math.isinf(q):
        return float(-np.log(p.max()))
    return float(np.log((p ** q).sum()) / (1.0 - q))


def _check_q(q: float) -> float:
    q = float(q)
    if not (q >= 0) or math.isnan(q):
        raise InputError(f"q: {q} is not a valid Vendi order; use q >= 0 (1 = Shannon, inf = min-entropy)")
    return q


def vendi_score(x, q: float = 1.0, *, normalize: bool = True) -> float:
    """Order-q Vendi score of the rows of ``x`` under the cosine kernel (Friedman & Dieng 2023).

    Decomposes XᵀX/n (d×d) when n > d, else XXᵀ/n (n×n): same non-zero spectrum, memory
    O(min(n, d)²). Agrees with ``vendi_score.vendi.score_dual`` / ``score_X`` (q = 1) to round-off.
    """
    q = _check_q(q)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"features: shape {x.shape} is not a non-empty n×d array; pass one row per image")
    if not np.all(np.isfinite(x)):
        raise InputError("features: NaN/Inf values; drop or fix those rows before computing the Vendi score")
    if normalize:
        x = normalise_rows(x)
    n, d = x.shape
    gram = (x.T @ x) if n > d else (x @ x.T)
    w = np.linalg.eigvalsh(gram / n)
    return float(np.exp(entropy_q(w, q)))


def weighted_vendi_from_moments(moments: np.ndarray, counts: np.ndarray, weights: np.ndarray,
                                q: float = 1.0) -> np.ndarray:
    """Vendi scores of reweighted samples from per-cluster second moments.

    ``moments`` (C×d×d) holds S_c = Σ_{j in c} x_j x_jᵀ of normalised rows, ``counts`` (C) the
    images per cluster, ``weights`` (B×C) how often each cluster is drawn in each of B replicates.
    Replicate b has moment Σ_c w_bc S_c / Σ_c w_bc n_c, whose eigenvalues are those of the kernel
    of the drawn images over their number: its Vendi score equals that of the concatenated draw.
    """
    c, d, _ = moments.shape
    w = np.asarray(weights, dtype=np.float64)
    s = (w @ moments.reshape(c, d * d)).reshape(-1, d, d) / (w @ counts)[:, None, None]
    eig = np.linalg.eigvalsh(s)
    return np.array([np.exp(entropy_q(e, q)) for e in eig])


def cluster_moments(x_sorted: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-cluster second moments S_c = X_cᵀ X_c (C×d×d) of rows grouped contiguously at ``starts``."""
    ends = np.append(starts[1:], x_sorted.shape[0])
    return np.stack([x_sorted[s:e].T @ x_sorted[s:e] for s, e in zip(starts, ends)])


def per_cluster_vendi(x_sorted: np.ndarray, starts: np.ndarray, q: float = 1.0) -> np.ndarray:
    """Vendi score within each cluster (intra-prompt diversity) of normalised rows grouped at
    ``starts``; a cluster of one image scores 1."""
    ends = np.append(starts[1:], x_sorted.shape[0])
    return np.array([vendi_score(x_sorted[s:e], q, normalize=False) for s, e in zip(starts, ends)])


def vendi_score_from_moment(moment: np.ndarray, q: float = 1.0) -> float:
    """exp(H_q) of the eigenvalues of a trace-one second-moment matrix Σ p_i x_i x_iᵀ."""
    return float(np.exp(entropy_q(np.linalg.eigvalsh(moment), q)))
