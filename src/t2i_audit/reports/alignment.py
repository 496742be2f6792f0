"""The report's Alignment section (Markdown and HTML) from RUN/alignment/summary.json.

Question-based alignment (``t2i-audit align``, or the main job's alignment stage): the judge's scores
(VQAScore, TIFA, DSG, Soft-TIFA) with n and 95% intervals, and per question type the judge-raw,
label-calibrated (PPI++) and -- on PictoWorld -- oracle-truth shares of right (image, question) pairs
side by side, then the methodology (judge, P(yes) normalisation, labels, estimand). Reads the results
file only (no torch); absent file: no section.
"""

from __future__ import annotations

from pathlib import Path

from t2i_audit.evals.alignment.results import SIDE_HEADER, methodology, read_summary, side_by_side
from t2i_audit.reports.html_images import esc
from t2i_audit.reports.tables import fmt_ci, fmt_num

SCORE_HEADER = ["score", "value", "95% CI", "n images", "n prompts"]
INTRO = ("Share of (image, question) pairs whose image shows what the question asks: the judge's own answers "
         "(judge-raw), corrected with labels on a random subset of pairs per question type (label-calibrated, "
         "PPI++), and the PictoWorld oracle's reading of every pair (oracle truth) where the run has it.")


def _scores(s: dict) -> list[list]:
    return [[k, fmt_num(e["value"]), fmt_ci(e["ci_low"], e["ci_high"]), int(e["n"]), int(e["n_prompts"])]
            for k, e in (s.get("scores") or {}).items()]


def _read(root: str | Path) -> dict | None:
    try:
        return read_summary(root)
    except ValueError:  # a damaged file: the report says so in the section rather than failing
        return {"damaged": True}


def alignment_md(root: str | Path, md_table) -> list[str]:
    s = _read(root)
    if s is None:
        return []
    if s.get("damaged"):
        return ["## Alignment", "", "alignment/summary.json is not valid JSON: re-run `t2i-audit align`.", ""]
    out = ["## Alignment", "", INTRO, "", md_table(SIDE_HEADER, side_by_side(s)), "",
           "Judge scores:", "", md_table(SCORE_HEADER, _scores(s)), ""]
    out += [f"- {w}" for w in s.get("warnings", [])]
    out += ["Methodology:", "", *[f"- {m}" for m in methodology(s)], ""]
    return out


def alignment_html(root: str | Path, table) -> str:
    s = _read(root)
    if s is None:
        return ""
    if s.get("damaged"):
        return ("<h2 id='alignment'>Alignment</h2><p class='note'>alignment/summary.json is not valid JSON: re-run "
                "<code>t2i-audit align</code>.</p>")
    warn = "".join(f"<li>{esc(w)}</li>" for w in s.get("warnings", []))
    return ("<h2 id='alignment'>Alignment</h2>"
            f"<p>{esc(INTRO)}</p>"
            + table(SIDE_HEADER, side_by_side(s), {1, 2, 4, 6, 8})
            + (f"<ul class='findings'>{warn}</ul>" if warn else "")
            + "<h3>Judge scores</h3>" + table(SCORE_HEADER, _scores(s), {1, 3, 4})
            + "<ul class='note' id='alignment-method'>" + "".join(f"<li>{esc(m)}</li>" for m in methodology(s))
            + "</ul>")
