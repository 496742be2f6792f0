"""`t2i-audit judge`: the judges behind question-based alignment (docs/judges.md).

`judge ask --judge SPEC IMAGE QUESTION...` asks one image one or more yes/no questions and prints
P(yes), the answer text and whether P(yes) is soft (token probabilities) — a debugging aid for a
judge spec, a server or a prompt. `judge validate` (commands/judge_validate.py) meta-evaluates
scores against human ratings.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from t2i_audit.commands.judge_validate import validate


def parse_options(pairs: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; values parsed as JSON when they are (numbers, true/false), else strings."""
    from t2i_audit.errors import InputError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--judge-option {pair!r}: write KEY=VALUE, e.g. normalisation=vqascore")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def judge_options(judge_option: tuple[str, ...], concurrency: int | None, timeout: float | None) -> dict:
    opts = parse_options(judge_option)
    if concurrency is not None:
        opts["concurrency"] = concurrency
    if timeout is not None:
        opts["timeout_s"] = timeout
    return opts


@click.group("judge")
def judge() -> None:
    """Judges: VLMs, servers, python callables, the PictoWorld oracle and bundled judge answering yes/no."""


@judge.command("ask")
@click.option("--judge", "judge_spec", required=True, help="openai:URL#MODEL, hf:DIR or hf:ORG/NAME[@REV], "
              "python:MODULE:CALLABLE, oracle, bundled.")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("questions", nargs=-1, required=True)
@click.option("--judge-option", "judge_option", multiple=True, metavar="KEY=VALUE",
              help="A judge option, repeatable (e.g. normalisation=vqascore, batch_size=16, max_retries=2).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Concurrent requests (openai: judges) [default: 8].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per request before a retry (openai: judges) [default: 60].")
@click.option("--judge-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite answer cache to read and fill [default: none].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads (hf: judges).")
@click.option("--progress/--no-progress", default=False, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print answers and usage as JSON.")
def ask(judge_spec: str, image: Path, questions: tuple[str, ...], judge_option: tuple[str, ...],
        concurrency: int | None, timeout: float | None, judge_cache: Path | None, threads: int | None,
        progress: bool, as_json: bool) -> None:
    """Ask IMAGE each QUESTION; print P(yes), the answer text and whether P(yes) is soft."""
    import hashlib

    from t2i_audit.errors import InputError
    from t2i_audit.evals.judges.base import JudgeRequest, load_judge
    from t2i_audit.evals.judges.runner import judge_requests

    if threads is not None:
        from t2i_audit.core.threads import set_threads

        set_threads(threads)
    if not image.is_file():
        raise InputError(f"{image}: no such image file")
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    j = load_judge(judge_spec, **judge_options(judge_option, concurrency, timeout))
    reqs = [JudgeRequest(image, sha, q) for q in questions]
    answers, usage = judge_requests(j, reqs, cache=judge_cache, progress=progress)
    if as_json:
        click.echo(json.dumps({"answers": [{"question": q, "p_yes": a.p_yes, "text": a.text, "soft": a.soft}
                                           for q, a in zip(questions, answers)], "usage": usage.to_dict()}))
        return
    click.echo(f"judge {j.spec} (revision {j.revision or 'unknown'}, P(yes) normalisation {j.normalisation})")
    for q, a in zip(questions, answers):
        click.echo(f"P(yes) {a.p_yes:.4f}  text {a.text!r}  soft {str(a.soft).lower()}  {q}")
    tokens = (f", {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
              if usage.prompt_tokens is not None else "")
    click.echo(f"usage: {usage.requests} questions, {usage.cache_hits} from the cache, {usage.sent} sent, "
               f"{usage.retries} retries{tokens}, {usage.wall_s:.2f} s; soft scores available: "
               f"{str(usage.soft_scores_available).lower()}")
    for w in usage.warnings:
        click.echo(f"warning: {w}", err=True)


judge.add_command(validate)
