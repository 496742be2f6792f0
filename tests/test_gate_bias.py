"""Baseline rules on bias shares: the two-sample difference from the runs' counts (reports.gate_bias)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from t2i_audit.reports.gate.bias import _slope, newcombe, score_p_value
from t2i_audit.reports.gate.rules import parse_rule
from t2i_audit.reports.gate.run import evaluate
from t2i_audit.reports.results import RunResults
from t2i_audit.stats.proportions import independent_difference

IDENTITY = [[300, 0, 0, 0], [0, 300, 0, 0]]
NOISY = [[270, 30, 0, 0], [60, 240, 0, 0]]     # P(read woman | man) = 0.1, P(read woman | woman) = 0.8


@pytest.mark.parametrize("counts, expected", [
    ((56, 70, 48, 80), (0.0524, 0.3339)),     # Newcombe (1998), Table II, method 10
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
])
def test_newcombe_matches_published_intervals(counts, expected):
    d, lo, hi = newcombe(*counts)
    assert d == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (lo, hi) == pytest.approx(expected, abs=1e-4)


def run(name, women, n=300, prompts=4, cal=IDENTITY, abstain=0, corrected=None):
    """A run whose bias table holds one group (firefighter) with `women` of `n` answered images."""
    n_img = n + abstain
    raw = [(n - women) / n, women / n]
    corr = corrected if corrected is not None else raw
    rows = [{"attribute": "presentation", "group": "firefighter", "cls": c, "raw": raw[i], "raw_ci_low": raw[i] - 0.05,
             "raw_ci_high": raw[i] + 0.05, "corrected": corr[i], "corr_ci_low": corr[i] - 0.06,
             "corr_ci_high": corr[i] + 0.06, "reference": 0.5, "n_images": n_img, "n_prompts": prompts,
             "abstain_rate": abstain / n_img, "probe": "pictoworld-presentation"} for i, c in enumerate(("man", "woman"))]
    meta = {"calibration": {"pictoworld-presentation": {"counts": cal}}, "config": {"method": "em"}}
    return RunResults(root=Path(name), run={"run_id": name, "suite": {"hash": "h"}}, bias=pd.DataFrame(rows),
                      bias_meta=meta)


RULE = parse_rule("bias.presentation.share[firefighter:woman] same as baseline")


def test_counts_give_newcombe_interval_and_verdicts():
    base = run("base", 45)
    shifted = evaluate(run("cand", 78), [RULE], base)
    c = shifted.checks[0]
    d, lo, hi = newcombe(78, 300, 45, 300)
    assert (c.diff, c.diff_ci_low, c.diff_ci_high) == pytest.approx((d, lo, hi), abs=1e-6)
    assert c.p_value == pytest.approx(score_p_value(78, 300, 45, 300))
    assert c.verdict == "fail" and "Newcombe" in c.method and not shifted.warnings
    assert evaluate(run("cand", 50), [RULE], base).checks[0].verdict == "pass"
    # abstentions are dropped: the counts are of answered images
    c = evaluate(run("cand", 50, abstain=7), [RULE], base).checks[0]
    assert c.diff_ci_low == pytest.approx(newcombe(50, 300, 45, 300)[1], abs=1e-6)
    # raw shares use the counts too
    raw = evaluate(run("cand", 78), [parse_rule("bias.presentation.raw_share[firefighter:woman] same as baseline")],
                   base).checks[0]
    assert raw.diff_ci_low == pytest.approx(lo, abs=1e-6) and raw.method.endswith("raw shares")


def test_shared_calibration_carries_the_raw_interval_through_the_correction():
    # corrected woman share = (q - 0.1) / 0.7 for this confusion matrix (no abstention): slope 1/0.7
    assert _slope(np.array([200.0, 100.0]), np.array([210.0, 90.0]), 1, NOISY, "em") == pytest.approx(1 / 0.7, rel=1e-3)
    q_base, q_cand = 75 / 300, 120 / 300
    cb, cc = (q_base - 0.1) / 0.7, (q_cand - 0.1) / 0.7
    base = run("base", 75, cal=NOISY, corrected=[1 - cb, cb])
    c = evaluate(run("cand", 120, cal=NOISY, corrected=[1 - cc, cc]), [RULE], base).checks[0]
    d, lo, hi = newcombe(120, 300, 75, 300)
    assert c.diff == pytest.approx(cc - cb)
    assert (c.diff_ci_low, c.diff_ci_high) == pytest.approx((cc - cb + (lo - d) / 0.7, cc - cb + (hi - d) / 0.7),
                                                            rel=1e-3)


@pytest.mark.parametrize("cand, why", [
    (run("cand", 60, cal=NOISY), "calibrated on different labelled images"),
    (run("cand", 60, prompts=5), "prompts in this group"),
])
def test_falls_back_to_the_intervals_with_a_warning(cand, why):
    base = run("base", 45)
    res = evaluate(cand, [RULE], base)
    c = res.checks[0]
    ref = independent_difference(c.value, c.ci_low, c.ci_high, 0.15, 0.15 - 0.06, 0.15 + 0.06)
    assert (c.diff_ci_low, c.diff_ci_high) == pytest.approx((ref.ci_low, ref.ci_high))
    assert any(why in w for w in res.warnings) and "independent" in c.method


def test_shares_that_are_not_count_ratios_fall_back():
    base, cand = run("base", 45), run("cand", 60)
    cand.bias.loc[cand.bias.cls == "woman", "raw"] = 0.2013   # not k / 300
    res = evaluate(cand, [RULE], base)
    assert "not ratios of whole image counts" in res.warnings[0]


def test_false_alarms_and_power_of_the_count_interval():
    """Planted truth: two runs of p = 0.15 (300 images each) rarely differ; 0.15 vs 0.25 usually does."""
    rng = np.random.default_rng(0)
    reps = 2000

    def fails(p1, p2):
        k1, k2 = rng.binomial(300, p1, reps), rng.binomial(300, p2, reps)
        return np.mean([not (lo <= 0 <= hi) for _, lo, hi in (newcombe(a, 300, b, 300) for a, b in zip(k1, k2))])

    assert 0.03 <= fails(0.15, 0.15) <= 0.06
    assert fails(0.25, 0.15) >= 0.8
