"""Interval statistics: coverage on simulated clustered data, paired tests, skill aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from t2i_audit.errors import InputError
from t2i_audit.evals.metrics.skills import skill_accuracy
from t2i_audit.stats.proportions import mcnemar_exact, paired_cluster_bootstrap
from t2i_audit.stats.resampling import (
    cluster_bootstrap_mean,
    cluster_bootstrap_proportion,
    cluster_resample,
    wilson_interval,
)


def _clustered(rng, n_prompts=40, per=4, mu=0.3, sd_prompt=0.15, sd_img=0.1):
    means = mu + sd_prompt * rng.normal(size=n_prompts)
    vals = np.repeat(means, per) + sd_img * rng.normal(size=n_prompts * per)
    return vals, np.repeat(np.arange(n_prompts), per)


def test_cluster_bootstrap_covers_truth():
    rng = np.random.default_rng(0)
    hits = 0
    for s in range(200):
        v, c = _clustered(rng)
        e = cluster_bootstrap_mean(v, c, reps=400, seed=s)
        hits += e.ci_low <= 0.3 <= e.ci_high
    assert 0.88 <= hits / 200 <= 0.99


def test_ignoring_clusters_gives_too_narrow_intervals():
    rng = np.random.default_rng(1)
    v, c = _clustered(rng, sd_prompt=0.3, sd_img=0.05)
    clustered = cluster_bootstrap_mean(v, c, reps=1000)
    naive = cluster_bootstrap_mean(v, None, reps=1000)
    assert (clustered.ci_high - clustered.ci_low) > 1.5 * (naive.ci_high - naive.ci_low)
    assert clustered.n_clusters == 40 and naive.n_clusters == 160


def test_seeded_and_errors():
    v = np.arange(10.0)
    c = np.repeat(np.arange(5), 2)
    assert cluster_bootstrap_mean(v, c, seed=3) == cluster_bootstrap_mean(v, c, seed=3)
    with pytest.raises(InputError, match="non-finite"):
        cluster_bootstrap_mean([1.0, np.nan])
    with pytest.raises(InputError, match="labels"):
        cluster_bootstrap_mean(v, c[:3])
    p = cluster_bootstrap_proportion([True, False, True, True], ["a", "a", "b", "b"], reps=200)
    assert p.value == 0.75 and p.method.startswith("proportion")
    assert np.isnan(p.ci_low) and "not estimable" in p.method  # 2 prompts
    one = cluster_bootstrap_proportion(np.ones(40, bool), np.repeat(np.arange(8), 5), reps=200)
    assert one.value == 1.0 and one.ci_low < 0.95 and one.ci_high == pytest.approx(1.0)  # never [1, 1]
    idx = cluster_resample(c, reps=3, seed=0)
    assert all(len(ix) == 10 and all((ix[::2] // 2) == (ix[1::2] // 2)) for ix in idx)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 20)[0] == 0.0


def test_paired_bootstrap_and_mcnemar():
    rng = np.random.default_rng(2)
    a, c = _clustered(rng, mu=0.5)
    b = a - 0.05 + 0.02 * rng.normal(size=a.size)
    d = paired_cluster_bootstrap(a - b, c, n_boot=1000)
    assert d.ci_low <= 0.05 <= d.ci_high and d.p_value < 0.01
    same = paired_cluster_bootstrap(a - (a + 0.001 * rng.normal(size=a.size)), c, n_boot=1000)
    assert same.p_value > 0.05
    only_a, only_b, p = mcnemar_exact([1, 1, 1, 1, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0, 1, 1])
    assert (only_a, only_b) == (5, 0) and p == pytest.approx(2 * 0.5**5)
    assert mcnemar_exact([1, 0], [1, 0])[2] == 1.0
    with pytest.raises(InputError):
        paired_cluster_bootstrap(np.array([]), np.array([]))
    with pytest.raises(InputError):
        mcnemar_exact([1, 0, 1], [1, 0])


def test_skill_accuracy_is_mean_of_categories():
    cats = ["a"] * 8 + ["b"] * 4
    pids = [f"a{i // 2}" for i in range(8)] + [f"b{i // 2}" for i in range(4)]
    passed = [1, 1, 1, 1, 1, 1, 0, 0] + [0, 0, 1, 1]
    est = skill_accuracy(cats, pids, passed, reps=500)
    assert est["category=a"].value == 0.75 and est["category=b"].value == 0.5
    assert est["overall"].value == pytest.approx(0.625)  # not the pooled 8/12
    assert est["overall"].ci_low <= 0.625 <= est["overall"].ci_high
    assert est["overall"].n_clusters == 6 and est["overall"].n == 12


def test_centred_interval_removes_resampling_shift():
    from t2i_audit.stats.resampling import basic_interval, centred_interval

    boot = 10.0 + np.linspace(-1, 1, 201)  # every replicate above the estimate 5
    lo, hi = centred_interval(5.0, boot)
    assert lo < 5.0 < hi and hi - lo == pytest.approx(1.9, abs=1e-9)
    assert basic_interval(5.0, boot)[1] < 5.0  # the reflected interval misses the estimate here
