"""`t2i-audit compare RUN_A RUN_B`: paired differences per metric and bias shifts."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: RUN_B/compare-<A run id>).")
@click.option("--n-boot", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap replicates.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@long_running(threads=False)
def compare(run_a: Path, run_b: Path, out: Path | None, n_boot: int, seed: int, progress: bool) -> None:
    """Compare two scored runs pair by pair (prompt, seed); differences are B − A."""
    from t2i_audit.reports.compare import CompareWarning, compare_runs, write_compare
    from t2i_audit.reports.tables import fmt_ci, fmt_num

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompareWarning)
        c = compare_runs(run_a, run_b, n_boot=n_boot, seed=seed)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    out = out or Path(run_b) / f"compare-{c.run_a}"
    written = write_compare(c, out)
    click.echo(f"{c.n_pairs} pairs; difference = {c.run_b} − {c.run_a}")
    for r in c.metrics[c.metrics["group"] == "overall"].itertuples():
        click.echo(f"  {r.metric:<16} {fmt_num(r.difference):>8} {fmt_ci(r.ci_low, r.ci_high):<20} "
                   f"p={fmt_num(r.p_value)} ({r.test})")
    b = c.bias_shifts
    if len(b):
        big = b[(b["ci_low"] > 0) | (b["ci_high"] < 0)].reindex(b["shift"].abs().sort_values(ascending=False).index)
        big = big[(big["ci_low"] > 0) | (big["ci_high"] < 0)]
        click.echo(f"bias shifts (headline basis): {len(big)} of {len(b)} cells with an interval excluding 0"
                   + (":" if len(big) else ""))
        for r in big.head(10).itertuples():
            click.echo(f"  {r.probe} {r.attribute}/{r.group}/{r.cls} ({r.section}, {r.basis}): "
                       f"{fmt_num(r.shift)} {fmt_ci(r.ci_low, r.ci_high)}")
    click.echo(f"wrote {len(written)} files to {out}")
