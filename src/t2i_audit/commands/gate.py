"""`t2i-audit gate RUN --rules gate.yaml`: pass/fail a run for CI (exit 0 pass, 1 fail, 2 input error)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("gate")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Rules YAML (see docs/reports.md for the grammar).")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Baseline run for relative rules.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write JUnit XML here (one testcase per rule and group).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the gate result JSON here (always also saved as RUN/gate.json).")
@click.option("--summary-md", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a short Markdown verdict here (for $GITHUB_STEP_SUMMARY or a PR comment).")
@long_running(threads=False)
def gate(run: Path, rules: Path, baseline: Path | None, junit: Path | None, json_out: Path | None,
         summary_md: Path | None, progress: bool) -> None:
    """Check RUN's results against rules; exit 0 if every rule passes, 1 if one fails, 2 on bad input."""
    from t2i_audit.errors import InputError
    from t2i_audit.reports.gate.run import error_junit, gate_run_dir, write_text
    from t2i_audit.reports.gate.summary import summary_markdown

    try:
        result = gate_run_dir(run, rules, baseline)
    except InputError as e:  # exit 2 with one line; a requested JUnit file records the reason too
        if junit:
            write_text(junit, error_junit(run, str(e)))
        raise
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(result.table())
    if junit:
        write_text(junit, result.to_junit())
    if json_out:
        write_text(json_out, result.to_json())
    if summary_md:
        write_text(summary_md, summary_markdown(result))
    sys.exit(result.exit_code)
