"""Whether a run's scores are current: the marker ``scores/incomplete.json``.

``t2i-audit score`` rewrites ``scores/{items,aggregates}.parquet`` and ``results.json`` only at its end.
A re-score that fails (an evaluator that does not load, a tampered image) or is killed would leave
the previous results in place, and a later ``gate`` would read them as current. So, while previous
results exist, ``score`` writes this marker before it starts (status ``running``), turns it into
``failed`` (with the evaluator and the error) when it fails, and removes it only after the new
results are written. :func:`stale_scores_problem` is what readers (the gate, reports) check.
Torch-free: ``reports`` imports it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from t2i_audit.core.io import atomic_write_json

MARKER = "incomplete.json"
SCHEMA = "t2i-audit/score-status/1"
RESULT_FILES = ("items.parquet", "aggregates.parquet", "results.json")


def marker_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "scores" / MARKER


def has_scores(run_dir: str | Path) -> bool:
    """Whether any previous score result file exists (something a failed re-score would leave stale)."""
    d = Path(run_dir) / "scores"
    return any((d / f).is_file() for f in RESULT_FILES)


def mark_scoring(run_dir: str | Path, evaluators: dict[str, str]) -> bool:
    """Before scoring: mark existing results as being replaced; returns whether a marker was written."""
    if not has_scores(run_dir):
        return False
    atomic_write_json(marker_path(run_dir), {
        "schema": SCHEMA, "status": "running", "evaluators": dict(evaluators),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return True


def mark_failed(run_dir: str | Path, error: BaseException | str, evaluator: str | None,
                evaluators: dict[str, str]) -> bool:
    """After a failed score: record the failure where previous results exist (they are now stale)."""
    if not has_scores(run_dir):
        return False
    msg = " ".join(str(error).split())[:300]
    atomic_write_json(marker_path(run_dir), {
        "schema": SCHEMA, "status": "failed", "evaluator": evaluator, "evaluators": dict(evaluators),
        "error": msg or type(error).__name__, "failed": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return True


def clear_marker(run_dir: str | Path) -> None:
    """After the new results are written: they are current."""
    marker_path(run_dir).unlink(missing_ok=True)


def stale_scores_problem(run_dir: str | Path) -> str | None:
    """Why the run's scores are not current (``None`` when they are), in one sentence."""
    p = marker_path(run_dir)
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    if info.get("status") == "failed":
        ev = info.get("evaluator") or ", ".join(f"{k} {v}" for k, v in (info.get("evaluators") or {}).items())
        return (f"scores/ are stale: the last `t2i-audit score` failed ({'evaluator ' + ev + ': ' if ev else ''}"
                f"{info.get('error', 'unknown error')}); the results on disk are from an earlier score — fix "
                "it and re-run `t2i-audit score`")
    return ("scores/ are stale: a `t2i-audit score` started "
            f"{info.get('started', '')} did not finish (killed, or still running); re-run `t2i-audit score`")
