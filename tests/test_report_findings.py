"""The report leads with findings: plain sentences with numbers, read from result files; checked in
the Markdown, the HTML, and (slow) in headless Chromium: visible text of the top section, a
non-blank screenshot, no console messages."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from t2i_audit.cli import main
from t2i_audit.reports.report import ReportConfig, render_report
from test_audit_diversity import make_run
from test_report_browser import FLAGS, chromium

FIX = Path(__file__).parent / "fixtures"
COLLAPSE = re.compile(r"clothing: 2 of 4 modes missing in 2 groups \(chef, doctor\); lowest share (orange|teal) "
                      r"0\.0% \[0\.0, 5\.7\] \((chef|doctor), n=64\) vs 25\.0% in training\.")


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("findings") / "run", ("purple", "pink"), per_prof=64,
                   profs=("chef", "doctor"))
    r = CliRunner().invoke(main, ["audit", "diversity", str(run), "--bootstrap", "100", "--features", "none"])
    assert r.exit_code == 0, r.output
    return run


def test_findings_on_fixture_run_a(tmp_path):
    shutil.copytree(FIX / "run_a", tmp_path / "run_a")
    md = render_report(tmp_path / "run_a", tmp_path / "out", ReportConfig(formats=("md",))).markdown.read_text()
    top = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert "1. relation is the weakest skill: 0.333 [0.333, 0.333] (n=3 images)." in top
    assert "2. Near-copies of training images: 0.042 [0.007, 0.203] (n=24)." in top


def test_collapse_leads_the_report(collapsed, tmp_path):
    paths = render_report(collapsed, tmp_path / "out", ReportConfig(formats=("md", "html")))
    md = paths.markdown.read_text()
    assert md.index("## Findings") < md.index("## Metrics") and COLLAPSE.search(md.split("## Findings")[1])
    html = paths.html.read_text()
    assert html.index("id='findings'") < html.index("id='summary'")
    assert "<a href='#diversity'>evidence</a>" in html and "id='diversity'" in html


@pytest.mark.slow
def test_findings_in_headless_chromium(collapsed, tmp_path):
    import subprocess

    exe = chromium()
    page = render_report(collapsed, tmp_path / "out", ReportConfig(formats=("html",))).html
    shot = tmp_path / "shot.png"
    out = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--window-size=1200,900",
                          "--hide-scrollbars", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and not [x for x in out.stderr.splitlines() if ":CONSOLE" in x]
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.std() > 20, "screenshot is blank"
    dom = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    top = re.search(r"<ol class=\"findings\">(.*?)</ol>", dom, re.S)
    assert top, "no Findings list in the rendered page"
    text = re.sub(r"<[^>]+>", "", top.group(1))
    assert COLLAPSE.search(text), text


def test_findings_read_numbers_not_text(collapsed, tmp_path):
    """The training share in a finding comes from the audit's ``reference`` field: rewording the
    detail text changes nothing, and a changed number changes the sentence."""
    import json

    run = tmp_path / "run"
    shutil.copytree(collapsed, run)
    path = run / "audits" / "diversity.json"
    meta = json.loads(path.read_text())
    shares = [f for f in meta["findings"] if str(f["statistic"]).startswith("share[") and f["attribute"] == "clothing"]
    assert shares and all(f["reference"] == 0.25 for f in shares)  # four colours drawn uniformly in training
    for f in shares:
        f["detail"], f["reference"] = "reworded: one in four", 0.3
    path.write_text(json.dumps(meta))
    md = render_report(run, tmp_path / "out", ReportConfig(formats=("md",))).markdown.read_text()
    top = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert "n=64) vs 30.0% in training." in top, top
