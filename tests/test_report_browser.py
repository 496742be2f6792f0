"""Acceptance: the HTML report opens in headless Chromium with every image loaded, no console
messages, a non-blank screenshot, and a prompt containing <script> shown as text.

Needs Debian's `chromium` (`apt-get install -y chromium`; .ci/run installs it). Without it the test
is skipped locally, and fails when CI=true.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from system_tools import require_tool
from t2i_audit.reports.report import ReportConfig, render_report

FIX = Path(__file__).parent / "fixtures"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]
NONCE = "t2i-audit-check"
XSS_TEXT = '<script>alert("pwned")</script> firefighter & "friends"'
# Runs after load in an instrumented copy of the report; writes its findings into the DOM.
CHECK_JS = """
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.alt; });
  var out = {n_images: imgs.length, broken: broken, n_scripts: document.scripts.length,
             has_prompt: document.body.textContent.indexOf(%s) >= 0};
  var pre = document.createElement('pre');
  pre.id = 't2i-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def chromium() -> str:
    return require_tool("chromium", "chromium-browser", "google-chrome", env="T2I_AUDIT_CHROMIUM",
                        install="apt-get install -y chromium")


def run_chromium(exe: str, page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    return out.stdout, console


def instrument(html: str) -> str:
    """A copy of the report with one nonce'd checking script (the report itself has none)."""
    assert "<script" not in html
    js_needle = json.dumps(XSS_TEXT).replace("<", "\\u003c").replace(">", "\\u003e")
    html = html.replace("default-src 'none';", f"default-src 'none'; script-src 'nonce-{NONCE}';", 1)
    return html.replace("</body>", f'<script nonce="{NONCE}">{CHECK_JS % js_needle}</script></body>')


def findings(dom: str) -> dict:
    m = re.search(r'<pre id="t2i-check">(.*?)</pre>', dom, re.S)
    assert m, "the checking script did not run"
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


@pytest.mark.slow
def test_report_in_headless_chromium(tmp_path):
    exe = chromium()
    for name in ("run_a", "train"):
        shutil.copytree(FIX / name, tmp_path / name)
    report = render_report(tmp_path / "run_a", tmp_path / "out", ReportConfig(formats=("html",))).html

    # 1. the report as written: screenshot, and no console message at all (it has no scripts)
    shot = tmp_path / "shot.png"
    _, console = run_chromium(exe, report, tmp_path / "profile1", "--window-size=1200,2400",
                              "--hide-scrollbars", f"--screenshot={shot}")
    assert console == [], console
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (2400, 1200)
    assert img.std() > 20 and (img < 200).mean() > 0.02, "screenshot is blank"

    # 2. an instrumented copy: every <img> decoded, only the checker's script, the prompt shown as text
    check = tmp_path / "out" / "check.html"
    check.write_text(instrument(report.read_text()))
    dom, console = run_chromium(exe, check, tmp_path / "profile2", "--dump-dom")
    assert console == [], console
    f = findings(dom)
    assert f["broken"] == [] and f["n_images"] >= 24 + 4 + 4, f
    assert f["n_scripts"] == 1 and f["has_prompt"] is True, f


def test_detector_catches_broken_images_and_console_errors(tmp_path):
    """Negative control: the same checks flag a page with a broken image and a console error."""
    exe = chromium()
    page = tmp_path / "bad.html"
    page.write_text(instrument(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' content=\"default-src 'none';"
        " img-src data:\"></head><body><img alt='broken' src='data:image/png;base64,AAAA'>"
        "<p>&lt;script&gt;</p></body></html>").replace(
        "</body>", f"<script nonce='{NONCE}'>console.error('boom')</script></body>"))
    dom, console = run_chromium(exe, page, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console), console
    f = findings(dom)
    assert f["broken"] == ["broken"] and f["has_prompt"] is False
