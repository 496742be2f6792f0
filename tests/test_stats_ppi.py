"""Label-calibrated share estimators (t2i_audit.stats.ppi): agreement with ppi_py, planted truth
recovered on a clustered simulation with a shifted probe, label budget, errors."""

from __future__ import annotations

import time
from dataclasses import astuple

import numpy as np
import ppi_py
import pytest

from t2i_audit.errors import InputError
from t2i_audit.stats.ppi import (
    confusion_shares,
    labels_needed,
    ppi_mean,
    ppi_shares,
    probe_shares,
)

THETA = np.array([0.6, 0.25, 0.15])
CLASSES = ("c0", "c1", "c2")


def simulate(rng, reps=1, prompts=40, per_prompt=50, n_lab=150, conc=20.0):
    """``reps`` groups (one per repeat) of prompts x per_prompt images. Prompt effects: each
    prompt's class mix ~ Dirichlet(conc * THETA), so E[share] = THETA. Probe unlike a clean
    calibration: reads 25% of class 0 as class 1 and abstains on 10% of class 2. ``n_lab`` labels
    per group, a simple random sample of the group's images."""
    n = prompts * per_prompt
    pis = rng.dirichlet(conc * THETA, size=(reps, prompts))
    cl = np.tile(np.repeat(np.arange(prompts), per_prompt), reps)
    grp = np.repeat(np.arange(reps), n)
    cum = np.cumsum(pis.reshape(reps * prompts, 3), 1)[grp * prompts + cl]
    true = (rng.random(reps * n)[:, None] > cum).sum(1).clip(0, 2)
    pred, r = true.copy(), rng.random(reps * n)
    pred[(true == 0) & (r < 0.25)] = 1
    pred[(true == 2) & (r < 0.10)] = -1
    lab = np.zeros(reps * n, dtype=bool)
    for g in range(reps):
        lab[g * n + rng.choice(n, n_lab, replace=False)] = True
    return pred, np.where(lab, true, -1), lab, cl, grp


def table(estimates, field="point"):
    """(groups, classes) array of one field, groups in the returned (sorted-by-name) order."""
    vals = np.array([getattr(e, field) for e in estimates])
    return vals.reshape(-1, len(CLASSES))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("lam", [None, 0.0, 0.4, 1.0])
def test_ppi_mean_matches_ppi_py(seed, lam):
    rng = np.random.default_rng(seed)
    n, N = 80 + 20 * seed, 1500
    x, xu = rng.normal(size=n), rng.normal(size=N)
    y = 1.0 + x + 0.3 * rng.normal(size=n)
    yhat, yhat_u = 0.8 * x + 0.9, 0.8 * xu + 0.9 + 0.5 * rng.normal(size=N)
    for alpha in (0.05, 0.1):
        point, lo, hi, lam_used = ppi_mean(y, yhat, yhat_u, lam=lam, alpha=alpha)
        ref = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=lam)
        ref_lo, ref_hi = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=alpha, lam=lam)
        assert abs(point - float(np.squeeze(ref))) <= 1e-6
        assert abs(lo - float(np.squeeze(ref_lo))) <= 1e-3 and abs(hi - float(np.squeeze(ref_hi))) <= 1e-3
        assert 0.0 <= lam_used <= 1.0 and (lam is None or lam_used == lam)


def test_ppi_shares_clt_is_ppi_py_per_class_with_abstentions():
    """One-hot of pred (abstain = all zeros) against one-hot labels; unlabelled = images not drawn."""
    pred, label, lab, cl, _ = simulate(np.random.default_rng(5))
    est = ppi_shares(pred, label, lab, cl, CLASSES, interval="clt")
    onehot = np.vstack([np.eye(3), np.zeros((1, 3))])
    yhat = onehot[np.where(pred >= 0, pred, 3)]
    y = np.eye(3)[label[lab]]
    for j, e in enumerate(est):
        ref = float(np.squeeze(ppi_py.ppi_mean_pointestimate(y[:, j], yhat[lab, j], yhat[~lab, j])))
        ref_lo, ref_hi = ppi_py.ppi_mean_ci(y[:, j], yhat[lab, j], yhat[~lab, j], alpha=0.05)
        assert abs(e.point - ref) <= 1e-6
        assert abs(e.lo - float(np.squeeze(ref_lo))) <= 1e-3 and abs(e.hi - float(np.squeeze(ref_hi))) <= 1e-3
        assert (e.n_images, e.n_labelled, e.n_prompts) == (2000, 150, 40)


def test_planted_truth_ppi_unbiased_and_cluster_bootstrap_covers():
    """200 repeats (one group each): mean PPI point within 3 pp of THETA; cluster-bootstrap 95%
    coverage in [0.88, 0.99] for every class; the raw probe share is off by >= 10 pp."""
    pred, label, lab, cl, grp = simulate(np.random.default_rng(11), reps=200)
    est = ppi_shares(pred, label, lab, cl, CLASSES, grp, B=200, seed=3)
    point, lo, hi = table(est), table(est, "lo"), table(est, "hi")
    assert np.all(np.abs(point.mean(0) - THETA) <= 0.03), point.mean(0)
    cover = ((lo <= THETA) & (THETA <= hi)).mean(0)
    assert np.all((cover >= 0.88) & (cover <= 0.99)), cover
    raw = table(probe_shares(pred, label, lab, cl, CLASSES, grp, B=20, seed=3))
    assert np.max(np.abs(raw.mean(0) - THETA)) >= 0.10, raw.mean(0)


