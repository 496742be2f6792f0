"""Alignment of a run: questions -> judge answers -> scores -> label calibration -> RUN/alignment/.

Writes ``answers.parquet`` (one row per (image, question): P(yes), text, truth label if any),
``scores.parquet`` (per image) and ``summary.json`` (overall scores and per-skill tables, each with
n, 95% interval, estimand and method; the judge's spec, revision and normalisation; label counts;
usage). Questions come from the run's own expectations (PictoWorld suites) or a question file
(``formats.load_questions``), matched to the run's prompts by prompt id, else by prompt text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.errors import InputError
from t2i_audit.evals.alignment import calibrate, scores
from t2i_audit.evals.alignment.formats import load_questions
from t2i_audit.evals.alignment.questions import questions_from_expect, whole_prompt_question


def run_questions(manifest: pd.DataFrame, questions_file: str | None, fmt: str | None = None) -> list:
    """The questions of the run's prompts (from the manifest's expect, or a file)."""
    from t2i_audit.evals.metrics.skills import parse_expect

    prompts = manifest.drop_duplicates("prompt_id")
    if questions_file is None:
        out = []
        for r in prompts.itertuples():
            ex = parse_expect(getattr(r, "expect", None))
            out += questions_from_expect(r.prompt_id, r.text, ex) if ex else [
                whole_prompt_question(r.prompt_id, r.text, "run")]
        return out
    qs = load_questions(questions_file, fmt)
    by_text = dict(zip(prompts["text"], prompts["prompt_id"]))
    ids = set(prompts["prompt_id"])
    mapped = []
    for q in qs:
        pid = q.prompt_id if q.prompt_id in ids else by_text.get(q.prompt)
        if pid is not None:
            mapped.append(q if pid == q.prompt_id else _rebase(q, pid))
    if not mapped:
        raise InputError(f"{questions_file}: none of its {len(qs)} questions matches a prompt of the run "
                         "(by prompt id or exact prompt text)")
    return mapped


def _rebase(q, pid: str):
    from dataclasses import replace

    rid = lambda x: f"{pid}:{x.split(':', 1)[-1]}"  # noqa: E731
    return replace(q, question_id=rid(q.question_id), prompt_id=pid, parents=tuple(rid(p) for p in q.parents))


def pair_requests(run_dir: Path, manifest: pd.DataFrame, questions: list) -> tuple[list[dict], list]:
    """One row (image, question fields) and one JudgeRequest per (image, question) pair of the run."""
    from t2i_audit.evals.judges.base import JudgeRequest

    by_prompt: dict[str, list] = {}
    for q in questions:
        by_prompt.setdefault(q.prompt_id, []).append(q)
    rows, reqs = [], []
    for r in manifest.itertuples():
        path = run_dir / r.path
        for q in by_prompt.get(r.prompt_id, []):
            reqs.append(JudgeRequest(path, r.sha256, q.text, q.spec))
            rows.append({"image_id": r.image_id, "image_path": str(r.path), "prompt_id": r.prompt_id,
                         "question_id": q.question_id, "skill": q.skill, "answer": q.answer,
                         "parents": list(q.parents), "question": q.text})
    if not reqs:
        raise InputError(f"{run_dir}: no (image, question) pairs: the questions match none of the run's images")
    return rows, reqs


def answers_frame(rows: list[dict], answers: list) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["p_yes"] = [a.p_yes for a in answers]
    df["text"] = [a.text for a in answers]
    df["soft"] = [a.soft for a in answers]
    return df


def answer_run(run_dir: Path, manifest: pd.DataFrame, questions: list, judge, cache, progress: bool):
    """answers frame + usage for every (image, question) of the run."""
    from t2i_audit.evals.judges.runner import judge_requests

    rows, reqs = pair_requests(run_dir, manifest, questions)
    answers, usage = judge_requests(judge, reqs, cache=cache, progress=progress)
    return answers_frame(rows, answers), usage


def summarise(answers: pd.DataFrame, judge, usage, labels_info: dict, reps: int, seed: int,
              calibration: dict | None) -> tuple[dict, pd.DataFrame]:
    img = scores.image_scores(answers)
    skill = scores.skill_table(answers, reps, seed)
    summary = {"judge": {"spec": judge.spec, "revision": judge.revision, "normalisation": judge.normalisation,
                         "soft": bool(answers["soft"].all())},
               "n_images": int(answers["image_id"].nunique()), "n_prompts": int(answers["prompt_id"].nunique()),
               "n_pairs": len(answers), "estimand": scores.ESTIMAND, "scores": scores.overall(img, reps, seed),
               "skills": skill.to_dict("records"), "labels": labels_info,
               "usage": usage if isinstance(usage, dict) else getattr(usage, "__dict__", str(usage))}
    if labels_info.get("n_labels"):
        t = calibrate.calibrated_table(answers, reps, seed, calibration)
        summary["calibrated"] = t.replace({np.nan: None}).to_dict("records")
        summary["calibrated_method"] = calibrate.METHOD.format(reps=reps)
        summary["warnings"] = calibrate.shift_warnings(t, judge.spec)
    return summary, img


def write(out_dir: Path, answers: pd.DataFrame, img: pd.DataFrame, summary: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    a = answers.copy()
    a["parents"] = a["parents"].map(lambda p: json.dumps(list(p)))
    a.to_parquet(out_dir / "answers.parquet", index=False)
    img.to_parquet(out_dir / "scores.parquet", index=False)
    write_summary(out_dir, summary)


def write_summary(out_dir: Path, summary: dict) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json))


def _json(o):
    if isinstance(o, (np.integer, np.floating, np.bool_)):
        return o.item()
    return str(o)
