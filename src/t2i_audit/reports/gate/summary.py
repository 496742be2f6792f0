"""A short Markdown verdict of a gate result, for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment.

``summary_markdown(result)`` gives: a heading with PASS/FAIL and the count of failed checks, one line
naming the run, the baseline and the rules file, a table of the checks (failed first; each with its
value, 95% interval and n, and for baseline rules the difference and its interval at the level used),
then the difference-interval methods and any warnings. Deterministic for a given result: no time
stamps, no absolute paths (the rules file is named by its base name).
"""

from __future__ import annotations

from pathlib import PurePath

from t2i_audit.reports.gate.run import Check, GateResult
from t2i_audit.reports.md_safe import no_raw_html, opens_html
from t2i_audit.reports.tables import fmt_ci, fmt_num

MAX_ROWS = 40


def _cell(text: str) -> str:
    """Table-safe Markdown: pipes escaped, line breaks folded."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text) -> str:
    """A code span, or escaped plain text where the text could open a tag or holds a backtick (inside a
    code span the escape would show literally, and a backtick would end the span)."""
    s = str(text)
    if "`" in s or opens_html(s):
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "\\`")
    return f"`{s}`"


def _row(c: Check) -> str:
    value = f"{fmt_num(c.value)} {fmt_ci(c.ci_low, c.ci_high)}"
    if c.diff is None:
        diff = "–"
    else:
        level = f" ({(c.level or 0) * 100:.4g}% CI)" if c.level and abs(c.level - 0.95) > 1e-9 else ""
        diff = f"{fmt_num(c.diff)} {fmt_ci(c.diff_ci_low, c.diff_ci_high)}{level}"
    base = "–" if c.baseline is None else fmt_num(c.baseline)
    mark = {"pass": "✅ pass", "fail": "❌ **fail**", "inconclusive": "⚠️ **inconclusive**"}[c.verdict]
    need = f"; ≈ {c.images_needed} images per group would decide it" if c.images_needed else ""
    cells = (mark, _code(c.name), _code(c.key), value, str(c.n), base, diff, c.threshold_text, c.judged_on + need)
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def summary_markdown(result: GateResult) -> str:
    """The Markdown verdict (ends with a newline)."""
    failed = [c for c in result.checks if c.verdict == "fail"]
    unsure = [c for c in result.checks if c.inconclusive]
    n = len(result.checks)
    head = {"pass": "✅ PASS", "fail": f"❌ FAIL ({len(failed)} of {n} checks)",
            "inconclusive": f"⚠️ INCONCLUSIVE ({len(unsure)} of {n} checks: the run is too small to tell)"}[result.verdict]
    if result.verdict != "fail" and not result.passed:
        head = f"❌ FAIL (--inconclusive fail: {len(unsure)} of {n} checks inconclusive)"
    lines = [f"### t2i-audit gate: {head}", ""]
    where = f"Run `{result.run_id}`"
    if result.baseline_run_id:
        where += f" vs baseline `{result.baseline_run_id}`"
    rules = PurePath(result.rules_file).name if result.rules_file else "rules"
    lines += [
        f"{where}; rules `{rules}`; {n} checks; intervals at {result.confidence * 100:.4g}% "
        "(value: point estimate [CI]; n: images or prompts behind it).",
        "",
    ]
    if n:
        lines += [
            "| verdict | rule | key | value [95% CI] | n | baseline | run − baseline [CI] | required | "
            "judged on |",
            "|---|---|---|---|---:|---|---|---|---|",
        ]
        ordered = failed + unsure + [c for c in result.checks if c.passed]
        lines += [_row(c) for c in ordered[:MAX_ROWS]]
        if len(ordered) > MAX_ROWS:
            lines.append(f"\n… and {len(ordered) - MAX_ROWS} more passing checks (see gate.json).")
        lines.append("")
    methods = list(dict.fromkeys(c.method for c in result.checks if c.method))
    lines += [f"- difference interval: {_cell(m)}" for m in methods]
    lines += [f"- ⚠️ warning: {_cell(w)}" for w in result.warnings]
    lines += [f"- drift allowed (--allow-drift): {_cell(d)}" for d in result.drift]
    lines += [f"- environment differs: {_cell(d)}" for d in result.runs_drift]
    return no_raw_html("\n".join(lines).rstrip("\n") + "\n")
