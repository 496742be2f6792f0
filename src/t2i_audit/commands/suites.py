"""`t2i-audit suites ...`: list, show and validate prompt suites."""

from __future__ import annotations

import json

import click


@click.group()
def suites() -> None:
    """Prompt suites: YAML data expanded into prompts with expectations."""


@suites.command("ls")
def ls_cmd() -> None:
    """List the built-in suites with their size and content hash."""
    from t2i_audit.evals.suites.loader import builtin_names, load_suite

    click.echo(f"{'name':<20} {'version':>7} {'prompts':>8} {'images':>7}  {'hash':<16}  categories")
    for name in builtin_names():
        s = load_suite(name)
        click.echo(f"{s.name:<20} {s.version:>7} {len(s.prompts):>8} {s.n_images():>7}  {s.hash:<16}  "
                   f"{', '.join(s.categories)}")


def _show(s, n: int, as_json: bool) -> None:
    summary = s.summary()
    if as_json:
        summary["prompts_sample"] = [p.to_dict() for p in s.prompts[:n]]
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{s.name} v{s.version}  hash {s.hash}  ({s.source})")
    if s.description:
        click.echo(f"  {s.description}")
    click.echo(f"  seeds: {json.dumps(s.seed_policy.to_dict())}; images per prompt (default): "
               f"{s.images_per_prompt}; reference: {s.reference or '-'}")
    if s.includes:
        click.echo(f"  includes: {', '.join(s.includes)}")
    click.echo(f"  {len(s.prompts)} prompts, {s.n_images()} images")
    for cat, c in summary["categories"].items():
        click.echo(f"    {cat:<16} {c['prompts']:>5} prompts {c['images']:>6} images")
    if n:
        click.echo(f"  first {min(n, len(s.prompts))} prompts:")
        for p in s.prompts[:n]:
            exp = f"  expect={json.dumps(p.expect)}" if p.expect else ""
            click.echo(f"    {p.prompt_id}  [{p.category}] x{p.n_images()}  {p.text!r}{exp}")


@suites.command("show")
@click.argument("name")
@click.option("--n", "n", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many prompts to print.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(name: str, n: int, as_json: bool) -> None:
    """Show a suite (built-in NAME or a YAML path): categories, sizes, hash and prompts."""
    from t2i_audit.evals.suites.loader import load_suite

    _show(load_suite(name), n, as_json)


@suites.command("validate")
@click.argument("file")
@click.option("--allow-large", is_flag=True, help="Accept a suite over the 1,000,000-image limit (say so only).")
def validate_cmd(file: str, allow_large: bool) -> None:
    """Validate a suite file; prints its size and hash, or the first error with its line."""
    from t2i_audit.evals.suites.loader import check_suite_size, load_suite, suite_size_problem

    s = load_suite(file)
    check_suite_size(s, allow_large=allow_large)
    over = suite_size_problem(s)
    click.echo(f"ok: {s.name} v{s.version}: {len(s.prompts)} prompts, {s.n_images()} images, "
               f"{len(s.categories)} categories, hash {s.hash}"
               + ("; over the image limit: `sample` needs --allow-large" if over else ""))


@suites.command("plan")
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="CSV file to write.")
@click.option("--images-per-prompt", type=click.IntRange(min=1), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=None)
@click.option("--allow-large", is_flag=True, help="Plan more than 1,000,000 images.")
def plan_cmd(name: str, out: str, images_per_prompt: int | None, limit: int | None, allow_large: bool) -> None:
    """Write the (prompt, seed) pairs a run would draw as a CSV: prompt_id, category, prompt, seed,
    path. Render them elsewhere (a closed model, an API), save each image at its path next to the
    CSV, and sample with --generator folder:DIR."""
    import csv
    from pathlib import Path

    from t2i_audit.core.io import atomic_write_text
    from t2i_audit.evals.runs.sampling import image_id
    from t2i_audit.evals.suites.loader import check_suite_size, load_suite

    s = load_suite(name)
    check_suite_size(s, images_per_prompt, limit, allow_large=allow_large)
    plan = s.plan(images_per_prompt, limit)
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["prompt_id", "category", "prompt", "seed", "path"])
    for p, seed in plan:
        w.writerow([p.prompt_id, p.category, p.text, seed, f"images/{image_id(p.prompt_id, seed)}.png"])
    atomic_write_text(Path(out), buf.getvalue())
    click.echo(f"wrote {out}: {len(plan)} images of {s.name} ({s.hash})")
