"""`t2i-audit align RUN --judge SPEC`: question-based alignment of a run (thin over evals.alignment.pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("align")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--judge", "judge_spec", required=True, help="oracle, bundled[:CLIP_DIR], openai:URL#MODEL, hf:DIR, "
              "python:MODULE:CALLABLE.")
@click.option("--questions", default=None, help="Question or benchmark file [default: the run's expectations; "
              "whole-prompt VQAScore questions for prompts without one].")
@click.option("--questions-format", default=None, help="tifa, dsg, geneval2, geneval, parti, drawbench, lines, "
              "questions [default: from the file].")
@click.option("--labels", default=None, help="CSV image,question_id,label (yes/no/unsure): PPI++ per question type.")
@click.option("--judge-calibration", default=None, help="JSON {skill: {accuracy, n}}: warn when this run differs.")
@click.option("--judge-cache", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite answer cache [default: RUN/alignment/answers.sqlite]; keyed by image bytes, question, "
              "judge, revision, template and decoding settings.")
@click.option("--no-judge-cache", is_flag=True, help="Ask the judge every question, read and write no cache.")
@click.option("--reps", type=click.IntRange(min=0), default=2000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@long_running()
def align(run: Path, judge_spec: str, questions: str | None, questions_format: str | None, labels: str | None,
          judge_calibration: str | None, judge_cache: Path | None, no_judge_cache: bool, reps: int, seed: int, progress: bool, threads: int | None) -> None:
    """Score RUN's prompt adherence with a judge: writes RUN/alignment/{answers,scores}.parquet, summary.json."""
    from t2i_audit.evals.alignment import calibrate, pipeline
    from t2i_audit.evals.judges.base import load_judge
    from t2i_audit.evals.runs.rundir import load_run

    _, manifest = load_run(run)
    qs = pipeline.run_questions(manifest, questions, questions_format)
    judge = load_judge(judge_spec)
    cache = None if no_judge_cache else (judge_cache or run / "alignment" / "answers.sqlite")
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
    answers, usage = pipeline.answer_run(run, manifest, qs, judge, cache=cache, progress=progress)
    info = {"n_labels": 0}
    if labels:
        answers, unmatched = calibrate.attach_labels(answers, calibrate.read_labels(labels))
        t = answers["truth"]
        info = {"file": str(labels), "n_labels": int((t != calibrate.NOT_LABELLED).sum()),
                "n_unsure": int((t == -1).sum()), "unmatched": unmatched}
    cal = json.loads(Path(judge_calibration).read_text()) if judge_calibration else None
    summary, img = pipeline.summarise(answers, judge, usage, info, reps, seed, cal)
    pipeline.write(run / "alignment", answers, img, summary)
    click.echo(f"judge {judge.spec} (revision {judge.revision}, P(yes) normalisation {judge.normalisation}); "
               f"{summary['n_pairs']} (image, question) pairs, {summary['n_images']} images, {summary['n_prompts']} prompts")
    for name, e in summary["scores"].items():
        click.echo(f"  {name:<13} {e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}] n={e['n']} images, "
                   f"{e['n_prompts']} prompts")
    from t2i_audit.evals.alignment.results import SIDE_HEADER, side_by_side

    click.echo("  per question type, share of pairs right: " + " | ".join(SIDE_HEADER[1:]))
    for r in side_by_side(summary):
        click.echo(f"  {r[0]:<16} n={r[1]:<5} judge-raw {r[2]} {r[3]}  label-calibrated {r[4]} {r[5]} "
                   f"(n={r[6]} labels; judge accuracy on them {r[7]})")
    usage_d = usage if isinstance(usage, dict) else getattr(usage, "__dict__", {})
    for w in [*usage_d.get("warnings", []), *summary.get("warnings", [])]:
        click.echo(f"WARNING: {w}" if not str(w).startswith("WARNING") else w)
    click.echo(f"judge usage: {usage_d.get('requests', 0)} pairs, {usage_d.get('cache_hits', 0)} from the cache, "
               f"{usage_d.get('sent', 0)} sent, {usage_d.get('wall_s', 0):.1f} s"
               + (f"; answer cache {cache}" if cache is not None else "; no answer cache"))
    click.echo(f"estimand: {summary['estimand']}")
    click.echo(f"wrote {run / 'alignment'}")
