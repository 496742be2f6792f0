"""`t2i-audit score RUN`: metrics with 95% intervals for a generation run (thin over evals.scoring)."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("score")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--metrics", default="clip_score,skills", show_default=True,
              help="Comma-separated: clip_score, skills, fd, fd_inf, kid, cmmd.")
@click.option("--reference", default=None, help="Reference set for fd/kid/cmmd: an image folder, a run or data "
              "set directory, or 'world' (PictoWorld renders).")
@click.option("--reference-n", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Images in a 'world' reference set.")
@click.option("--reference-seed", type=int, default=0, show_default=True)
@click.option("--features", default="bundled-clip", show_default=True,
              help="Extractor for fd/fd_inf/kid: bundled-clip[:DIR], open_clip:ARCH:WEIGHTS, hf-clip:DIR, "
              "inception:WEIGHTS.")
@click.option("--clip", "clip_spec", default="bundled-clip", show_default=True,
              help="Text-image extractor for clip_score and cmmd.")
@click.option("--reps", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Bootstrap replicates for means and proportions.")
@click.option("--dist-reps", type=click.IntRange(min=0), default=20, show_default=True,
              help="Bootstrap replicates for distribution metrics.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every bootstrap and subset draw.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per embedding forward pass [default: 64 on CPU, 256 on CUDA].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
@click.option("--cache-dir", default=None, help="Embedding cache folder (default $T2I_AUDIT_CACHE or "
              "~/.cache/t2i-audit/embeddings).")
@long_running()
def score(run: Path, metrics: str, reference: str | None, reference_n: int, reference_seed: int, features: str,
          clip_spec: str, reps: int, dist_reps: int, seed: int, kid_subsets: int, kid_subset_size: int,
          batch_size: int | None, no_cache: bool, cache_dir: str | None, threads: int | None, progress: bool) -> None:
    """Score RUN: writes RUN/scores/{items,aggregates}.parquet and results.json, prints the table.

    Under `accelerate launch` or `torchrun` each process embeds and judges its share of the images.
    """
    import t2i_audit.evals.distributed.launch as distributed
    from t2i_audit.evals.scoring.score import ScoreConfig, format_table, parse_metrics, score_run

    batch_size = batch_size or distributed.device_settings().embed_batch
    cfg = ScoreConfig(metrics=parse_metrics(metrics), features=features, clip=clip_spec, reference=reference,
                      reference_n=reference_n, reference_seed=reference_seed, reps=reps, dist_reps=dist_reps,
                      seed=seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, batch_size=batch_size,
                      cache=not no_cache, cache_dir=cache_dir, progress=progress)
    res = score_run(run, cfg)
    if not distributed.current().is_main:
        return
    click.echo(format_table(res["aggregates_df"]))
    click.echo("")
    for role, ident in res["evaluators"].items():
        click.echo(f"evaluator {role}: {ident}")
    if res["reference"]:
        r = res["reference"]
        click.echo(f"reference: {r['description']} (hash {r['hash']})")
    click.echo("stage timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in res["timings_s"].items()))
    c = res["cache"]
    click.echo(f"cache: {c['hits']} hits, {c['misses']} misses, {c['forward_passes']} forward passes"
               + ("" if cfg.cache else " (cache disabled)"))
    click.echo(f"wrote {run / 'scores'}")
