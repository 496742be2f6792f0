"""The main job `t2i-audit run` end to end on a tiny checkpoint, with a gate and a resume."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.generator.training.presets import get_preset
from t2i_audit.generator.training.train_all_stages import train_all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_gen")
    train_all(out, get_preset("tiny"), progress=False, log=lambda *a: None)
    return out


def test_run_samples_scores_audits_reports_and_resumes(tiny, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--checkpoint", str(tiny), "--out", str(out), "--limit", "12", "--images-per-prompt", "2",
            "--no-progress", "--param", "steps=2", "--param", "prior_steps=2"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "[1/6] sample" in res.output and "[4/6] diversity audit" in res.output and "[5/6] alignment" in res.output \
        and "[6/6] report" in res.output
    assert "diversity (attributes the prompts leave open, vs training):" in res.output
    assert (out / "audits" / "diversity.json").is_file() and (out / "labels" / "labels.csv").is_file()
    assert "skills" in res.output and "wall time:" in res.output
    html = out / "report" / "report.html"
    assert html.is_file() and "<html" in html.read_text()[:500].lower()
    for f in ("run.json", "manifest.parquet", "scores/aggregates.parquet", "audits/bias.parquet"):
        assert (out / f).is_file(), f
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "(0 generated, 24 reused)" in again.output


def test_run_gate_sets_the_exit_code(tiny, tmp_path):
    out = tmp_path / "run"
    common = ["run", "--checkpoint", str(tiny), "--out", str(out), "--limit", "6", "--images-per-prompt", "1",
              "--no-progress", "--no-bias", "--param", "steps=2", "--param", "prior_steps=2"]
    passing = tmp_path / "pass.yaml"
    passing.write_text("rules:\n  - skills[overall] >= 0\n")
    failing = tmp_path / "fail.yaml"
    failing.write_text("rules:\n  - skills[overall] >= 1.01\n")
    assert CliRunner().invoke(main, [*common, "--rules", str(passing)]).exit_code == 0
    res = CliRunner().invoke(main, [*common, "--rules", str(failing)])
    assert res.exit_code == 1, res.output
    gate = json.loads((out / "gate.json").read_text())
    assert gate["passed"] is False


def test_run_rejects_a_bad_checkpoint(tmp_path):
    res = CliRunner().invoke(main, ["run", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "not 'bundled', a checkpoint directory" in res.output
