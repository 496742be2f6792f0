"""Correction of observed shares through a known confusion matrix, and its bootstrap."""

import numpy as np
import pytest

from t2i_audit.audits.probes.probe_calibration import Calibration
from t2i_audit.stats.correction import (
    GroupSample,
    calibration_replicates,
    conditional_from_counts,
    correct,
    em_simplex,
    estimate_group,
    inverse,
    lsq_simplex,
)

A3 = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.25, 0.7]])


def test_em_recovers_planted_truth_through_known_confusion():
    p = np.array([0.6, 0.3, 0.1])
    q = p @ A3  # expected predicted shares
    n = q * 1e6
    for fn in (em_simplex, lsq_simplex, inverse):
        np.testing.assert_allclose(fn(n, A3), p, atol=1e-6)


def test_em_matches_scipy_maximum_likelihood():
    from scipy.optimize import minimize

    n = np.array([30.0, 50.0, 20.0])

    def nll(z):
        p = np.exp(z) / np.exp(z).sum()
        return -(n * np.log(p @ A3)).sum()

    z = minimize(nll, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                                   "maxiter": 20000}).x
    ref = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(em_simplex(n, A3), ref, atol=1e-4)


def test_simplex_constraint_where_inversion_leaves_it():
    # observed shares outside the image of the simplex under A: inversion goes negative
    A = np.array([[0.7, 0.3], [0.3, 0.7]])
    n = np.array([95.0, 5.0])
    assert inverse(n, A).min() < 0
    for fn in (em_simplex, lsq_simplex):
        p = fn(n, A)
        assert p.min() >= 0 and abs(p.sum() - 1) < 1e-9
        np.testing.assert_allclose(p, [1.0, 0.0], atol=1e-3)


def test_class_dependent_abstention_is_undone():
    # true 50/50; the probe abstains on 40% of class 1 and never on class 0; perfect otherwise
    A = np.eye(2)
    a = np.array([0.0, 0.4])
    answered = np.array([500.0, 300.0])
    np.testing.assert_allclose(correct(answered, A, a), [0.5, 0.5], atol=1e-9)


def test_vectorised_em_equals_loop():
    rng = np.random.default_rng(1)
    n = rng.integers(0, 50, size=(7, 3)).astype(float)
    batch = em_simplex(n, A3)
    for b in range(7):
        np.testing.assert_allclose(batch[b], em_simplex(n[b], A3), atol=1e-9)


def test_calibration_replicates_are_centred_and_row_stochastic():
    counts = np.array([[80, 15, 5, 0], [10, 85, 0, 5]])
    A, a = calibration_replicates(counts, 4000, np.random.default_rng(0))
    np.testing.assert_allclose(A.sum(-1), 1.0)
    A0, a0 = conditional_from_counts(counts)
    np.testing.assert_allclose(A.mean(0), A0, atol=0.01)
    np.testing.assert_allclose(a.mean(0), a0, atol=0.01)


def test_noisy_classifier_corrected_interval_covers_truth():
    """Simulate a noisy binary probe with a known confusion matrix; correction removes its bias
    and the 95% interval covers the truth in most repeats."""
    rng = np.random.default_rng(0)
    conf = np.array([[0.85, 0.15], [0.25, 0.75]])
    truth = 0.8
    # calibration: 300 images per class
    cal = np.zeros((2, 4), dtype=np.int64)
    for j in range(2):
        cal[j, :2] = rng.multinomial(300, conf[j])
    cover = 0
    errs_raw, errs_corr = [], []
    for rep in range(40):
        prompts = np.repeat(np.arange(25), 8)
        true = (rng.random(200) > truth).astype(int)
        labels = np.array([rng.choice(2, p=conf[t]) for t in true])
        est = estimate_group(GroupSample.from_labels(labels, prompts, 2), ("a", "b"), cal, B=400,
                             rng=np.random.default_rng(rep))
        lo, hi = est.ci(est.corr_reps)
        cover += lo[0] <= truth <= hi[0]
        errs_raw.append(abs(est.raw[0] - truth))
        errs_corr.append(abs(est.corrected[0] - truth))
    assert np.mean(errs_raw) > 0.05  # the raw share is biased (0.8*0.85 + 0.2*0.25 = 0.73)
    assert np.mean(errs_corr) < 0.05
    assert cover >= 34  # nominal 38 of 40


def test_few_prompts_are_not_estimable_not_silently_conditional():
    """No silent switch: with one prompt the prompts-as-sample interval is NaN with a reason; the
    these-prompts estimand resamples within the prompt and gives a non-zero-width interval."""
    labels = np.array([0, 1, 0, 0, -1, -2])
    s = GroupSample.from_labels(labels, ["p"] * 6, 2)
    assert s.total.tolist() == [3, 1, 1, 1]
    est = estimate_group(s, ("a", "b"), rng=np.random.default_rng(0))
    lo, hi, _, _, note = est.interval(est.raw, est.raw_reps)
    assert np.isnan(lo).all() and np.isnan(hi).all() and "not estimable" in note
    reps, scheme = s.replicates(10, np.random.default_rng(0), "these-prompts")
    assert "within" in scheme and (reps.sum(1) == 6).all()
    est = estimate_group(s, ("a", "b"), rng=np.random.default_rng(0), estimand="these-prompts")
    lo, hi, _, _, note = est.interval(est.raw, est.raw_reps)
    assert note is None and (hi - lo > 0.2).all()


def test_calibration_json_round_trip(tmp_path):
    c = Calibration("p", "presentation", ("man", "woman"), np.array([[9, 1, 0, 0], [2, 7, 1, 0]]), "x")
    c.save(tmp_path / "c.json")
    d = Calibration.load(tmp_path / "c.json")
    assert d.classes == c.classes and (d.counts == c.counts).all()
    assert d.accuracy == pytest.approx(16 / 19)
