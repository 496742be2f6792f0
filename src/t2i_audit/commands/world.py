"""`t2i-audit world ...`: render PictoWorld data sets, contact sheets, and check the oracle."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.group()
def world() -> None:
    """PictoWorld: the procedural world with known truth."""


@world.command("render")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Number of images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--size", type=click.IntRange(min=16), default=32, show_default=True)
@click.option("--bias-spec", default="default", show_default=True, help="Bias spec YAML, or 'default'.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--kind", type=click.Choice(["single", "pair", "count", "multi", "person"]), default=None,
              help="Only this scene kind (default: the training mix).")
@long_running(threads=False)
def render_cmd(n: int, out: Path, size: int, bias_spec: str, seed: int, kind: str | None, progress: bool) -> None:
    """Render N scenes to OUT: PNGs, manifest.parquet and card.json."""
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.dataset import render_dataset

    spec = BiasSpec.load(bias_spec)
    kwargs = {"kind": kind} if kind else {}
    c = render_dataset(out, n, seed=seed, size=size, spec=spec, progress=progress, **kwargs)
    click.echo(f"wrote {c['n']} images to {out} (spec {spec.name} {spec.hash}, seed {seed}, size {size})")


@world.command("sheet")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("pictoworld_sheet.png"),
              show_default=True)
@click.option("--n", "n", type=click.IntRange(1, 400), default=48, show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True)
@click.option("--cols", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--bias-spec", default="default", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def sheet_cmd(out: Path, n: int, size: int, cols: int, bias_spec: str, seed: int) -> None:
    """Write a captioned contact sheet of N random scenes."""
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.captions import caption
    from t2i_audit.world.dataset import iter_scenes
    from t2i_audit.world.render import render
    from t2i_audit.world.sheet import contact_sheet

    spec = BiasSpec.load(bias_spec)
    items = [(render(s, size), caption(s)) for _, s in iter_scenes(n, seed, spec)]
    contact_sheet(items, cols=cols).save(out)
    click.echo(f"wrote {out} ({n} scenes, spec {spec.hash})")


@world.command("check")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--corrupt", "corruptions", multiple=True, metavar="SPEC",
              help="Also check under a corruption: noise:SIGMA (0-1), blur:RADIUS, jpeg:QUALITY; "
                   "combine with commas; repeat for several tables.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the corruption noise.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the tables as JSON.")
@long_running(threads=False)
def check_cmd(directory: Path, corruptions: tuple[str, ...], seed: int, json_out: Path | None,
              progress: bool) -> None:
    """Run the oracle over a rendered data set and print per-attribute accuracy and abstention."""
    import json

    from t2i_audit.world.corrupt import parse
    from t2i_audit.world.oracle_check import check_dataset, format_table

    for c in corruptions:
        parse(c)  # fail fast on a malformed spec
    res = check_dataset(directory, list(corruptions), seed=seed, progress=progress)
    for cond, rows in res["tables"].items():
        click.echo(format_table(rows, f"oracle on {res['n_images']} images: {cond}"))
        click.echo("")
    click.echo("accuracy on non-abstained items with 95% Wilson interval; abstain = share 'unknown'")
    if json_out:
        json_out.write_text(json.dumps(res, indent=2) + "\n")
        click.echo(f"wrote {json_out}")


@world.command("stats")
@click.option("--n", "n", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Number of neutral-caption person scenes.")
@click.option("--bias-spec", default="default", show_default=True, help="Bias spec YAML, or 'default'.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tolerance", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Allowed |rendered - spec| in percentage points.")
@click.option("--oracle/--no-oracle", default=False, show_default=True,
              help="Also render each scene and report the oracle's reading of it.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@long_running(threads=False)
def stats_cmd(n: int, bias_spec: str, seed: int, tolerance: float, oracle: bool, json_out: Path | None,
              progress: bool) -> None:
    """Rendered presentation/skin frequencies per profession for neutral captions vs the bias spec."""
    import json

    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.bias_stats import format_stats, neutral_frequencies

    spec = BiasSpec.load(bias_spec)
    res = neutral_frequencies(n, spec, seed=seed, tolerance_pp=tolerance, oracle=oracle, progress=progress)
    click.echo(format_stats(res))
    if json_out:
        json_out.write_text(json.dumps(res, indent=2) + "\n")
        click.echo(f"wrote {json_out}")
