"""The HTML report: self-contained, escaped, every section present, images inline."""

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from t2i_audit.reports.html import html_report
from t2i_audit.reports.html_images import image_data_uri
from t2i_audit.reports.report import render_report
from t2i_audit.reports.results import load_run

FIX = Path(__file__).parent / "fixtures"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])
        for k, v in attrs:
            assert not k.startswith("on"), f"event handler attribute {k}"
            if k == "src":
                assert v.startswith("data:image/"), v
            if k == "href":  # an in-page anchor, or an original image linked by relative path
                assert v.startswith("#") or (not re.match(r"^[a-z]+:|/", v) and v.endswith(".png")), v

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    shutil.copytree(FIX / "run_a", d / "run_a")
    shutil.copytree(FIX / "train", d / "train")
    return load_run(d / "run_a"), render_report(d / "run_a", d / "out").html.read_text(), d / "out"


def test_self_contained_and_escaped(page):
    res, html, _ = page
    p = _Collect()
    p.feed(html)
    assert "script" not in p.tags and "iframe" not in p.tags and "link" not in p.tags
    # the <script> prompt appears as text, escaped in the source
    text = "".join(p.text)
    assert '<script>alert("pwned")</script> firefighter & "friends"' in text
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # 24 run images + 4 memorization images + plots, all inline data URIs
    pngs = [s for s in p.srcs if s.startswith("data:image/png")]
    assert len(pngs) >= 24 + 4 + 4


def test_sections_and_numbers(page):
    res, html, out = page
    for heading in ("Summary", "Accuracy and scores per category", "Bias", "Distribution metrics against sample size",
                    "Images per prompt", "Memorization", "Methodology"):
        assert f">{heading}</h2>" in html
    assert "0.688" in html and "[0.542, 0.833]" in html           # overall skill with its CI
    assert "relation: square is right of triangle" in html        # a failure reason under its image
    assert "pictoworld-oracle/1" in html                          # methodology: evaluator id
    assert "No gate result" in html
    assert html_report(res, out=out) == html                      # deterministic


def test_gate_result_shown_when_present(page, tmp_path):
    res, _, _ = page
    res.gate = {"passed": False, "rules": [{"rule": "skill >= 0.9", "value": 0.69, "ci_low": 0.54,
                                            "ci_high": 0.83, "threshold_text": ">= 0.9", "verdict": "fail"}]}
    html = html_report(res)
    assert "verdict fail" in html and "skill &gt;= 0.9" in html
    res.gate = None


def test_missing_or_foreign_images_do_not_break(tmp_path):
    shutil.copytree(FIX / "run_a", tmp_path / "run_a")
    (tmp_path / "run_a/images/p000-s0.png").unlink()
    (tmp_path / "run_a/images/p000-s1.png").write_bytes(b"<svg onload=alert(1)>")
    man = pd.read_parquet(tmp_path / "run_a/manifest.parquet")
    man.loc[man.image_id == "p000-s2", "path"] = "../../../etc/passwd"
    man.to_parquet(tmp_path / "run_a/manifest.parquet")
    html = html_report(load_run(tmp_path / "run_a"))
    assert html.count("image missing") >= 2 + 2   # two broken run images + two train images not copied
    assert "outside run" in html
    assert "onload" not in html
    assert image_data_uri(tmp_path / "run_a/images/p000-s1.png") is None


def test_image_cap_per_prompt(page):
    res, _, _ = page
    html = html_report(res, max_per_prompt=1)
    assert len(re.findall(r"2 more image\(s\) not shown", html)) == 8
