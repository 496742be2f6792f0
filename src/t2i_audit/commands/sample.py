"""`t2i-audit sample`: generate a suite's images into a resumable run directory."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running


def parse_params(items: tuple[str, ...]) -> dict:
    """``key=value`` pairs; values are read as YAML scalars (3 -> int, 2.5 -> float, true -> bool)."""
    import yaml

    from t2i_audit.errors import InputError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param {item!r}: expected key=value (e.g. --param num_inference_steps=20)")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


@click.command("sample")
@click.option("--suite", required=True,
              help="Built-in suite name, suite YAML path, or a red-team CSV (I2P format).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory.")
@click.option("--generator", default="bundled", show_default=True,
              help="bundled | checkpoint:DIR | diffusers:DIR | folder:DIR | python:module:callable")
@click.option("--images-per-prompt", type=click.IntRange(min=1), default=None,
              help="Override the suite's images per prompt (weights still multiply).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N prompts, taken round-robin across categories.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Prompts per generator call [default: 16 on CPU, 128 on CUDA].")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Sampler parameter passed to the generator (repeatable).")
@click.option("--skip-missing", is_flag=True,
              help="folder: sample the prompts the folder covers instead of refusing.")
@click.option("--allow-outside", is_flag=True,
              help="folder: accept CSV paths (or symlinks) that lead outside the folder.")
@click.option("--seed-offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add N to every seed: an A/A run of the same checkpoint for `t2i-audit gate calibrate`.")
@click.option("--allow-large", is_flag=True,
              help="Plan more than 1,000,000 images (the suite size limit, docs/reliability.md).")
@click.option("--perturb", "perturb", multiple=True, metavar="NAME[:ARG]",
              help="Sample perturbed prompts instead (repeatable): typo:RATE, swap:presentation|skin|gender|a=b, "
                   "synonym:MAP, dialect:MAP, case:upper|lower|title, punct:strip|period (docs/robustness.md).")
@click.option("--perturb-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random perturbations (typos).")
@long_running()
def sample(suite: str, out: Path, generator: str, images_per_prompt: int | None, limit: int | None,
           batch_size: int | None, threads: int | None, params: tuple[str, ...], skip_missing: bool,
           progress: bool, perturb: tuple[str, ...], perturb_seed: int, allow_outside: bool = False,
           allow_large: bool = False, seed_offset: int = 0) -> None:
    """Sample SUITE with a generator into OUT (run.json, manifest.parquet, images/).

    Re-running the same command resumes: images whose sha256 checks out are kept. Under
    `accelerate launch` or `torchrun` each process draws its share and rank 0 merges.
    """
    import t2i_audit.evals.distributed.launch as distributed
    from t2i_audit.evals.runs.sampling import SampleConfig
    from t2i_audit.evals.runs.sampling import sample as run_sample

    cfg = SampleConfig(suite=suite, out=str(out), generator=generator, images_per_prompt=images_per_prompt,
                       limit=limit, batch_size=batch_size, params=parse_params(params),
                       skip_missing=skip_missing, progress=progress, allow_large=allow_large,
                       allow_outside=allow_outside, seed_offset=seed_offset)
    derived = None
    if perturb:
        from t2i_audit.evals.suites.loader import load_suite
        from t2i_audit.evals.suites.perturb_suite import perturb_suite, write_prompt_table

        derived = perturb_suite(load_suite(suite), perturb, perturb_seed)
    r = run_sample(cfg, suite=derived)
    dist = distributed.current()
    if not dist.is_main:
        return
    if derived is not None:
        write_prompt_table(out, derived)
        for note in derived.notes():
            click.echo(note, err=True)
    if r.stale_lock is not None:
        click.echo(f"recovered a stale lock (pid {r.stale_lock.get('pid')} is gone)", err=True)
    rate = r.n_generated / r.seconds if r.seconds > 0 else 0.0
    click.echo(f"{r.run_dir}: {r.n_images} images ({r.n_generated} generated, {r.n_reused} reused, "
               f"{r.n_adopted} adopted, {r.n_regenerated} regenerated after a bad hash"
               + (f", {r.n_missing} missing" if r.n_missing else "")
               + f") in {r.seconds:.1f} s ({rate:.1f} img/s, {dist.describe()}); run {r.run_id}")
