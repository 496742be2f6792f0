"""Calibration-shift detector (t2i_audit.stats.shift): false-alarm rate, power, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from t2i_audit.errors import InputError
from t2i_audit.stats.shift import detect_shift, mmd2_permutation


def _pair(seed: int, shift: float, n: int = 150, d: int = 8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d))
    y[:, 0] += shift
    cx, cy = rng.beta(5, 2, n), rng.beta(5, 2, n)
    return x, y, cx, cy


def test_mmd2_matches_direct_unbiased_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.3, 1, size=(40, 4))
    obs, p, h = mmd2_permutation(x, y, 50, np.random.default_rng(0))

    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    direct = ((kxx.sum() - np.trace(kxx)) / (30 * 29) + (kyy.sum() - np.trace(kyy)) / (40 * 39)
              - 2 * kxy.mean())
    assert obs == pytest.approx(direct, rel=1e-10)
    assert 0 < p <= 1


def test_same_distribution_flagged_at_about_alpha():
    flags = [detect_shift(*_pair(s, 0.0), permutations=100, seed=s).detected for s in range(60)]
    assert np.mean(flags) <= 0.10


def test_same_distribution_p_values_roughly_uniform():
    p = [detect_shift(*_pair(100 + s, 0.0)[:2], permutations=100, seed=s).p_value for s in range(60)]
    assert 0.3 < np.median(p) < 0.7


def test_mean_shift_in_embeddings_detected():
    # 0.8 standard deviations along one of 8 dimensions, 150 images per side (0.6 gave 0.875).
    flags = [detect_shift(*_pair(s, 0.8), permutations=100, seed=s).detected for s in range(40)]
    assert np.mean(flags) >= 0.95


def test_confidence_shift_alone_detected_by_ks():
    flags = []
    for s in range(40):
        x, y, cx, _ = _pair(s, 0.0)
        cy = np.random.default_rng(1000 + s).beta(2, 2, len(y))  # hesitant probe, same embeddings
        r = detect_shift(x, y, cx, cy, permutations=100, seed=s)
        flags.append(r.detected)
        assert r.tests[1][0] == "ks_confidence"
    assert np.mean(flags) >= 0.95


def _label_shift(seed: int, n: int = 200):
    """Two classes 3 sd apart; calibration 50/50, run 90/10: only the class shares differ."""
    rng = np.random.default_rng(seed)
    cx, cy = rng.random(n) < 0.5, rng.random(n) < 0.9
    x, y = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    x[:, 0] += 3 * cx
    y[:, 0] += 3 * cy
    conf_x = np.where(cx, rng.beta(5, 1, n), rng.beta(2, 2, n))  # the probe is surer of one class
    conf_y = np.where(cy, rng.beta(5, 1, n), rng.beta(2, 2, n))
    return x, y, cx.astype(int), cy.astype(int), conf_x, conf_y


def test_strata_ignore_label_shift_but_plain_test_flags_it():
    plain, strat = [], []
    for s in range(30):
        x, y, sx, sy, qx, qy = _label_shift(s)
        plain.append(detect_shift(x, y, permutations=100, seed=s).detected)
        strat.append(detect_shift(x, y, qx, qy, permutations=100, seed=s, calib_strata=sx,
                                  run_strata=sy).detected)
    assert np.mean(plain) >= 0.95
    assert np.mean(strat) <= 0.10


def test_ks_strata_ignore_label_shift_in_confidence():
    plain, strat = [], []
    for s in range(30):
        x, y, sx, sy, qx, qy = _label_shift(s)
        plain.append(detect_shift(x, y, qx, qy, permutations=100, seed=s).tests[1][2] <= 0.05)
        strat.append(detect_shift(x, y, qx, qy, permutations=100, seed=s, calib_strata=sx,
                                  run_strata=sy).tests[1][2] <= 0.05)
    assert np.mean(plain) >= 0.95
    assert np.mean(strat) <= 0.10


def test_ks_permutation_p_close_to_scipy():
    from scipy.stats import ks_2samp

    from t2i_audit.stats.shift import ks_permutation

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=120), rng.normal(0.25, 1, size=150)
    d, p = ks_permutation(a, b, 2000, np.random.default_rng(0))
    ref = ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert abs(p - ref.pvalue) < 0.03


def test_strata_still_detect_within_class_shift():
    flags = []
    for s in range(30):
        x, y, sx, sy, _, _ = _label_shift(s)
        y[:, 1] += 0.8  # every image drifts, whatever its class
        flags.append(detect_shift(x, y, permutations=100, seed=s, calib_strata=sx, run_strata=sy).detected)
    assert np.mean(flags) >= 0.95


def test_deterministic_for_a_seed_and_record_fields():
    x, y, cx, cy = _pair(7, 0.3, n=1200)
    a = detect_shift(x, y, cx, cy, permutations=60, seed=11)
    b = detect_shift(x, y, cx, cy, permutations=60, seed=11)
    assert a == b
    assert (a.n_calib, a.n_run) == (1200, 1200)  # counts before the 1,000-per-side subsample
    rec = a.record("pictoworld-skin")
    assert set(rec) >= {"probe", "detected", "statistic", "p_value", "n_calib", "n_run"}
    assert rec["p_value"] == pytest.approx(min(1.0, 2 * min(t[2] for t in a.tests)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(calib_features=np.zeros((5, 3)), run_features=np.zeros((50, 3))), "at least"),
    (dict(calib_features=np.zeros((50, 3)), run_features=np.zeros((50, 4))), "same evaluator"),
    (dict(calib_features=np.zeros((50, 3, 2)), run_features=np.zeros((50, 3))), "2-D"),
    (dict(calib_features=np.full((50, 3), np.nan), run_features=np.zeros((50, 3))), "NaN"),
    (dict(calib_features=np.zeros((50, 3)), run_features=np.zeros((50, 3)), calib_conf=np.zeros(50)),
     "both"),
    (dict(calib_features=np.zeros((50, 3)), run_features=np.zeros((50, 3)), calib_conf=np.zeros(40),
          run_conf=np.zeros(50)), "one confidence per"),
    (dict(calib_features=np.zeros((50, 3)), run_features=np.zeros((50, 3)), permutations=5), "19"),
    (dict(calib_features=np.zeros((50, 3)), run_features=np.zeros((50, 3)), calib_strata=np.zeros(50)),
     "both"),
    (dict(calib_features=np.zeros((50, 3)), run_features=np.zeros((50, 3)), calib_strata=np.zeros(50),
          run_strata=np.ones(50)), "no stratum"),
])
def test_bad_inputs_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        detect_shift(**kwargs)


def _clustered(rng, prompts: int, per: int, tau: float = 1.0, d: int = 3):
    """Images of ``prompts`` prompts drawn from one prompt distribution: prompt mean ~ N(0, tau^2),
    images ~ N(mean, 0.5^2) -- a planted within-prompt correlation, no shift between samples."""
    mu = tau * rng.standard_normal((prompts, d))
    ids = np.repeat(np.arange(prompts), per)
    return mu[ids] + 0.5 * rng.standard_normal((prompts * per, d)), ids


def test_permutation_by_prompt_cluster_keeps_false_alarms_near_alpha():
    """Calibration and run both drawn from the same prompt distribution (12 prompts x 8 images each):
    permuting images one by one flags most pairs; permuting prompt clusters ~alpha."""
    rng = np.random.default_rng(5)
    old = new = 0
    sims = 40
    for s in range(sims):
        x, cx = _clustered(rng, 12, 8)
        y, cy = _clustered(rng, 12, 8)
        old += detect_shift(x, y, permutations=99, seed=s).detected
        new += detect_shift(x, y, permutations=99, seed=s, calib_clusters=cx, run_clusters=cy).detected
    assert old / sims >= 0.5, old
    assert new / sims <= 0.1, new


def test_cluster_permutation_still_detects_a_real_shift():
    rng = np.random.default_rng(6)
    x, cx = _clustered(rng, 12, 8)
    y, cy = _clustered(rng, 12, 8)
    res = detect_shift(x, y + 3.0, permutations=99, seed=0, calib_clusters=cx, run_clusters=cy)
    assert res.detected and res.p_value <= 0.05


def test_cluster_labels_need_one_per_image():
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(InputError, match="one cluster per image"):
        detect_shift(x, x + 1, calib_clusters=np.zeros(3), run_clusters=np.zeros(20))
