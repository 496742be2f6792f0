"""Distribution metrics between a generated image set and a reference set, on any features.

- Fréchet distance (Heusel et al. 2017, "FID" on Inception features): ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂
  − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½. Moments are float64 running sums (memory flat in N); the trace of
  the matrix square root comes from a symmetric eigendecomposition.
- FD∞ (Chong & Forsyth 2020): FD_N is biased in N, FD_N ≈ FD∞ + k/N; FD∞ is the intercept of a
  least-squares line through FD_N at several N against 1/N.
- KID (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel
  k(x, y) = (γ xᵀy + c)³, γ = 1/d, c = 1, averaged over random subsets (mean and std).
- CMMD (Jayasumana et al. 2024): MMD² with a Gaussian RBF kernel, σ = 10, on L2-normalised CLIP
  embeddings, ×1000. Default estimator: google-research ``cmmd``'s (kernel means including the
  diagonal, the minimum-variance V-statistic); ``unbiased=True`` drops the diagonals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from t2i_audit.errors import InputError


def check_features(x, name: str, min_n: int = 2) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"{name}: expected a 2-d (images × features) array, got shape {a.shape}")
    if a.shape[0] < min_n:
        raise InputError(f"{name}: {a.shape[0]} image(s); this metric needs at least {min_n} images per set")
    bad = ~np.isfinite(a)
    if bad.any():
        rows = int(bad.any(axis=1).sum())
        raise InputError(f"{name}: {rows} image(s) have NaN/Inf features; the extractor failed on them "
                         "(check the weights file and that the images are valid)")
    return a


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature dimensions differ ({a.shape[1]} vs {b.shape[1]}); both sets must be "
                         "embedded with the same extractor")


class GaussianMoments:
    """Running float64 sums (n, Σx, ΣxxT) of features: mean and covariance, memory O(D²)."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)

    @classmethod
    def of(cls, feats) -> GaussianMoments:
        m = cls(np.asarray(feats).shape[1])
        m.update(feats)
        return m

    def update(self, feats) -> GaussianMoments:
        f = check_features(feats, "features", min_n=0)
        if f.shape[1] != self.sum.shape[0]:
            raise InputError(f"features: dimension {f.shape[1]}, expected {self.sum.shape[0]}")
        self.n += f.shape[0]
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f
        return self

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise InputError(f"Fréchet distance: {self.n} image(s) in a set; it needs at least 2 per set")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n": np.array(self.n), "sum": self.sum, "outer": self.outer}

    @classmethod
    def from_arrays(cls, d: dict) -> GaussianMoments:
        m = cls(d["sum"].shape[0])
        m.n, m.sum, m.outer = int(d["n"]), np.asarray(d["sum"], np.float64), np.asarray(d["outer"], np.float64)
        return m


