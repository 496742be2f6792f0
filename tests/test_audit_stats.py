"""Bias statistics against hand-computed values and scipy; multiple-testing adjustments; planning."""

import math

import numpy as np
import pytest
from scipy import stats as sps

import t2i_audit.stats.distribution as bs
from t2i_audit.errors import InputError
from t2i_audit.stats.power import PlanConfig, plan, simulate_power


def test_distribution_stats_hand_values():
    p = np.array([0.7, 0.3])
    assert bs.parity_gap(p) == pytest.approx(0.4)
    h = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3)) / math.log(2)
    assert bs.normalized_entropy(p) == pytest.approx(h)
    assert bs.normalized_entropy(np.array([1 / 3] * 3)) == pytest.approx(1.0)
    assert bs.normalized_entropy(np.array([1.0, 0, 0])) == pytest.approx(0.0)
    r = np.array([0.5, 0.5])
    assert bs.total_variation(p, r) == pytest.approx(0.2)
    assert bs.kl_divergence(p, r) == pytest.approx(0.7 * math.log(1.4) + 0.3 * math.log(0.6))
    assert bs.kl_divergence(p, r) == pytest.approx(sps.entropy(p, r))
    assert bs.heim_deviation(p) == pytest.approx(0.2)
    assert bs.heim_deviation(np.array([0.5, 0.3, 0.2])) == pytest.approx((1 / 6 + 1 / 30 + 2 / 15) / 3)
    # vectorised over replicates
    reps = np.array([[0.7, 0.3], [0.5, 0.5]])
    np.testing.assert_allclose(bs.parity_gap(reps), [0.4, 0.0])


def test_goodness_of_fit_matches_scipy():
    obs = np.array([30, 50, 20])
    exp = np.array([0.3, 0.3, 0.4])
    stat, dof, pv = bs.goodness_of_fit(obs, exp, "chi2")
    ref = sps.chisquare(obs, exp * 100)
    assert stat == pytest.approx(ref.statistic) and pv == pytest.approx(ref.pvalue) and dof == 2
    g, _, pg = bs.goodness_of_fit(obs, exp, "g")
    assert g == pytest.approx(2 * np.sum(obs * np.log(obs / (exp * 100))))
    assert pg == pytest.approx(sps.chi2.sf(g, 2))
    # a count where the reference has no mass: infinite statistic
    assert bs.goodness_of_fit(np.array([5, 1]), np.array([1.0, 0.0]))[2] == 0.0


def test_holm_and_bh_hand_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005,.01,.03,.04 * 4,3,2,1 -> .02,.03,.06,.04 -> monotone .02,.03,.06,.06
    np.testing.assert_allclose(bs.holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH: sorted .005,.01,.03,.04 * 4/1,4/2,4/3,4/4 -> .02,.02,.04,.04 (step-up min)
    np.testing.assert_allclose(bs.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    out = bs.holm([0.2, float("nan"), 0.01])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.2) and out[2] == pytest.approx(0.02)
    assert bs.benjamini_hochberg([0.9, 0.8]).max() <= 1.0


def test_plan_matches_closed_form():
    pl = plan(PlanConfig(gap=0.1, power=0.8, alpha=0.05, base=0.5))
    za, zb = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    n = ((za * 0.5 + zb * math.sqrt(0.6 * 0.4)) / 0.1) ** 2
    assert pl.images_per_group == math.ceil(n) == 194
    two = plan(PlanConfig(gap=0.1, design="two-sample"))
    n2 = ((za * math.sqrt(2 * 0.55 * 0.45) + zb * math.sqrt(0.25 + 0.24)) / 0.1) ** 2
    assert two.images_per_group == math.ceil(n2)
    # design effect, abstention and classifier error all raise n
    assert plan(PlanConfig(gap=0.1, design_effect=2.0)).images_per_group == math.ceil(n * 2)
    assert plan(PlanConfig(gap=0.1, abstain=0.2)).images_per_group == math.ceil(n / 0.8)
    assert plan(PlanConfig(gap=0.1, accuracy=0.9)).images_per_group > 194
    k = plan(PlanConfig(gap=0.1, icc=0.05, images_per_prompt=8))
    assert k.design_effect == pytest.approx(1.35) and k.prompts_per_group * 8 >= k.images_per_group


def test_plan_power_confirmed_by_simulation():
    pl = plan(PlanConfig(gap=0.1, power=0.8))
    assert abs(simulate_power(pl, reps=1500, seed=1) - 0.8) < 0.05


def test_plan_rejects_bad_input_and_round_trips():
    with pytest.raises(InputError, match="--gap"):
        plan(PlanConfig(gap=1.5))
    with pytest.raises(InputError, match="--accuracy"):
        plan(PlanConfig(gap=0.1, accuracy=0.5))
    with pytest.raises(InputError, match="prompts per group"):
        plan(PlanConfig(gap=0.1, icc=0.5, prompts_per_group=10))
    c = PlanConfig(gap=0.2, icc=0.1, images_per_prompt=4)
    assert PlanConfig.from_dict(c.to_dict()) == c
