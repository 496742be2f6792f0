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


def _ppi_group(rng, P: int, p0: float, estimand: str, per: int = 40):
    """One labelled group: P prompts x ``per`` images, prompt shares expit(logit p0 + 0.6 z), a probe
    with errors, 40% of images labelled. Returns (PPI++ estimate, conditional truth)."""
    from types import SimpleNamespace

    from scipy.special import expit, logit

    from t2i_audit.audits.engine.share_estimates import attach_labelled
    from t2i_audit.stats.correction import GroupSample, estimate_group

    p_i = expit(logit(p0) + 0.6 * rng.standard_normal(P))
    prompts = np.repeat(np.arange(P), per)
    man = rng.random(P * per) < p_i[prompts]
    read = np.where(np.where(man, rng.random(man.size) < 0.9, rng.random(man.size) < 0.15), 0, 1)
    truth = np.where(rng.random(man.size) < 0.4, np.where(man, 0, 1), -9)
    cfg = SimpleNamespace(bootstrap=200, estimand=estimand, method="em")
    est = estimate_group(GroupSample.from_labels(read, prompts, 2), ("man", "woman"), B=200, rng=rng,
                         estimand=estimand)
    attach_labelled(est, read, truth, prompts, 2, "g", cfg, rng)
    return est, float(p_i.mean())


def test_ppi_interval_with_one_to_three_prompts_is_not_estimable_or_covers_never_zero_width():
    """Acceptance 4 of issue 35: PPI++ with 1, 2, 3 prompts in a group at shares near 0, 1 and 0.5."""
    rng = np.random.default_rng(8)
    for P in (1, 2, 3):
        est, _ = _ppi_group(rng, P, 0.02, "prompts")
        lo, hi, _, _, note = est.interval(est.ppi, est.ppi_reps)
        assert note and "not estimable" in note and np.isnan(lo).all() and np.isnan(hi).all()
        for p0 in (0.01, 0.98):
            hits = given = 0
            for _ in range(20):
                est, cond = _ppi_group(rng, P, p0, "these-prompts")
                if est.label_note:  # too few labels: no PPI++ estimate at all, and it says so
                    continue
                lo, hi, _, _, note = est.interval(est.ppi, est.ppi_reps)
                assert note is None and np.all(hi - lo > 0.005), (P, p0, lo, hi)
                hits += bool(lo[0] <= cond <= hi[0])
                given += 1
            # these prompts: 136/150 = 0.907 at P = 1, share 0.01 (measured); 0.8 leaves binomial slack
            assert given >= 15 and hits >= 0.8 * given, (P, p0, hits, given)
