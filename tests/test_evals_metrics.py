"""Metric agreement with torchmetrics and with direct implementations; planted truths; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2i_audit.errors import InputError
from t2i_audit.evals.metrics.distribution import (
    GaussianMoments,
    cmmd,
    fd_infinity,
    fit_fd_infinity,
    frechet_distance,
    kid,
)

torch.set_num_threads(1)


class _Linear(torch.nn.Module):
    """A fixed random feature map (N, 3, 8, 8) -> (N, D)."""

    def __init__(self, d: int = 12, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(3 * 8 * 8, d, generator=g, dtype=dtype))
        self.num_features = d

    def forward(self, x):
        return torch.tanh(x.reshape(x.shape[0], -1).to(self.w.dtype) @ self.w / 8.0)


def _imgs(n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g) + shift


def test_fd_agrees_with_torchmetrics_fid():
    from torchmetrics.image.fid import FrechetInceptionDistance

    net = _Linear()
    real, fake = _imgs(300, 0.0, 1), _imgs(200, 0.15, 2)
    fid = FrechetInceptionDistance(feature=net, normalize=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    want = float(fid.compute())
    with torch.no_grad():
        fr, ff = net(real).numpy(), net(fake).numpy()
    got = frechet_distance(ff, fr)
    assert want > 0.01
    assert abs(got - want) / want < 1e-3
    # running sums in chunks give the same moments as one pass
    m = GaussianMoments(fr.shape[1])
    for s in range(0, 300, 64):
        m.update(fr[s:s + 64])
    assert abs(frechet_distance(ff, m) - got) < 1e-9 * max(1.0, got)


def test_kid_agrees_with_torchmetrics_same_subsets():
    from torchmetrics.image.kid import KernelInceptionDistance

    net = _Linear(d=10, dtype=torch.float64)
    real, fake = _imgs(120, 0.0, 3), _imgs(90, 0.2, 4)
    metric = KernelInceptionDistance(feature=net, subsets=7, subset_size=40, normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    torch.manual_seed(123)
    idx = [(torch.randperm(120)[:40].numpy(), torch.randperm(90)[:40].numpy()) for _ in range(7)]
    torch.manual_seed(123)
    want_mean, want_std = (float(v) for v in metric.compute())
    with torch.no_grad():
        got = kid(net(fake).numpy(), net(real).numpy(), subset_size=40, indices=idx)
    assert abs(got.mean - want_mean) < 1e-3 * max(abs(want_mean), 1e-3)
    assert abs(got.std - want_std) < 1e-3 * max(abs(want_std), 1e-3)
    assert got.subsets == 7 and got.subset_size == 40


def test_kid_near_zero_for_same_distribution_and_seeded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    k1 = kid(a, b, subsets=20, subset_size=100, seed=5)
    assert abs(k1.mean) < 3 * k1.std + 1e-3
    assert k1 == kid(a, b, subsets=20, subset_size=100, seed=5)
    shifted = kid(a + 1.0, b, subsets=20, subset_size=100, seed=5)
    assert shifted.mean > 10 * max(k1.std, 1e-4)


def _cmmd_direct(x, y, sigma=10.0, scale=1000.0):
    """google-research cmmd's formula, written out naively."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)

    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))

    return scale * (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def test_cmmd_matches_direct_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(70, 16)), rng.normal(0.4, 1.0, size=(50, 16))
    assert cmmd(x, y) == pytest.approx(_cmmd_direct(y, x), rel=1e-9)
    # unbiased variant drops the diagonal
    xn, yn = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    kxx = np.exp(-((yn[:, None] - yn[None]) ** 2).sum(-1) / 200)
    kyy = np.exp(-((xn[:, None] - xn[None]) ** 2).sum(-1) / 200)
    kxy = np.exp(-((yn[:, None] - xn[None]) ** 2).sum(-1) / 200)
    n, m = 50, 70
    ub = 1000 * ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean())
    assert cmmd(x, y, unbiased=True) == pytest.approx(ub, rel=1e-9)


def test_fd_infinity_fit_recovers_planted_law():
    ns = [100, 150, 200, 400, 800]
    c, k = fit_fd_infinity(ns, [3.0 + 250.0 / n for n in ns])
    assert c == pytest.approx(3.0, abs=1e-9) and k == pytest.approx(250.0, rel=1e-9)


def test_fd_infinity_removes_small_sample_bias():
    # equal covariances, mean shift 0.5 in one of 16 dims: true FD = 0.25
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(20000, 16))
    gen = rng.normal(size=(600, 16))
    gen[:, 0] += 0.5
    fd_n = frechet_distance(gen, ref)
    res = fd_infinity(gen, ref, n_points=8, seed=0)
    assert res.slope > 0  # FD_N decreases with N, as Chong & Forsyth describe
    assert abs(res.value - 0.25) < abs(fd_n - 0.25)
    assert abs(res.value - 0.25) < 0.05


def test_distribution_metric_input_errors():
    ok = np.zeros((5, 4))
    with pytest.raises(InputError, match="at least 2"):
        frechet_distance(np.zeros((1, 4)), ok)
    bad = np.ones((5, 4))
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="NaN/Inf"):
        frechet_distance(bad, ok)
    with pytest.raises(InputError, match="Inf"):
        kid(np.full((5, 4), np.inf), ok)
    with pytest.raises(InputError, match="dimensions differ"):
        cmmd(np.ones((5, 3)), np.ones((5, 4)))
