"""`t2i-audit judge validate --human FILE`: a judge's scores (and CLIPScore beside them) against human
ratings: Kendall tau_b and tie-calibrated pairwise accuracy (``evals.alignment.validate``).

Registered in the ``judge`` group (commands/judge.py) when it exists; until then as its own group."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("validate")
@click.option("--human", "human_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV: one row per image, a human rating column and one column per score to evaluate.")
@click.option("--human-column", default="human", show_default=True, help="Column of the human ratings.")
@click.option("--scores", default=None, help="Comma-separated score columns [default: every other numeric "
              "column, e.g. vqascore,clip_score].")
@click.option("--group", "group_column", default=None, help="Compare pairs only within this column's groups "
              "(e.g. prompt_id); intervals then resample groups.")
@click.option("--reps", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the table as JSON.")
def validate(human_file: Path, human_column: str, scores: str | None, group_column: str | None, reps: int, seed: int,
             out: Path | None) -> None:
    """Meta-evaluate score columns against human ratings (pairwise accuracy with ties, Kendall tau_b)."""
    import json

    import pandas as pd

    from t2i_audit.errors import InputError
    from t2i_audit.evals.alignment.validate import meta_evaluate

    if not human_file.is_file():
        raise InputError(f"--human {human_file}: no such file")
    try:
        df = pd.read_csv(human_file)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"--human {human_file}: not a readable CSV ({str(e).splitlines()[0][:120]})") from None
    if human_column not in df.columns:
        raise InputError(f"--human {human_file}: no column {human_column!r} (columns: {', '.join(df.columns)})")
    if group_column and group_column not in df.columns:
        raise InputError(f"--group {group_column!r}: not a column of {human_file}")
    cols = [c.strip() for c in scores.split(",")] if scores else [
        c for c in df.columns if c not in (human_column, group_column) and pd.api.types.is_numeric_dtype(df[c])]
    missing = [c for c in cols if c not in df.columns]
    if missing or not cols:
        raise InputError(f"--scores: column(s) {', '.join(missing) or '(none)'} not in {human_file}")
    h = pd.to_numeric(df[human_column], errors="coerce")
    if h.isna().any():
        line = int(h.isna().to_numpy().nonzero()[0][0]) + 2
        raise InputError(f"{human_file}:{line}: human rating {df[human_column].iloc[line - 2]!r} is not a number")
    data = {c: pd.to_numeric(df[c], errors="coerce").to_numpy() for c in cols}
    rows = meta_evaluate(h.to_numpy(), data, df[group_column].to_numpy() if group_column else None, reps, seed)
    click.echo(f"human ratings: {human_file} ({len(df)} items, column {human_column}"
               f"{', pairs within ' + group_column if group_column else ', all pairs'})")
    for r in rows:
        click.echo(f"{r['score']:<16} tau_b {r['kendall_tau_b']:.4f} [{r['tau_ci_low']:.4f}, {r['tau_ci_high']:.4f}]  "
                   f"pairwise acc {r['pairwise_accuracy']:.4f} [{r['acc_ci_low']:.4f}, {r['acc_ci_high']:.4f}] "
                   f"(tie epsilon {r['epsilon']:.4g})  n={r['n_items']} items, {r['n_pairs']} pairs")
    click.echo(f"method: Kendall tau_b; pairwise accuracy with tie calibration (Deutsch et al. 2023; t2v_metrics); "
               f"{rows[0]['method']}")
    if out:
        out.write_text(json.dumps(rows, indent=2, default=float))
        click.echo(f"wrote {out}")


@click.group("judge")
def judge() -> None:
    """Judges of question-based alignment."""


judge.add_command(validate)
