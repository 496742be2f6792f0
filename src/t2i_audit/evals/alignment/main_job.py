"""The main job's alignment stage: the bundled judge on a PictoWorld run, oracle labels, oracle truth.

What a real-model user runs -- a judge answering the suite's scene-graph questions on every image, plus
labels on a random subset of pairs per question type -- with the oracle as the labeller (``LABELS_PER_SKILL``
seeded random pairs per skill) and, beside it, the oracle's reading of every pair: judge-raw,
label-calibrated (PPI++) and oracle truth, side by side. Writes RUN/alignment/ as ``t2i-audit align``
does, plus ``labels_oracle.csv`` and an ``oracle`` column in answers.parquet.
"""

from __future__ import annotations

import time
from pathlib import Path

from t2i_audit.core.io import atomic_write_bytes

JOB_JUDGE = "bundled"
LABELS_PER_SKILL = 150


def score_alignment(run_dir: str | Path, *, judge_spec: str = JOB_JUDGE, labels_per_skill: int = LABELS_PER_SKILL,
                    reps: int = 2000, seed: int = 0, progress: bool = False) -> dict:
    """Answers, oracle labels and truth, scores and tables of ``run_dir``; returns summary.json's dict."""
    from t2i_audit.evals.alignment import calibrate, oracle_labels, pipeline
    from t2i_audit.evals.judges.base import load_judge
    from t2i_audit.evals.judges.runner import judge_requests
    from t2i_audit.evals.runs.rundir import load_run

    run_dir = Path(run_dir)
    t = {}
    t0 = time.perf_counter()
    _, manifest = load_run(run_dir)
    rows, reqs = pipeline.pair_requests(run_dir, manifest, pipeline.run_questions(manifest, None))
    judge = load_judge(judge_spec)
    got, usage = judge_requests(judge, reqs, cache=None, progress=progress)
    answers = pipeline.answers_frame(rows, got)
    t["judge"], t0 = time.perf_counter() - t0, time.perf_counter()
    every = oracle_labels.oracle_labels(reqs)
    truth = oracle_labels.truth_codes(answers, every)
    pick = oracle_labels.sample_pairs(answers, labels_per_skill, seed)
    labels = oracle_labels.labels_frame(answers, pick, [every[i] for i in pick])
    out = run_dir / "alignment"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "labels_oracle.csv", labels.to_csv(index=False).encode())
    answers, unmatched = calibrate.attach_labels(answers, labels)
    t["oracle"], t0 = time.perf_counter() - t0, time.perf_counter()
    info = {"file": str(out / "labels_oracle.csv"), "labeller": "the PictoWorld oracle",
            "design": f"{labels_per_skill} seeded random pairs per skill (seed {seed})",
            "n_labels": len(labels), "n_unsure": int((labels["label"] == "unsure").sum()), "unmatched": unmatched}
    summary, img = pipeline.summarise(answers, judge, usage, info, reps, seed, None)
    summary["oracle_truth"] = oracle_labels.truth_table(answers, truth, reps, seed)
    answers["oracle"] = every
    pipeline.write(out, answers, img, summary)
    t["scores"] = time.perf_counter() - t0
    summary["stage_seconds"] = {k: round(v, 2) for k, v in t.items()}
    pipeline.write_summary(out, summary)
    return summary


def summary_text(summary: dict) -> str:
    """The job's printed alignment section: overall scores, the per-skill side-by-side table, method."""
    from t2i_audit.evals.alignment.results import methodology, side_by_side

    lines = ["alignment (PictoWorld questions; share of (image, question) pairs right [95% CI]):"]
    lines.append(f"  {'skill':<17}{'pairs':>6}  {'judge-raw':<22}{'label-calibrated':<31}{'oracle truth':<22}")
    for r in side_by_side(summary):
        lines.append(f"  {r[0]:<17}{r[1]:>6}  {r[2]} {r[3]:<16}{r[4]} {r[5]:<16}(n={r[6]:<3}) {r[8]} {r[9]}")
    sc = summary.get("scores", {})
    lines.append("  judge scores: " + "; ".join(
        f"{k} {e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]" for k, e in sc.items())
        + f" (n={summary['n_images']} images, {summary['n_prompts']} prompts)")
    lines += [f"  {m}" for m in methodology(summary)]
    lines += [f"WARNING: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines)
