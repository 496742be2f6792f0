"""CI recipe: `gate --summary-md` (golden file, ordering, escaping) and the example GitHub Actions
workflow (schema keys, step references, and every `t2i-audit` command line it runs parses)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.reports.gate.run import Check, GateResult
from t2i_audit.reports.gate.summary import summary_markdown

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden" / "gate_summary.md"
WORKFLOW = ROOT / "examples" / "github-actions" / "audit-gate.yml"
UPDATE = os.environ.get("T2I_AUDIT_UPDATE_GOLDEN") == "1"
RULES = (
    "rules:\n  - clip_score.mean >= 24\n  - skill.overall: no worse than baseline by more than 0.02\n"
    "  - {rule: 'bias.presentation.share[*:woman] same as baseline', name: women-share}\n"
)


def test_summary_md_golden(tmp_path):
    for name in ("run_a", "run_b", "train"):
        shutil.copytree(FIX / name, tmp_path / name)
    rules = tmp_path / "gate.yaml"
    rules.write_text(RULES)
    out = tmp_path / "ci" / "summary.md"
    r = CliRunner().invoke(
        main,
        [
            "gate",
            str(tmp_path / "run_b"),
            "--rules",
            str(rules),
            "--baseline",
            str(tmp_path / "run_a"),
            "--summary-md",
            str(out),
        ],
    )
    assert r.exit_code == 1, r.output
    text = out.read_text(encoding="utf-8")
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.is_file(), (
        "regenerate with T2I_AUDIT_UPDATE_GOLDEN=1 and review tests/golden/gate_summary.md"
    )
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert str(tmp_path) not in text  # no absolute paths: the same verdict on every machine
    assert text.startswith("### t2i-audit gate: ❌ FAIL (2 of 4 checks)")


def _check(verdict: str, name: str, key: str = "skill") -> Check:
    return Check(
        rule=name,
        name=name,
        key=key,
        kind="absolute",
        value=0.5,
        ci_low=0.4,
        ci_high=0.6,
        n=40,
        threshold_text=">= 0.45",
        judged_on="point estimate",
        verdict=verdict,
    )


def test_summary_lists_failures_first_and_escapes_cells():
    res = GateResult(
        "r1",
        [_check("pass", "ok-1"), _check("fail", "bad|pipe", "a|b"), _check("pass", "ok-2")],
        rules_file="/abs/where/gate.yaml",
        warnings=["suite hash\ndiffers"],
    )
    md = summary_markdown(res)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "verdict" not in ln]
    assert len(rows) == 3 and "❌" in rows[0] and "bad\\|pipe" in rows[0] and "`a\\|b`" in rows[0]
    assert all(r.count(" | ") == 8 for r in rows)  # 9 cells: nothing broke the table
    assert "| 40 |" in rows[1] and "0.500 [0.400, 0.600]" in rows[1]
    assert "rules `gate.yaml`" in md and "/abs/where" not in md and "suite hash differs" in md
    ok = summary_markdown(GateResult("r1", [_check("pass", "x")]))
    assert ok.startswith("### t2i-audit gate: ✅ PASS\n")


# ------------------------------------------------------------------------------------------ workflow
def _workflow() -> dict:
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    if True in wf:  # YAML 1.1 reads the bare key `on` as a boolean
        wf["on"] = wf.pop(True)
    return wf


def _t2i_commands(script: str) -> list[list[str]]:
    """Each `t2i-audit ...` invocation in a step's shell script, as an argv (expressions replaced)."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", script.replace("\\\n", " "))
    out = []
    for line in re.split(r"\n|&&|\|\||;", script):
        words = shlex.split(line, comments=True)
        if words and words[0] == "t2i-audit":
            out.append([re.sub(r"^\$\{?(\w+)\}?$", r"\1", w) for w in words[1:]])
    return out


def test_workflow_schema():
    wf = _workflow()
    assert {"name", "on", "jobs"} <= set(wf)
    assert "pull_request" in wf["on"]
    assert set(wf.get("permissions", {}).values()) <= {"read", "write", "none"}
    assert wf["jobs"], "no jobs"
    for job_id, job in wf["jobs"].items():
        assert re.fullmatch(r"[A-Za-z_][\w-]*", job_id)
        assert isinstance(job["runs-on"], str) and job["runs-on"]
        steps = job["steps"]
        assert isinstance(steps, list) and steps
        ids = [s["id"] for s in steps if "id" in s]
        assert len(ids) == len(set(ids)), "duplicate step ids"
        for s in steps:
            assert set(s) <= {
                "name",
                "id",
                "if",
                "uses",
                "run",
                "with",
                "env",
                "shell",
                "continue-on-error",
                "timeout-minutes",
                "working-directory",
            }, s
            assert ("uses" in s) != ("run" in s), f"a step needs exactly one of uses/run: {s}"
            if "uses" in s:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", s["uses"]), s["uses"]
            assert "with" not in s or "uses" in s
            for ref in re.findall(r"steps\.([\w-]+)\.", str(s.get("if", "")) + str(s.get("run", ""))):
                assert ref in ids, f"step {s.get('name')} refers to unknown step id {ref!r}"


def test_workflow_samples_scores_gates_and_uploads():
    steps = _workflow()["jobs"]["audit"]["steps"]
    runs = [s.get("run", "") for s in steps]
    cmds = [c for r in runs for c in _t2i_commands(r)]
    assert [c[0] for c in cmds][:3] == ["sample", "score", "audit"] and "gate" in [c[0] for c in cmds]
    gate = next(c for c in cmds if c[0] == "gate" and c[1] != "calibrate")
    assert "--summary-md" in gate and "--baseline" in gate
    summary = gate[gate.index("--summary-md") + 1]
    assert any(f'cat {summary} >> "$GITHUB_STEP_SUMMARY"' in r for r in runs)
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache/restore@") for u in uses), "no baseline restore"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "always()" in upload["if"], "the report must be uploaded when the gate fails"


# every t2i-audit line of the workflow and the README parses: tests/test_ci_recipe.py


def test_workflow_parser_rejects_a_bad_option():
    import click

    with pytest.raises(click.UsageError):
        cmd = main.get_command(None, "gate")
        cmd.make_context("gate", ["RUN", "--rules", "r.yaml", "--sumary-md", "x.md"])
