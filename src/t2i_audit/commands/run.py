"""`t2i-audit run`: the main job (sample -> score -> bias audit -> report -> gate)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from t2i_audit.commands.audit import ESTIMAND_OPTION
from t2i_audit.commands.options import long_running


@click.command("run")
@click.option("--checkpoint", default="bundled", show_default=True,
              help="'bundled', a checkpoint directory, or a generator spec (diffusers:DIR, folder:DIR, ...).")
@click.option("--suite", default="pictoworld-audit", show_default=True, help="Built-in suite name or YAML file.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("t2i-audit-out"),
              show_default=True)
@click.option("--rules", type=click.Path(dir_okay=False), default=None, help="Gate rules YAML; sets the exit code.")
@click.option("--baseline", type=click.Path(file_okay=False), default=None, help="Baseline run for relative rules.")
@click.option("--images-per-prompt", type=click.IntRange(min=1), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N prompts.")
@click.option("--metrics", default="clip_score,skills", show_default=True)
@click.option("--no-bias", is_flag=True, help="Skip the bias audit.")
@click.option("--no-diversity", is_flag=True, help="Skip the diversity audit.")
@click.option("--no-alignment", is_flag=True, help="Skip question-based alignment (PictoWorld runs: the bundled "
              "judge, oracle labels and oracle truth).")
@click.option("--oracle-labels", type=click.IntRange(min=0), default=150, show_default=True,
              help="PictoWorld runs: images per profession labelled by the oracle for label-calibrated bias (0: off).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Sampler parameter (repeatable).")
@ESTIMAND_OPTION
@long_running(apply_threads=False)  # the job applies and records --threads
def run(checkpoint, suite, out, rules, baseline, images_per_prompt, limit, metrics, no_bias, no_diversity,
        no_alignment, oracle_labels, params, estimand, threads,
        progress) -> None:
    """Audit a checkpoint end to end and write the report. Re-running resumes."""
    from t2i_audit.commands.sample import parse_params
    from t2i_audit.evals.scoring.score import parse_metrics
    from t2i_audit.job import JobConfig, run_job

    cfg = JobConfig(checkpoint=checkpoint, suite=suite, out=str(out), rules=rules, baseline=baseline,
                    images_per_prompt=images_per_prompt, limit=limit, params=parse_params(params),
                    metrics=parse_metrics(metrics), bias=not no_bias, diversity=not no_diversity,
                    alignment=not no_alignment, oracle_labels=oracle_labels, threads=threads, progress=progress,
                    estimand=estimand)
    res = run_job(cfg, echo=click.echo)
    click.echo(res.summary)
    click.echo(f"wall time: {res.stage_seconds['total'] / 60:.1f} min")
    if res.gate_exit is not None:
        sys.exit(res.gate_exit)
