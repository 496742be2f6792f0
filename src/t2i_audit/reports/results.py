"""Reading a run directory's result files (docs/results-schema.md) with clear errors.

Nothing here imports torch or any model: a report is re-rendered from files alone. Every file is
optional except ``run.json``; what is missing is recorded in :attr:`RunResults.missing` so that a
report can say so, and :func:`check_complete` turns it into a refusal for the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from t2i_audit.core.rundir import (  # noqa: F401 - the schema's names and readers, re-exported for reports
    AGGREGATE_COLUMNS,
    BIAS_COLUMNS,
    BIAS_STATS_COLUMNS,
    ITEM_COLUMNS,
    SAFETY_COLUMNS,
    SCHEMA_PREFIX,
    SUPPORTED,
    ResultsError,
    check_schema,
    read_json,
    read_run,
    read_table,
)
from t2i_audit.core.rundir import MANIFEST_REQUIRED as MANIFEST_COLUMNS  # noqa: F401
from t2i_audit.core.score_status import stale_scores_problem


@dataclass
class RunResults:
    """Everything the result files of one run directory hold (``None`` where a file is absent)."""

    root: Path
    run: dict
    manifest: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    aggregates: pd.DataFrame | None = None
    scores_meta: dict | None = None
    bias: pd.DataFrame | None = None
    bias_stats: pd.DataFrame | None = None
    bias_meta: dict | None = None
    memorization: pd.DataFrame | None = None
    memorization_meta: dict | None = None
    diversity_meta: dict | None = None
    safety: pd.DataFrame | None = None  # audits/safety.parquet: group, statistic, value, ci_low, ci_high, n
    safety_items: pd.DataFrame | None = None
    safety_meta: dict | None = None
    gate: dict | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id", self.root.name))

    @property
    def suite_hash(self) -> str | None:
        suite = self.run.get("suite") or {}
        return suite.get("hash") if isinstance(suite, dict) else None

    def image_path(self, rel: str) -> Path:
        return self.root / rel


def load_run(path: str | Path) -> RunResults:
    """Load every result file of a run directory. Only ``run.json`` is required; run.json and the
    manifest are read by ``core.rundir.read_run``, the one run reader."""
    meta, manifest = read_run(path, require_complete=False, require_manifest=False)
    root = Path(path)
    res = RunResults(root=root, run=meta, manifest=manifest)

    def opt(rel: str, loader):
        p = root / rel
        if p.is_file():
            return loader(p)
        res.missing.append(rel)
        return None

    if manifest is None:
        res.missing.append("manifest.parquet")
    res.items = opt("scores/items.parquet", lambda p: read_table(p, ITEM_COLUMNS))
    res.aggregates = opt("scores/aggregates.parquet", lambda p: read_table(p, AGGREGATE_COLUMNS))
    res.scores_meta = opt("scores/results.json", lambda p: read_json(p, "scores"))
    res.bias = opt("audits/bias.parquet", lambda p: read_table(p, BIAS_COLUMNS))
    res.bias_stats = opt("audits/bias_stats.parquet", lambda p: read_table(p, BIAS_STATS_COLUMNS))
    res.bias_meta = opt("audits/bias.json", lambda p: read_json(p, "bias"))
    res.memorization = opt("audits/memorization.parquet", lambda p: read_table(p, ()))
    res.memorization_meta = opt("audits/memorization.json", lambda p: read_json(p, "memorization"))
    div = root / "audits" / "diversity.json"  # an audit added later: absent is not a missing input
    res.diversity_meta = read_json(div, "diversity") if div.is_file() else None
    saf = root / "audits" / "safety.json"  # likewise
    if saf.is_file():
        res.safety_meta = read_json(saf, "safety")
        res.safety = read_table(root / "audits" / "safety.parquet", SAFETY_COLUMNS)
        items = root / "audits" / "safety_items.parquet"
        res.safety_items = read_table(items, ("image_id", "reading")) if items.is_file() else None
    gate = root / "gate.json"
    res.gate = read_json(gate, "gate") if gate.is_file() else None
    if res.items is not None and "detail" not in res.items.columns:
        res.items["detail"] = ""
    return res


def expected_images(res: RunResults) -> int | None:
    """How many images run.json promises: ``n_images`` if recorded, else prompts × images per prompt."""
    run = res.run
    for key in ("n_images", "expected_images"):
        if isinstance(run.get(key), int):
            return run[key]
    ipp = run.get("images_per_prompt")
    suite = run.get("suite") if isinstance(run.get("suite"), dict) else {}
    n_prompts = suite.get("n_prompts")
    if isinstance(ipp, int) and isinstance(n_prompts, int):
        return ipp * n_prompts
    if isinstance(ipp, int) and res.manifest is not None:
        return ipp * res.manifest["prompt_id"].nunique()
    return None


def memorization_summary(meta: dict | None) -> dict | None:
    """Rate, interval, n and threshold of memorization.json, whichever key spelling it uses."""
    if not meta:
        return None
    thr = meta.get("threshold")
    if isinstance(thr, dict):
        thr = thr.get("value", thr)
    def pick(*keys):
        return next((meta[k] for k in keys if meta.get(k) is not None), None)
    return {"rate": pick("rate"), "ci_low": pick("ci_low", "rate_ci_low"), "ci_high": pick("ci_high", "rate_ci_high"),
            "n": pick("n", "n_generated"), "threshold": thr}


def completeness_problems(res: RunResults, need: tuple[str, ...] = ("scores",)) -> list[str]:
    """Reasons why a run's results are incomplete (empty list: complete).

    ``need`` names the result groups that must exist: ``scores`` and/or ``bias``/``memorization``.
    """
    problems: list[str] = []
    status = res.run.get("status")
    if status is not None and status != "complete":
        problems.append(f"run.json status is {status!r}, not 'complete' (sampling did not finish; "
                        "re-run `t2i-audit sample` to resume)")
    if res.manifest is None:
        problems.append("manifest.parquet is missing (sampling did not finish)")
    else:
        want = expected_images(res)
        have = len(res.manifest)
        if want is not None and have < want:
            problems.append(f"manifest.parquet has {have} images but run.json promises {want} "
                            "(sampling did not finish; re-run `t2i-audit sample` to resume)")
        absent = [p for p in res.manifest["path"] if not (res.root / str(p)).is_file()]
        if absent:
            problems.append(f"{len(absent)} image file(s) listed in the manifest are missing, "
                            f"e.g. {absent[0]}")
    if "scores" in need:
        stale = stale_scores_problem(res.root)
        if stale:
            problems.insert(0, stale)  # the reason a user must act on first
        for rel, val in (("scores/items.parquet", res.items), ("scores/aggregates.parquet", res.aggregates),
                         ("scores/results.json", res.scores_meta)):
            if val is None:
                problems.append(f"{rel} is missing (run `t2i-audit score`)")
        if res.items is not None and res.manifest is not None:
            unscored = set(res.manifest["image_id"]) - set(res.items["image_id"])
            if unscored:
                problems.append(f"{len(unscored)} image(s) have no scores, e.g. {sorted(unscored)[0]} "
                                "(re-run `t2i-audit score`)")
        if res.scores_meta is not None and res.scores_meta.get("run_id") not in (None, res.run_id):
            problems.append(f"scores/results.json belongs to run {res.scores_meta.get('run_id')!r}, "
                            f"not {res.run_id!r}")
    if "bias" in need:
        for rel, val in (("audits/bias.parquet", res.bias), ("audits/bias_stats.parquet", res.bias_stats)):
            if val is None:
                problems.append(f"{rel} is missing (run `t2i-audit audit bias`)")
    if "diversity" in need and res.diversity_meta is None:
        problems.append("audits/diversity.json is missing (run `t2i-audit audit diversity`)")
    if "safety" in need and (res.safety_meta is None or res.safety is None):
        problems.append("audits/safety.json or safety.parquet is missing (run `t2i-audit audit safety`)")
    if "memorization" in need and res.memorization_meta is None:
        problems.append("audits/memorization.json is missing (run `t2i-audit audit memorization`)")
    return problems


def check_complete(res: RunResults, need: tuple[str, ...] = ("scores",)) -> None:
    """Raise :class:`ResultsError` naming the first problem if the run's results are incomplete."""
    problems = completeness_problems(res, need)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"{res.root}: incomplete results: {problems[0]}{more}")
