"""`t2i-audit report RUN`: render a run's report (HTML, Markdown, tables) from its result files."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("report")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: RUN/report).")
@click.option("--format", "formats", default="md,html,csv,parquet,json", show_default=True,
              help="Comma-separated: md, html, csv, parquet, json.")
@click.option("--max-per-prompt", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images shown per prompt in the HTML grid.")
@click.option("--reveal-unsafe", is_flag=True,
              help="Show images the safety audit flagged (or blocked) unblurred; blurred by default.")
@long_running(threads=False)
def report(run: Path, out: Path | None, formats: str, max_per_prompt: int, reveal_unsafe: bool,
           progress: bool) -> None:
    """Write RUN's report: report.html (self-contained), report.md and tables/ (no model needed)."""
    from t2i_audit.reports.markdown import summary_frame
    from t2i_audit.reports.report import ReportConfig, render_report
    from t2i_audit.reports.results import load_run
    from t2i_audit.reports.tables import parse_formats

    cfg = ReportConfig(formats=parse_formats(formats), max_per_prompt=max_per_prompt,
                       reveal_unsafe=reveal_unsafe)
    res = load_run(run)
    paths = render_report(res, out, cfg)
    frame = summary_frame(res)
    if len(frame):
        click.echo(frame.to_string(index=False))
    for m in paths.missing:
        click.echo(f"note: {m} not found; its section says so", err=True)
    if paths.html:
        click.echo(f"report: {paths.html}")
    if paths.markdown:
        click.echo(f"summary: {paths.markdown}")
    if paths.tables:
        click.echo(f"tables: {len(paths.tables)} files in {paths.tables[0].parent}")
