"""`t2i-audit track RUN... --out DIR`: a trend report across checkpoints of one suite."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("track")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for track.html, track.md, track.csv and track.parquet.")
@click.option("--x", "x", type=click.Choice(["step", "created", "name"]), default="step", show_default=True,
              help="Order checkpoints by training step, run.json's time, or directory name.")
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Track the keys these gate rules read (default: every ungrouped metric the runs share).")
@click.option("--allow-drift", "allow_drift", multiple=True, metavar="KEY",
              help="Track although runs differ in this fingerprint key. Repeatable.")
def track(runs: tuple[Path, ...], out: Path, x: str, rules: Path | None, allow_drift: tuple[str, ...]) -> None:
    """Trend of each metric across checkpoint RUNS: interval bands, best checkpoint, regressions vs the
    previous and the best checkpoint (the gate's difference intervals)."""
    from t2i_audit.reports.track import track_runs

    df, page = track_runs(list(runs), out, x, rules, allow_drift)
    click.echo(f"{page}: {df['run'].nunique()} checkpoints × {df['key'].nunique()} metrics")
    for key, sub in df.groupby("key", sort=False):
        best = sub[sub["best"]]
        flags = sub[sub["regression_vs_prev"] | sub["regression_vs_best"]]
        line = f"  {key}: best {best['run_id'].iloc[0] if len(best) else '–'}"
        if len(flags):
            line += "; REGRESSION at " + ", ".join(f"{r.run_id} ({r.x})" for r in flags.itertuples())
        click.echo(line)
