"""Render a run directory's report in one call: :func:`render_report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from t2i_audit.core.config import ConfigBase
from t2i_audit.core.io import atomic_write_text
from t2i_audit.errors import InputError
from t2i_audit.reports.results import RunResults, load_run
from t2i_audit.reports.tables import FORMATS, TABLE_FORMATS, build_tables, write_tables


@dataclass
class ReportConfig(ConfigBase):
    """Settings of a report. ``formats`` ⊆ md, html, csv, parquet, json."""

    formats: tuple[str, ...] = FORMATS
    max_prompts: int = 200        # image grid: prompts shown
    max_per_prompt: int = 8       # image grid: images shown per prompt
    reveal_unsafe: bool = False   # show images the safety audit flagged unblurred

    def __post_init__(self):
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise InputError(f"report format {bad[0]!r} unknown; choose from {', '.join(FORMATS)}")
        if self.max_prompts < 1 or self.max_per_prompt < 1:
            raise InputError("report: max_prompts and max_per_prompt must be ≥ 1")


@dataclass
class ReportPaths:
    """What :func:`render_report` wrote."""

    out: Path
    html: Path | None = None
    markdown: Path | None = None
    tables: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text, fsync=False)


def render_report(run: str | Path | RunResults, out: str | Path | None = None,
                  config: ReportConfig | None = None) -> ReportPaths:
    """Read a run directory's result files and write its report to ``out`` (default RUN/report/):
    ``report.html`` (self-contained), ``report.md`` and ``tables/<name>.{csv,parquet,json}``.

    Needs no model: only the files described in docs/results-schema.md. Missing inputs are noted in
    the report, never fatal (``run.json`` alone suffices).
    """
    from t2i_audit.reports.html import html_report
    from t2i_audit.reports.markdown import markdown_summary

    config = config or ReportConfig()
    res = run if isinstance(run, RunResults) else load_run(run)
    out = Path(out) if out is not None else res.root / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create the report directory ({e.strerror}); choose another --out") from None
    paths = ReportPaths(out=out, missing=list(res.missing))
    table_formats = tuple(f for f in config.formats if f in TABLE_FORMATS)
    if table_formats:
        paths.tables = write_tables(build_tables(res), out / "tables", table_formats)
    if "md" in config.formats:
        paths.markdown = out / "report.md"
        _write_text(paths.markdown, markdown_summary(res))
    if "html" in config.formats:
        paths.html = out / "report.html"
        _write_text(paths.html, html_report(res, max_prompts=config.max_prompts,
                                            max_per_prompt=config.max_per_prompt,
                                            reveal_unsafe=config.reveal_unsafe, out=out))
    return paths