def _sqrtm_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_from_moments(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    r = _sqrtm_psd(sigma1)
    m = r @ sigma2 @ r
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    d = np.asarray(mu1) - np.asarray(mu2)
    return float(d @ d + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt)


def frechet_distance(gen, ref) -> float:
    """Fréchet distance between two feature sets, or two ``GaussianMoments``."""
    g = gen if isinstance(gen, GaussianMoments) else GaussianMoments.of(check_features(gen, "generated set"))
    r = ref if isinstance(ref, GaussianMoments) else GaussianMoments.of(check_features(ref, "reference set"))
    if g.sum.shape != r.sum.shape:
        raise InputError(f"feature dimensions differ ({g.sum.shape[0]} vs {r.sum.shape[0]})")
    return frechet_from_moments(g.mean, g.cov, r.mean, r.cov)


@dataclass(frozen=True)
class FDInfinity:
    value: float  # the intercept, FD∞
    slope: float  # k in FD_N ≈ FD∞ + k/N
    ns: tuple[int, ...]
    fds: tuple[float, ...]
    method: str


def fit_fd_infinity(ns, fds) -> tuple[float, float]:
    """Least-squares intercept and slope of FD_N against 1/N."""
    x = 1.0 / np.asarray(ns, np.float64)
    y = np.asarray(fds, np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        raise InputError("FD∞: needs FD at two or more distinct N")
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def fd_infinity(gen, ref, *, n_points: int = 10, min_frac: float = 0.2, seed: int = 0) -> FDInfinity:
    """FD∞ (Chong & Forsyth 2020): FD of random generated subsets of ``n_points`` sizes N,
    evenly spaced in 1/N from ``min_frac``·n to n (drawn without replacement, seeded),
    against the full reference, extrapolated linearly in 1/N to N → ∞."""
    g = check_features(gen, "generated set", min_n=4)
    r = GaussianMoments.of(check_features(ref, "reference set"))
    n = g.shape[0]
    lo = max(2, int(round(min_frac * n)))
    ns = sorted({int(round(1.0 / v)) for v in np.linspace(1.0 / lo, 1.0 / n, n_points)})
    if len(ns) < 2:
        raise InputError(f"FD∞: {n} generated images are too few for an extrapolation; use at least 10")
    rng = np.random.default_rng(seed)
    fds = [frechet_distance(GaussianMoments.of(g[rng.permutation(n)[:k]]), r) for k in ns]
    c, k = fit_fd_infinity(ns, fds)
    meth = (f"FD∞ (Chong & Forsyth 2020): least-squares fit of FD_N = FD∞ + k/N over N in {ns} "
            f"(random subsets of the generated set, seed {seed}; full reference set)")
    return FDInfinity(c, k, tuple(ns), tuple(float(f) for f in fds), meth)


# --- KID ---------------------------------------------------------------------------------------
def _poly(a: np.ndarray, b: np.ndarray, gamma: float, coef: float, degree: int) -> np.ndarray:
    return (a @ b.T * gamma + coef) ** degree


def poly_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                       coef: float = 1.0) -> float:
    """Unbiased MMD² of equal-size sets (KID's estimator): within-set sums exclude the diagonal."""
    m = x.shape[0]
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    kxx, kyy, kxy = _poly(x, x, gamma, coef, degree), _poly(y, y, gamma, coef, degree), _poly(x, y, gamma, coef, degree)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid_subset_indices(n_real: int, n_fake: int, subsets: int, subset_size: int, seed: int = 0):
    """Per subset: (indices into the reference set, indices into the generated set), each drawn
    without replacement by a seeded numpy Generator."""
    rng = np.random.default_rng(seed)
    # .copy(): a slice would keep each whole n-long permutation alive (memory O(subsets·n))
    return [(rng.permutation(n_real)[:subset_size].copy(), rng.permutation(n_fake)[:subset_size].copy())
            for _ in range(subsets)]


def _feature_table(x, name: str):
    """An (n, d) feature table indexed per subset, never copied whole."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if not hasattr(x, "rows"):
        x = np.asarray(x)
    if len(x.shape) != 2:
        raise InputError(f"{name}: expected a 2-d (images × features) array, got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise InputError(f"{name}: {x.shape[0]} image(s); this metric needs at least 2 images per set")
    return x


def _take(x, idx, name: str) -> np.ndarray:
    return check_features(x.rows(idx) if hasattr(x, "rows") else x[np.asarray(idx)], name)


@dataclass(frozen=True)
class KID:
    mean: float
    std: float
    subsets: int
    subset_size: int
    method: str


def kid(gen, ref, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0, degree: int = 3,
        gamma: float | None = None, coef: float = 1.0, indices=None) -> KID:
    """KID: mean and (population) std of the unbiased polynomial MMD² over random subsets.

    ``subset_size`` is capped at the smaller set's size (stated in ``method``). ``indices`` may
    give the subsets explicitly as [(ref_idx, gen_idx), ...] to reproduce another implementation.
    ``gen``/``ref`` are (n, d) arrays of any float dtype, or objects with ``shape`` and
    ``rows(indices)`` (features streamed from disk); only one subset's rows are ever held as
    float64, so memory depends on ``subset_size``, not on n (NaN/Inf are checked per subset).
    """
    g, r = _feature_table(gen, "generated set"), _feature_table(ref, "reference set")
    if g.shape[1] != r.shape[1]:
        raise InputError(f"feature dimensions differ ({g.shape[1]} vs {r.shape[1]}); both sets must be "
                         "embedded with the same extractor")
    m = min(subset_size, g.shape[0], r.shape[0])
    if indices is None:
        indices = kid_subset_indices(r.shape[0], g.shape[0], subsets, m, seed)
    vals = np.array([poly_mmd2_unbiased(_take(r, ir, "reference set"), _take(g, ig, "generated set"),
                                        degree, gamma, coef) for ir, ig in indices])
    gtxt = "1/d" if gamma is None else f"{gamma:g}"
    meth = (f"KID (Bińkowski et al. 2018): unbiased MMD², kernel (γ·xᵀy + {coef:g})^{degree}, γ = {gtxt}; "
            f"mean ± std over {len(indices)} subsets of {m} images (seed {seed})")
    return KID(float(vals.mean()), float(vals.std()), len(indices), m, meth)


# --- CMMD --------------------------------------------------------------------------------------
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def _rbf_sum(a: np.ndarray, b: np.ndarray, gamma: float, block: int = 2048) -> tuple[float, float]:
    """Sum of exp(−γ‖a_i − b_j‖²) over all pairs, and over the diagonal (when a is b), blockwise."""
    an, bn = (a * a).sum(1), (b * b).sum(1)
    total = 0.0
    for s in range(0, a.shape[0], block):
        d2 = an[s:s + block, None] + bn[None, :] - 2.0 * a[s:s + block] @ b.T
        total += float(np.exp(-gamma * np.clip(d2, 0, None)).sum())
    return total, float(min(a.shape[0], b.shape[0]))  # diag of k(x, x) is exp(0) = 1 per item


def cmmd(gen, ref, *, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE, unbiased: bool = False) -> float:
    """CMMD between generated and reference CLIP embeddings (L2-normalised here)."""
    g = check_features(gen, "generated set")
    r = check_features(ref, "reference set")
    _same_dim(g, r)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    gamma = 1.0 / (2.0 * sigma * sigma)
    n, m = r.shape[0], g.shape[0]
    sxx, _ = _rbf_sum(r, r, gamma)
    syy, _ = _rbf_sum(g, g, gamma)
    sxy, _ = _rbf_sum(r, g, gamma)
    if unbiased:
        kxx, kyy = (sxx - n) / (n * (n - 1)), (syy - m) / (m * (m - 1))
    else:
        kxx, kyy = sxx / (n * n), syy / (m * m)
    return float(scale * (kxx + kyy - 2.0 * sxy / (n * m)))
