"""Compare: paired bootstrap against a reference, exact McNemar against scipy, fixture runs, errors, CLI."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.reports.compare import CompareWarning, compare_runs, write_compare
from t2i_audit.stats.proportions import mcnemar_exact, paired_cluster_bootstrap

FIX = Path(__file__).parent / "fixtures"


def test_paired_bootstrap_matches_cluster_standard_error():
    rng = np.random.default_rng(1)
    k, m = 200, 4                                   # 200 prompts × 4 seeds, prompt effect correlates seeds
    effect = rng.normal(0.3, 1.0, size=k)
    diff = (effect[:, None] + rng.normal(0, 0.5, size=(k, m))).ravel()
    clusters = np.repeat(np.arange(k), m)
    d = paired_cluster_bootstrap(diff, clusters, n_boot=4000, seed=0)
    means = diff.reshape(k, m).mean(1)
    se = means.std(ddof=1) / np.sqrt(k)             # textbook cluster-robust standard error
    assert d.estimate == pytest.approx(diff.mean())
    assert (d.ci_high - d.ci_low) / 2 == pytest.approx(1.96 * se, rel=0.08)
    assert d.p_value < 0.01 and d.n_clusters == k
    # no effect: the interval covers 0 and p is large
    null = paired_cluster_bootstrap(diff - diff.mean(), clusters, n_boot=2000, seed=0)
    assert null.ci_low < 0 < null.ci_high and null.p_value > 0.5
    one = paired_cluster_bootstrap(np.array([1.0, 2.0]), np.array(["p", "p"]))
    assert np.isnan(one.ci_low) and "not estimable" in one.method


def test_paired_bootstrap_keeps_coverage_with_few_prompts():
    """With 6 prompts the plain percentile interval is too narrow; the t-widened one covers >= 90%,
    and below 5 prompts the interval is not estimable rather than narrow."""
    rng = np.random.default_rng(7)
    k, m, hits, plain_hits, reps = 6, 4, 0, 0, 300
    for r in range(reps):
        diff = (rng.normal(0.0, 1.0, size=k)[:, None] + rng.normal(0, 0.5, size=(k, m))).ravel()
        d = paired_cluster_bootstrap(diff, np.repeat(np.arange(k), m), n_boot=400, seed=r)
        hits += d.ci_low <= 0.0 <= d.ci_high
        widen = np.sqrt(k / (k - 1)) * stats.t.ppf(0.975, k - 1) / stats.norm.ppf(0.975)
        lo, hi = d.estimate - (d.estimate - d.ci_low) / widen, d.estimate + (d.ci_high - d.estimate) / widen
        plain_hits += lo <= 0.0 <= hi
    assert 0.90 <= hits / reps <= 0.99, hits / reps
    assert plain_hits / reps < hits / reps and plain_hits / reps < 0.90, plain_hits / reps
    four = paired_cluster_bootstrap(np.arange(8.0), np.repeat(np.arange(4), 2))
    assert np.isnan(four.ci_low) and np.isnan(four.p_value) and "fewer than 5" in four.method


def test_mcnemar_exact_matches_scipy_binomtest():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.random(60) < 0.7
        b = rng.random(60) < 0.5
        nb, nc, p = mcnemar_exact(a, b)
        assert (nb, nc) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))
        ref = stats.binomtest(nb, nb + nc, 0.5).pvalue if nb + nc else 1.0
        assert p == pytest.approx(ref, rel=1e-12)


def test_compare_fixture_runs():
    c = compare_runs(FIX / "run_a", FIX / "run_b", n_boot=1000)
    assert c.n_pairs == 24 and c.n_unpaired_a == c.n_unpaired_b == 0 and not c.warnings
    skill = c.metrics.set_index(["metric", "group"]).loc[("skill", "overall")]
    # from the fixture's planted failures: run_a fails 5 of 24, run_b 12 of 24; A-only passes 7, B-only 0
    assert skill.mean_a == pytest.approx(19 / 24) and skill.mean_b == pytest.approx(12 / 24)
    assert skill.difference == pytest.approx(-7 / 24)
    assert (skill.mcnemar_b, skill.mcnemar_c) == (7, 0)
    assert skill.ci_high < 0                         # the paired interval excludes 0
    assert skill.test == "paired cluster bootstrap"  # McNemar no longer overrides the clustered test
    assert skill.p_value < 0.05 and "discordant pairs" in skill.method
    clip = c.metrics.set_index(["metric", "group"]).loc[("clip_score", "overall")]
    assert clip.test == "paired cluster bootstrap" and clip.ci_high < 0
    shifts = c.bias_shifts
    assert not shifts.duplicated(["probe", "section", "attribute", "group", "cls"]).any()
    shift = shifts.set_index(["attribute", "group", "cls"]).loc[("presentation", "firefighter", "woman")]
    assert shift["shift"] == pytest.approx(0.08 - 0.20) and shift["basis"] == "corrected"


def test_compare_run_with_itself_gives_zero_shifts(tmp_path):
    """A run against itself: every bias row pairs the same probe and section, every shift is 0 with a
    zero-width interval (a copy whose items differ would not be paired this way)."""
    import numpy as np

    a = tmp_path / "run_a"
    shutil.copytree(FIX / "run_a", a)
    bias = pd.read_parquet(a / "audits/bias.parquet")
    man = pd.read_parquet(a / "manifest.parquet")
    cells = bias[["probe", "attribute", "group"]].drop_duplicates()
    pd.concat([pd.DataFrame({"image_id": man["image_id"].astype(str), "prompt_id": man["prompt_id"].astype(str),
                             "group": c.group, "probe": c.probe, "attribute": c.attribute, "reading": "man"})
               for c in cells.itertuples()]).to_parquet(a / "audits/bias_items.parquet")
    c = compare_runs(a, a, n_boot=200)
    s = c.bias_shifts
    assert len(s) == len(bias)  # one row per cell, not one per probe pairing
    paired = s[s["method"].str.contains("paired")]
    assert len(paired) == len(s), s["method"].unique()
    assert (s["shift"] == 0).all() and (s["ci_low"] == 0).all() and (s["ci_high"] == 0).all()
    assert np.isfinite(s["share_a"]).all()


def test_compare_errors_and_warnings(tmp_path):
    for name in ("run_a", "run_b"):
        shutil.copytree(FIX / name, tmp_path / name)
    a, b = tmp_path / "run_a", tmp_path / "run_b"
    items = pd.read_parquet(b / "scores/items.parquet")
    items.assign(seed=items.seed + 100).to_parquet(b / "scores/items.parquet")
    with pytest.raises(InputError, match="share no \\(prompt_id, seed\\) pairs"):
        compare_runs(a, b)
    items.to_parquet(b / "scores/items.parquet")
    run = (b / "run.json").read_text().replace("f1x7ure0000cafe", "otherhash")
    (b / "run.json").write_text(run)
    with pytest.warns(CompareWarning, match="suite hash differs"):
        c = compare_runs(a, b, n_boot=200)
    assert c.warnings
    (a / "scores/items.parquet").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="run `t2i-audit score`"):
            compare_runs(a, b)


def test_compare_outputs_and_cli(tmp_path):
    c = compare_runs(FIX / "run_a", FIX / "run_b", n_boot=200)
    files = write_compare(c, tmp_path / "cmp")
    names = {p.name for p in files}
    assert {"compare.md", "compare.html", "compare_metrics.csv", "compare_bias.json"} <= names
    html = (tmp_path / "cmp/compare.html").read_text()
    assert "<script" not in html and "clustered test" in html
    res = CliRunner().invoke(main, ["compare", str(FIX / "run_a"), str(FIX / "run_b"), "--out",
                                    str(tmp_path / "cli"), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "skill" in res.output and "bias shifts" in res.output
    assert (tmp_path / "cli/compare.md").is_file()
