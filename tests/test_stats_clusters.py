"""Cluster-aware intervals of rates and shares (stats.clusters): planted within-prompt correlation,
and intervals that are never zero width where an interval is given."""

from __future__ import annotations

import numpy as np

from t2i_audit.stats.clusters import clustered_rate_interval, wilson_bounds


def _copying_prompts(rng, prompts: int = 40, per: int = 10, rate: float = 0.1):
    """Whole prompts copy: each prompt copies in all its images with probability ``rate`` (ICC 1)."""
    copies = rng.random(prompts) < rate
    return np.repeat(copies, per), np.repeat(np.arange(prompts), per)


def test_effective_n_interval_by_prompt_covers_where_the_image_wilson_does_not():
    rng = np.random.default_rng(3)
    old = new = 0
    sims = 120
    for s in range(sims):
        flags, prompts = _copying_prompts(rng)
        lo, hi = wilson_bounds(flags.mean(), len(flags), 1.959964)
        old += bool(lo <= 0.1 <= hi)
        _, clo, chi, deff, n_eff, note = clustered_rate_interval(flags, prompts, B=500, seed=s)
        assert note is None and deff >= 1 and n_eff <= len(flags)
        new += bool(clo <= 0.1 <= chi)
    assert old / sims < 0.7, old  # images treated as independent: far below 95%
    assert new / sims >= 0.88, new


def test_clustered_rate_interval_is_plain_wilson_without_correlation_and_never_zero_width():
    flags = np.zeros(200, bool)
    prompts = np.repeat(np.arange(20), 10)
    rate, lo, hi, deff, n_eff, note = clustered_rate_interval(flags, prompts, B=200)
    assert rate == 0 and lo < 1e-12 and hi > 0.01 and deff == 1 and n_eff == 200 and note is None


def test_clustered_rate_interval_not_estimable_with_few_prompts():
    flags = np.r_[np.ones(10, bool), np.zeros(30, bool)]
    *_, note = clustered_rate_interval(flags, np.repeat(np.arange(4), 10), B=200)
    assert note and "not estimable" in note
