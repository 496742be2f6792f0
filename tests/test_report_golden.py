"""Golden tests: report tables and summaries from the fixture runs match stored expected files.

A missing or different golden file fails. To regenerate after an intended change, run
    T2I_AUDIT_UPDATE_GOLDEN=1 python -m pytest tests/test_report_golden.py
and review the diff of tests/golden/ before committing it.
"""

import os
import shutil
from pathlib import Path

import pytest

from t2i_audit.reports.compare import compare_runs, write_compare
from t2i_audit.reports.report import ReportConfig, render_report

FIX = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("T2I_AUDIT_UPDATE_GOLDEN") == "1"
HINT = "regenerate with T2I_AUDIT_UPDATE_GOLDEN=1 python -m pytest tests/test_report_golden.py and review the diff"

REPORT_FILES = ["report.md"] + [f"tables/{t}.{ext}" for t in ("aggregates", "items", "bias", "bias_stats",
                                                              "memorization", "methodology")
                                for ext in ("csv", "json")]
COMPARE_FILES = ["compare.md", "compare_metrics.csv", "compare_bias.csv", "compare_metrics.json"]


def check(produced: Path, golden: Path) -> None:
    text = produced.read_text(encoding="utf-8")
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    if not golden.is_file():
        pytest.fail(f"golden file {golden} is missing; {HINT}")
    expected = golden.read_text(encoding="utf-8")
    if text != expected:
        import difflib

        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                 str(golden), str(produced)))[:40])
        pytest.fail(f"{produced.name} differs from {golden}; {HINT}\n{diff}")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    for name in ("run_a", "train"):
        shutil.copytree(FIX / name, d / name)
    render_report(d / "run_a", d / "report", ReportConfig(formats=("md", "csv", "json")))
    write_compare(compare_runs(FIX / "run_a", FIX / "run_b", n_boot=500, seed=0), d / "compare",
                  ("md", "csv", "json"))
    return d


@pytest.mark.parametrize("rel", REPORT_FILES)
def test_report_golden(outputs, rel):
    check(outputs / "report" / rel, GOLDEN / "run_a" / rel)


@pytest.mark.parametrize("rel", COMPARE_FILES)
def test_compare_golden(outputs, rel):
    check(outputs / "compare" / rel, GOLDEN / "compare_a_b" / rel)


def test_missing_golden_file_fails(outputs, tmp_path):
    if UPDATE:
        pytest.skip("updating golden files")
    with pytest.raises(pytest.fail.Exception, match="is missing; regenerate with T2I_AUDIT_UPDATE_GOLDEN=1"):
        check(outputs / "report" / "report.md", tmp_path / "absent.md")
    (tmp_path / "changed.md").write_text("something else\n")
    with pytest.raises(pytest.fail.Exception, match="differs from"):
        check(outputs / "report" / "report.md", tmp_path / "changed.md")