def test_abstention_as_zero_reading_keeps_ppi_unbiased():
    """Class 2 is abstained on 10% of the time (yhat = 0 for every class): with plain PPI (lam = 1)
    the mean over 600 groups is within 0.5 pp of the truth (about 5 standard errors)."""
    pred, label, lab, cl, grp = simulate(np.random.default_rng(13), reps=600, prompts=20, per_prompt=25,
                                         n_lab=100)
    est = ppi_shares(pred, label, lab, cl, CLASSES, grp, interval="clt", lam=1.0)
    assert np.all(np.abs(table(est).mean(0) - THETA) <= 0.005), table(est).mean(0)
    assert np.all(table(est, "lam") == 1.0)


def test_planted_truth_group_confusion_recovers():
    pred, label, lab, cl, grp = simulate(np.random.default_rng(12), reps=60)
    point = table(confusion_shares(pred, label, lab, cl, CLASSES, grp, B=20, seed=1))
    assert np.all(np.abs(point.mean(0) - THETA) <= 0.03), point.mean(0)
    assert np.allclose(point.sum(1), 1.0)


def test_unsure_labels_are_dropped():
    """Labels -1 drop their images: the result equals the one without those images at all."""
    rng = np.random.default_rng(7)
    pred, label, lab, cl, _ = simulate(rng)
    unsure = np.flatnonzero(lab)[:20]
    label2 = label.copy()
    label2[unsure] = -1
    keep = np.ones(len(pred), dtype=bool)
    keep[unsure] = False
    for fn in (ppi_shares, confusion_shares):
        with_unsure = fn(pred, label2, lab, cl, CLASSES, B=100, seed=2)
        without = fn(pred[keep], label[keep], lab[keep], cl[keep], CLASSES, B=100, seed=2)
        np.testing.assert_equal([astuple(e) for e in with_unsure], [astuple(e) for e in without])
        assert with_unsure[0].n_labelled == 130 and with_unsure[0].n_images == 1980
    assert ppi_shares(pred, label, lab, cl, CLASSES, B=100)[0] != with_unsure[0]


def test_bootstrap_is_seeded_and_fast():
    pred, label, lab, cl, grp = simulate(np.random.default_rng(8), reps=20)
    t0 = time.perf_counter()
    a = ppi_shares(pred, label, lab, cl, CLASSES, grp, B=1000, seed=4)
    elapsed = time.perf_counter() - t0
    assert len(a) == 60 and elapsed < 2.0, elapsed
    assert a == ppi_shares(pred, label, lab, cl, CLASSES, grp, B=1000, seed=4)
    assert a != ppi_shares(pred, label, lab, cl, CLASSES, grp, B=1000, seed=5)
    assert all(e.lo <= e.point <= e.hi for e in a)


def test_labels_needed_gives_the_target_width():
    """Binary class, balanced errors at agreement 0.85, share 0.5: the mean CLT width of PPI++ at
    the returned n is within 15% of the target."""
    rng = np.random.default_rng(9)
    target, n_images, agree = 0.10, 2000, 0.85
    n = labels_needed(agree, target, n_images=n_images)
    assert labels_needed(agree, target) <= n < n_images
    widths = []
    for _ in range(200):
        y = (rng.random(n_images) < 0.5).astype(float)
        yhat = np.where(rng.random(n_images) < agree, y, 1 - y)
        idx = rng.permutation(n_images)
        la, un = idx[:n], idx[n:]
        _, lo, hi, _ = ppi_mean(y[la], yhat[la], yhat[un])
        widths.append(hi - lo)
    assert abs(np.mean(widths) / target - 1) <= 0.15, (n, np.mean(widths))
    with pytest.raises(InputError, match="out of reach"):
        labels_needed(0.6, 0.01, n_images=500)


def test_input_errors():
    pred, label, lab, cl, _ = simulate(np.random.default_rng(10))
    with pytest.raises(InputError, match="one entry per image"):
        ppi_shares(pred[:-1], label, lab, cl, CLASSES)
    few = np.zeros_like(lab)
    few[np.flatnonzero(lab)[:9]] = True
    with pytest.raises(InputError, match=r"too few labels in group 0: n=9; need ≥ 10"):
        confusion_shares(pred, label, few, cl, CLASSES)
    bad = label.copy()
    bad[np.flatnonzero(lab)[0]] = 3
    with pytest.raises(InputError, match=r"label has values outside -1\.\.2"):
        ppi_shares(pred, bad, lab, cl, CLASSES)
    with pytest.raises(InputError, match="pred has values outside"):
        ppi_shares(pred - 1, label, lab, cl, CLASSES)
    with pytest.raises(InputError, match="boolean mask"):
        ppi_shares(pred, label, lab.astype(int), cl, CLASSES)
    with pytest.raises(InputError, match="cluster bootstrap needs"):
        ppi_shares(pred, label, lab, cl % 3, CLASSES)
    with pytest.raises(InputError, match="y and yhat"):
        ppi_mean([1.0, 0.0, 1.0], [1.0, 0.0], [0.0, 1.0])
