"""Gate evaluation on fixture runs: verdicts, baseline intervals, errors, refusals, CLI and CI outputs."""

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.reports.gate.rules import parse_rules
from t2i_audit.reports.gate.run import evaluate, gate_run_dir
from t2i_audit.reports.results import load_run
from t2i_audit.stats.proportions import independent_difference

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def runs(tmp_path):
    for name in ("run_a", "run_b", "train"):
        shutil.copytree(FIX / name, tmp_path / name)
    return tmp_path / "run_a", tmp_path / "run_b"


def gate(run, rules, baseline=None):
    parsed, conf = parse_rules({"rules": rules}, "gate.yaml")
    return evaluate(load_run(run), parsed, load_run(baseline) if baseline else None, confidence=conf,
                    source="gate.yaml")


def test_absolute_rules_point_and_bound(runs):
    a, _ = runs
    r = gate(a, ["clip_score.mean >= 24", "skill >= 0.6", "skill >= 0.6 confidently", "fd < 16",
                 "skill[people] >= 0.9", "bias.presentation.parity_gap[firefighter] <= 0.7",
                 "memorization.rate <= 0.05"])
    assert [c.verdict for c in r.checks] == ["pass", "pass", "fail", "fail", "pass", "pass", "pass"]
    assert r.checks[2].judged_on == "95% CI lower bound" and r.checks[2].ci_low == pytest.approx(0.541667)
    assert r.checks[4].key == "skill[category=people]"
    assert r.exit_code == 1 and not r.passed
    assert gate(a, ["clip_score >= 20"]).exit_code == 0


def test_non_inferiority_on_the_interval_bound(runs):
    a, b = runs
    worse = gate(b, ["skill.overall: no worse than baseline by more than 0.02"], a).checks[0]
    assert worse.verdict == "fail" and worse.diff == pytest.approx(0.3125 - 0.6875)
    # the same run against itself: difference 0, but the interval is wide -> margin 0.02 is not proven
    # and no change is not excluded either: inconclusive, with the images that would decide it
    same = gate(a, ["skill no worse than baseline by more than 0.02",
                    "skill no worse than baseline by more than 0.5"], a).checks
    assert [c.verdict for c in same] == ["inconclusive", "pass"] and same[0].diff == 0
    assert same[0].images_needed > same[0].n * 100 and same[1].images_needed is None
    # lower-is-better metric: run_a's FD is lower than run_b's
    assert gate(a, ["fd no worse than baseline"], b).checks[0].verdict == "pass"
    assert gate(b, ["fd <= baseline + 2"], a).checks[0].verdict == "fail"
    # the interval is the documented quadrature combination
    c = gate(b, ["skill >= baseline - 0.02"], a).checks[0]
    ref = independent_difference(0.3125, c.ci_low, c.ci_high, 0.6875, 0.541667, 0.833333)
    assert c.diff_ci_low == pytest.approx(ref.ci_low) and c.diff_ci_high == pytest.approx(ref.ci_high)
    se = math.hypot((c.ci_high - c.ci_low) / 3.919928, (0.833333 - 0.541667) / 3.919928)
    assert c.diff_ci_low == pytest.approx(-0.375 - 1.959964 * se, abs=1e-5)


def test_wildcard_expands_with_bonferroni_level(runs):
    a, b = runs
    checks = gate(b, ["bias.presentation.share[*:woman] same as baseline"], a).checks
    assert [c.key for c in checks] == ["bias.presentation.share[chef:woman]",
                                       "bias.presentation.share[firefighter:woman]"]
    assert all(c.level == pytest.approx(0.975) for c in checks)
    assert checks[1].diff == pytest.approx(0.08 - 0.20)
    assert all(c.verdict == "pass" for c in checks)   # 6 images: a 12 pp shift is not evidence
    # a shift is flagged when the interval excludes 0
    assert gate(b, ["skill same as baseline"], a).checks[0].verdict == "fail"


@pytest.mark.parametrize("rule, match", [
    ("clip_scor >= 1", "unknown metric 'clip_scor' .*did you mean 'clip_score'"),
    ("skill[peple] >= 1", "unknown group \\[peple\\].*did you mean 'people'"),
    ("bias.parity_gap[firefighter] <= 0.3", "ambiguous: name the attribute"),
    ("bias.presentation.share >= 0.1", "needs a \\[group\\]"),
    ("bias.presentation.share[nurse:*] >= 0.1", "matches no group"),
    ("skill >= baseline", "pass --baseline"),
    ("precision >= 0.5", "unknown metric"),
])
def test_rule_errors_name_the_rule(runs, rule, match):
    a, _ = runs
    with pytest.raises(InputError, match=match):
        gate(a, [rule])


def test_unknown_direction_and_missing_baseline_metric(runs, tmp_path):
    a, b = runs
    with pytest.raises(InputError, match="higher or lower"):
        gate(a, ["bias.presentation.share[chef:woman] no worse than baseline"], b)
    agg = pd.read_parquet(b / "scores/aggregates.parquet")
    agg[agg.metric != "fd"].to_parquet(b / "scores/aggregates.parquet")
    with pytest.raises(InputError, match="baseline run 'run_b' has no fd"):
        gate(a, ["fd <= baseline"], b)


