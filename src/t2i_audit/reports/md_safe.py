"""The last guard on every Markdown file t2i-audit writes (report.md, compare.md, the gate summary).

Markdown renderers that allow HTML (GitHub comments, CI step summaries, many static-site tools) pass
raw tags through. Suite categories, prompts, red-team categories, rule names and findings are user
text and reach Markdown in tables, lists, headings and code spans alike. :func:`no_raw_html` escapes
every ``<`` that CommonMark could read as the start of raw HTML or an autolink (``<`` followed by a
letter, ``/``, ``!`` or ``?``), wherever it stands, so that no piece of user text can become a tag;
``<`` before a digit or a space ("p < 0.05") stays as it is. Inside a code span the escape shows as
``&lt;``, which only hostile text needs.
"""

from __future__ import annotations

import re

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def no_raw_html(markdown: str) -> str:
    """``markdown`` with every possible raw-HTML opening ``<`` written as ``&lt;``."""
    return _TAG_START.sub("&lt;", markdown)


def opens_html(text: str) -> bool:
    """Whether ``text`` holds a ``<`` that CommonMark could read as raw HTML or an autolink."""
    return bool(_TAG_START.search(text))


def md_escape(text) -> str:
    """Escape text for a Markdown table cell (pipes, HTML, newlines)."""
    s = str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
