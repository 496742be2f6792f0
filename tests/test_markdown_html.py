"""No user text becomes HTML in a Markdown output (issue 40, item 6).

A run whose suite categories, prompts and slot values hold HTML (and a gate rule named with HTML) is
scored, reported, compared and gated with --summary-md. Each Markdown file is rendered by a CommonMark
renderer that passes raw HTML through (markdown-it-py, tables on) and the result parsed: only the tags
Markdown itself makes may appear, no event-handler attribute, and the hostile text is still there
as visible text.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from test_bad_inputs import make_run

markdown_it = pytest.importorskip("markdown_it")

PAYLOAD = "<img src=x onerror=alert(1)>"
HOSTILE_SUITE = f"""\
name: tiny
version: "1"
images_per_prompt: 2
seeds: {{kind: range, start: 0}}
slots:
  color: [red, blue]
  shape: [circle, square]
  tag: ["<b onmouseover=alert(3)>x</b>", "<script>alert(2)</script>"]
templates:
  - template: "a drawing of a {{color}} {{shape}} {{tag}}"
    category: "{PAYLOAD}"
    expect: {{objects: [{{shape: "{{shape}}", color: "{{color}}"}}], count: 1}}
  - template: "a {{color}} {{shape}} <!-- c --> <?php x ?> </p>"
    category: "<svg/onload=alert(4)>"
    expect: {{objects: [{{shape: "{{shape}}", color: "{{color}}"}}], count: 1}}
"""

MARKDOWN_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "ul", "ol",
                 "li", "code", "em", "strong", "blockquote", "hr", "br", "pre", "a"}


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.comments, self.text = set(), [], 0, []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += [k for k, _ in attrs]

    def handle_comment(self, data):
        self.comments += 1

    def handle_pi(self, data):
        self.comments += 1

    def handle_data(self, data):
        self.text.append(data)


def rendered(md: str) -> Tags:
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    t = Tags()
    t.feed(html)
    return t


def assert_no_raw_html(md: str, where: str) -> None:
    t = rendered(md)
    assert t.tags <= MARKDOWN_TAGS, (where, t.tags - MARKDOWN_TAGS)
    assert not [a for a in t.attrs if a.lower().startswith("on")], (where, t.attrs)
    assert t.comments == 0, where


def test_the_renderer_would_pass_raw_html_through():
    """The check can fail: unescaped, the payload is an <img> with an onerror handler."""
    t = rendered(f"- category {PAYLOAD}\n")
    assert "img" in t.tags and "onerror" in t.attrs


def test_report_compare_and_gate_summary_carry_no_raw_html(tmp_path):
    a = make_run(tmp_path / "a", HOSTILE_SUITE)
    b = make_run(tmp_path / "b", HOSTILE_SUITE, images_per_prompt=1)
    run = CliRunner()
    for r in (a, b):
        res = run.invoke(main, ["score", str(r), "--metrics", "skills", "--reps", "50", "--no-progress", "--no-cache"])
        assert res.exit_code == 0, res.output
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: \"<img src=y onerror=alert(5)>\"\n    rule: skills >= 0\n"
                     "  - skills[category=<svg/onload=alert(4)>] >= 0\n")
    summary = tmp_path / "summary.md"
    g = run.invoke(main, ["gate", str(a), "--rules", str(rules), "--summary-md", str(summary)])
    assert g.exit_code in (0, 1), g.output
    assert run.invoke(main, ["report", str(a), "--out", str(tmp_path / "rep"), "--format", "md"]).exit_code == 0
    c = run.invoke(main, ["compare", str(a), str(b), "--out", str(tmp_path / "cmp"), "--n-boot", "100"])
    assert c.exit_code == 0, c.output
    docs = {"report.md": (tmp_path / "rep" / "report.md").read_text(),
            "compare.md": (tmp_path / "cmp" / "compare.md").read_text(),
            "gate summary": summary.read_text()}
    for where, md in docs.items():
        assert_no_raw_html(md, where)
    # the user text is still shown, as text
    report_text = "".join(rendered(docs["report.md"]).text)
    assert PAYLOAD in report_text and "<svg/onload=alert(4)>" in report_text
    assert "<img src=y onerror=alert(5)>" in "".join(rendered(docs["gate summary"]).text)