def test_refuses_incomplete_runs_and_missing_results(runs, tmp_path):
    a, b = runs
    rules = tmp_path / "gate.yaml"
    rules.write_text("rules:\n  - skill >= 0.5\n  - memorization.rate <= 0.1\n")
    assert gate_run_dir(a, rules).passed
    (a / "audits/memorization.json").unlink()
    with pytest.raises(InputError, match="memorization.json is missing"):
        gate_run_dir(a, rules)
    rules.write_text("rules:\n  - skill >= 0.5\n")
    man = pd.read_parquet(a / "manifest.parquet")
    man.iloc[:20].to_parquet(a / "manifest.parquet")
    with pytest.raises(InputError, match="manifest.parquet has 20 images but run.json promises 24"):
        gate_run_dir(a, rules)
    man.to_parquet(a / "manifest.parquet")
    (b / "scores/items.parquet").unlink()
    with pytest.raises(InputError, match="items.parquet is missing"):
        gate_run_dir(a, rules, b)
    js = json.loads((a / "run.json").read_text())
    (a / "run.json").write_text(json.dumps({**js, "images_per_prompt": 4}))
    with pytest.raises(InputError, match="promises 32"):
        gate_run_dir(a, rules)


def test_cli_exit_codes_junit_and_json(runs, tmp_path):
    a, b = runs
    rules = tmp_path / "gate.yaml"
    rules.write_text("rules:\n  - clip_score.mean >= 24\n"
                     "  - skill.overall: no worse than baseline by more than 0.02\n"
                     "  - {rule: 'bias.presentation.share[*:woman] same as baseline', name: women-share}\n")
    cli = CliRunner()
    junit, js = tmp_path / "ci/junit.xml", tmp_path / "ci/gate.json"
    res = cli.invoke(main, ["gate", str(b), "--rules", str(rules), "--baseline", str(a), "--junit", str(junit),
                            "--json", str(js)])
    assert res.exit_code == 1, res.output
    assert "gate: FAIL (2 of 4)" in res.output and "women-share" in res.output
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "4" and root.get("failures") == "2"
    cases = root.findall(".//testcase")
    assert len(cases) == 4 and sum(c.find("failure") is not None for c in cases) == 2
    data = json.loads(js.read_text())
    assert data["schema"] == "t2i-audit/gate/1" and data["passed"] is False and data["n_failed"] == 2
    assert json.loads((b / "gate.json").read_text()) == data      # saved for the report
    ok = cli.invoke(main, ["gate", str(a), "--rules", str(rules), "--baseline", str(a)])
    # self-comparison cannot prove a 0.02 margin with 8 prompts, nor show a change: inconclusive, exit 0 (warn)
    assert ok.exit_code == 0 and "gate: INCONCLUSIVE (1 of 4)" in ok.output, ok.output
    rules.write_text("rules:\n  - clip_score >= 20\n")
    assert cli.invoke(main, ["gate", str(a), "--rules", str(rules)]).exit_code == 0
    rules.write_text("rules:\n  - clip_scor >= 20\n")
    bad = cli.invoke(main, ["gate", str(a), "--rules", str(rules)])
    assert bad.exit_code == 2 and "did you mean 'clip_score'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert cli.invoke(main, ["gate", str(a), "--rules", str(tmp_path / "nope.yaml")]).exit_code == 2
    rules.write_text("rules: [\n")
    bad = cli.invoke(main, ["gate", str(a), "--rules", str(rules)])
    assert bad.exit_code == 2 and "not valid YAML" in bad.output


def test_report_shows_saved_gate(runs, tmp_path):
    a, _ = runs
    rules = tmp_path / "gate.yaml"
    rules.write_text("rules:\n  - skill >= 0.9\n")
    gate_run_dir(a, rules)
    from t2i_audit.reports.report import render_report

    html = render_report(a, tmp_path / "rep").html.read_text()
    assert "verdict fail" in html and "skill &gt;= 0.9" in html


def test_several_probes_uncorrected_shares_and_bracketed_statistics(runs):
    """As the bias audit writes them: a probe column with two probes, NaN corrected shares when a
    probe is uncalibrated, and statistics such as amplification[woman]."""
    a, _ = runs
    bias = pd.read_parquet(a / "audits/bias.parquet")
    oracle = bias.assign(probe="pictoworld-oracle", corrected=float("nan"), corr_ci_low=float("nan"),
                         corr_ci_high=float("nan"))
    pd.concat([bias, oracle]).to_parquet(a / "audits/bias.parquet")
    st = pd.read_parquet(a / "audits/bias_stats.parquet")
    amp = st[st.statistic == "parity_gap"].assign(statistic="amplification[woman]", value=0.05)
    st = pd.concat([st, amp])
    pd.concat([st.assign(probe="clip-zero-shot"), st.assign(probe="pictoworld-oracle", value=st.value + 0.01)]
              ).to_parquet(a / "audits/bias_stats.parquet")
    with pytest.raises(InputError, match="several probes; name one: bias.clip-zero-shot.presentation.share"):
        gate(a, ["bias.presentation.share[firefighter:woman] <= 1"])
    c = gate(a, ["bias.pictoworld-oracle.presentation.share[firefighter:woman] <= 1",
                 "bias.clip-zero-shot.presentation.amplification_woman[firefighter] <= 0.1",
                 "bias.pictoworld-oracle.presentation.parity_gap[firefighter] <= 0.7"]).checks
    assert c[0].value == pytest.approx(0.18)              # uncorrected probe: the raw share
    assert c[1].value == pytest.approx(0.05) and c[2].value == pytest.approx(0.61)
    from t2i_audit.reports.html import html_report

    html = html_report(load_run(a))
    assert "presentation (probe pictoworld-oracle)" in html and "amplification[woman]" in html
