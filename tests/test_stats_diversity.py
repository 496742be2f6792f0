"""Feature-space diversity metrics (stats.diversity_features, stats.vendi): agreement with the
reference packages prdc and vendi-score, planted mode dropping, cluster-bootstrap intervals,
bounded memory and input errors."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

from t2i_audit.errors import InputError
from t2i_audit.stats.diversity_features import knn_radii, prdc_features, vendi_features
from t2i_audit.stats.vendi import cluster_moments, per_cluster_vendi, vendi_score, weighted_vendi_from_moments


@pytest.fixture
def vendi():
    return pytest.importorskip("vendi_score.vendi")


def _ref_prdc(real, fake, k):
    prdc = pytest.importorskip("prdc")
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        return prdc.compute_prdc(real, fake, k)


@pytest.mark.parametrize("n,m,d,k,block", [(120, 90, 4, 3, 16), (300, 250, 16, 5, 64), (200, 410, 32, 3, 1024)])
def test_prdc_matches_reference_package(n, m, d, k, block):
    rng = np.random.default_rng(n + m)
    real = rng.standard_normal((n, d))
    fake = 0.8 * rng.standard_normal((m, d)) + 0.4
    clusters = rng.integers(0, 15, m)
    ref = _ref_prdc(real, fake, k)
    got = prdc_features(real, fake, clusters, k_pr=k, k_dc=k, block=block, reps=50, seed=0)
    for name in ("precision", "recall", "density", "coverage"):
        assert abs(got[name].value - float(ref[name])) <= 1e-6, name
        assert (got[name].n_real, got[name].n_fake, got[name].k) == (n, m, k)


def test_float32_features_match_reference_package():
    """CLIP embeddings often arrive as float32: they are upcast to float64; prdc computes in float32."""
    rng = np.random.default_rng(11)
    real = rng.standard_normal((500, 64)).astype(np.float32)
    fake = (rng.standard_normal((500, 64)) + 0.2).astype(np.float32)
    ref = _ref_prdc(real, fake, 5)
    got = prdc_features(real, fake, k_pr=5, k_dc=5, block=100, reps=0)
    for name in ("precision", "recall", "density", "coverage"):
        assert abs(got[name].value - float(ref[name])) <= 1e-6, name


def test_stats_module_imports_without_torch():
    code = ("import sys, t2i_audit.stats.diversity_features, t2i_audit.stats.vendi; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_knn_radii_exclude_self_and_blocks_do_not_matter():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((150, 6))
    full = np.sort(cdist(x, x), axis=1)  # column 0 is the row itself (distance 0)
    for block in (1, 7, 150, 4096):
        r = knn_radii(x, [3, 5], block=block)
        np.testing.assert_allclose(r, full[:, [3, 5]], atol=1e-9)


def test_block_size_changes_nothing():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((200, 8)), rng.standard_normal((180, 8))
    clusters = np.repeat(np.arange(30), 6)
    a = prdc_features(real, fake, clusters, block=13, reps=200, seed=4)
    b = prdc_features(real, fake, clusters, block=2048, reps=200, seed=4)
    assert a == b


@pytest.mark.parametrize("n,d", [(40, 64), (300, 12)])
@pytest.mark.parametrize("q", [1.0, 2.0, 0.5])
def test_vendi_matches_reference_package(n, d, q, vendi):
    rng = np.random.default_rng(n * d)
    x = rng.standard_normal((n, d)) + np.linspace(0, 2, d)
    assert abs(vendi_score(x, q) - vendi.score_dual(x, q=q)) <= 1e-6
    if q == 1.0:  # score_X ignores q (always Shannon); it builds the n×n kernel
        assert abs(vendi_score(x) - vendi.score_X(x)) <= 1e-6
    assert vendi_score(np.repeat(x[:1], 7, axis=0), q) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(np.eye(5), q) == pytest.approx(5.0, abs=1e-9)


def test_weighted_vendi_equals_vendi_of_the_concatenated_draw(vendi):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 10))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sizes = np.array([10, 20, 5, 25])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    w = np.array([[2.0, 0.0, 1.0, 1.0], [0.0, 3.0, 1.0, 0.0]])
    got = weighted_vendi_from_moments(cluster_moments(x, starts), sizes.astype(float), w, q=1.0)
    for b in range(2):
        rows = np.concatenate([np.repeat(x[s:s + z], int(c), axis=0) if c else x[:0]
                               for s, z, c in zip(starts, sizes, w[b])])
        assert got[b] == pytest.approx(vendi.score_X(rows), abs=1e-6)
    per = per_cluster_vendi(x, starts)
    ref = [vendi.score_X(x[s:s + z]) for s, z in zip(starts, sizes)]
    np.testing.assert_allclose(per, ref, atol=1e-6)


def _mixture(rng, n, modes, d=16, sep=6.0, sd=1.0):
    centres = sep * np.eye(d)[:4]
    which = rng.choice(modes, size=n)
    return centres[which] + sd * rng.standard_normal((n, d))


def test_mode_dropping_lowers_recall_coverage_and_vendi():
    """Planted truth: R covers 4 Gaussian modes, F only k of them. Over 20 seeds recall, coverage
    and Vendi fall strictly as k goes 4 → 1 (Spearman ρ = 1 each seed); precision holds at its
    k = 4 level (F from R's own distribution)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        real = _mixture(rng, 300, [0, 1, 2, 3])
        rows = {name: [] for name in ("precision", "recall", "coverage", "vendi")}
        ks = [4, 3, 2, 1]
        for k in ks:
            fake = _mixture(rng, 300, list(range(k)))
            clusters = np.repeat(np.arange(30), 10)
            got = prdc_features(real, fake, clusters, reps=0)
            got.update(vendi_features(fake, clusters, reps=0))
            for name in rows:
                rows[name].append(got[name].value)
        for name in ("recall", "coverage", "vendi"):
            assert np.all(np.diff(rows[name]) < 0), (seed, name, rows[name])
            assert spearmanr(ks, rows[name])[0] == pytest.approx(1.0)
        # precision (finite-sample ~0.8 at d = 16, n = 300 even when F matches R) does not drop
        prec = np.array(rows["precision"])
        assert prec.min() > 0.65 and np.all(prec[1:] >= prec[0] - 0.1), (seed, prec)


def test_bootstrap_covers_estimate_and_narrows_with_more_clusters():
    rng = np.random.default_rng(5)
    real = _mixture(rng, 400, [0, 1, 2, 3])
    widths = {}
    for n_clusters in (10, 80):
        fake = _mixture(rng, 8 * n_clusters, [0, 1, 2, 3])
        clusters = np.repeat(np.arange(n_clusters), 8)
        est = prdc_features(real, fake, clusters, reps=400, seed=7)
        est.update(vendi_features(fake, clusters, reps=400, seed=7))
        for name, e in est.items():
            assert e.lo <= e.value <= e.hi, (name, e)
            assert e.n_clusters == n_clusters and e.n_fake == 8 * n_clusters
            widths[name, n_clusters] = e.hi - e.lo
    for name in ("precision", "recall", "density", "coverage", "vendi", "vendi_per_prompt"):
        assert widths[name, 80] < widths[name, 10], (name, widths[name, 80], widths[name, 10])


def test_bootstrap_is_seeded_and_single_cluster_has_no_interval():
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((100, 5)), rng.standard_normal((100, 5))
    clusters = np.repeat(np.arange(20), 5)
    a = prdc_features(real, fake, clusters, reps=100, seed=1)
    assert a == prdc_features(real, fake, clusters, reps=100, seed=1)
    assert a != prdc_features(real, fake, clusters, reps=100, seed=2)
    one = vendi_features(fake, np.zeros(100), reps=100)["vendi"]
    assert np.isnan(one.lo) and np.isnan(one.hi) and "no interval" in one.method


def test_memory_stays_below_the_full_distance_matrix():
    rng = np.random.default_rng(8)
    n = 3000
    real, fake = rng.standard_normal((n, 8)), rng.standard_normal((n, 8))
    tracemalloc.start()
    prdc_features(real, fake, np.repeat(np.arange(100), 30), block=128, reps=100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < n * n * 8 / 4, peak  # one N×N float64 matrix is 72 MB


def test_input_errors():
    rng = np.random.default_rng(9)
    real, fake = rng.standard_normal((20, 4)), rng.standard_normal((20, 4))
    with pytest.raises(InputError, match="dims"):
        prdc_features(real, rng.standard_normal((20, 5)), reps=0)
    with pytest.raises(InputError, match="at least 6"):
        prdc_features(real[:5], fake, reps=0)
    with pytest.raises(InputError, match="at least 4"):
        prdc_features(real, fake[:3], k_pr=3, k_dc=3, reps=0)
    bad = fake.copy()
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        prdc_features(real, bad, reps=0)
    with pytest.raises(InputError, match="NaN"):
        vendi_features(bad, reps=0)
    with pytest.raises(InputError, match="clusters"):
        prdc_features(real, fake, np.arange(7), reps=0)
    with pytest.raises(InputError, match="all-zero"):
        vendi_features(np.zeros((3, 4)), reps=0)
    with pytest.raises(InputError, match="k_pr"):
        prdc_features(real, fake, k_pr=0)
    with pytest.raises(InputError, match="q"):
        vendi_score(fake, q=-1)


def test_vendi_bootstrap_low_memory_path_gives_the_same_replicates():
    from t2i_audit.stats.diversity_features import _moment_boot

    rng = np.random.default_rng(12)
    x = rng.standard_normal((90, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sizes = np.full(9, 10)
    starts = np.arange(0, 90, 10)
    fast = _moment_boot(x, starts, sizes, 30, 3, 1.0)
    slow = _moment_boot(x, starts, sizes, 30, 3, 1.0, max_bytes=0)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert np.ptp(fast) > 0
