"""`t2i-audit world ...`: render PictoWorld data sets, contact sheets, and check the oracle."""

from __future__ import annotations

from pathlib import Path

import click


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
def render_cmd(n: int, out: Path, size: int, bias_spec: str, seed: int, kind: str | None) -> None:
    """Render N scenes to OUT: PNGs, manifest.parquet and card.json."""
    from ..world.bias import BiasSpec
    from ..world.dataset import render_dataset

    spec = BiasSpec.load(bias_spec)
    kwargs = {"kind": kind} if kind else {}
    c = render_dataset(out, n, seed=seed, size=size, spec=spec, **kwargs)
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
    from ..world.bias import BiasSpec
    from ..world.captions import caption
    from ..world.dataset import iter_scenes
    from ..world.render import render
    from ..world.sheet import contact_sheet

    spec = BiasSpec.load(bias_spec)
    items = [(render(s, size), caption(s)) for _, s in iter_scenes(n, seed, spec)]
    contact_sheet(items, cols=cols).save(out)
    click.echo(f"wrote {out} ({n} scenes, spec {spec.hash})")
