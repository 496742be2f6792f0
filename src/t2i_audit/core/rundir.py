"""The run-directory schema, in one place: every file a run directory can hold, the columns its
tables must have, the schema versions this package reads, and the one reader of run.json and the
manifest. Writers (``evals.runs``, ``evals.scoring``, ``audits``) and readers (``reports``) import
their names from here. Layout and meaning: docs/results-schema.md.

Torch-free and pandas only inside functions, so every layer may import it.
"""

from __future__ import annotations

import json
from pathlib import Path

from t2i_audit.errors import InputError

SCHEMA_PREFIX = "t2i-audit/"
RUN_SCHEMA = "t2i-audit/run/1"
SUPPORTED = {"run": 1, "scores": 1, "bias": 1, "memorization": 1, "gate": 1, "diversity": 1, "safety": 1}

MANIFEST_COLUMNS = ("prompt_id", "category", "template", "slots", "text", "tags", "expect", "seed",
                    "image_id", "path", "sha256", "width", "height", "seconds")  # as written by `sample`
MANIFEST_REQUIRED = ("prompt_id", "category", "text", "seed", "image_id", "path")  # what readers need
ITEM_COLUMNS = ("prompt_id", "image_id", "seed", "category", "metric", "value")
AGGREGATE_COLUMNS = ("metric", "group", "value", "ci_low", "ci_high", "n_prompts", "n_images", "method")
BIAS_COLUMNS = ("attribute", "group", "cls", "raw", "raw_ci_low", "raw_ci_high", "corrected",
                "corr_ci_low", "corr_ci_high", "reference", "n_images", "n_prompts", "abstain_rate", "probe")
BIAS_STATS_COLUMNS = ("attribute", "group", "statistic", "value", "ci_low", "ci_high", "n")
SAFETY_COLUMNS = ("group", "statistic", "value", "ci_low", "ci_high", "n", "n_prompts", "basis")
FINDINGS_COLUMNS = ("attribute", "group", "statistic", "value", "ci_low", "ci_high", "flagged")

# Every file of a run directory: relative path -> (JSON schema kind, or the table's required columns).
FILES: dict[str, str | tuple[str, ...]] = {
    "run.json": "run",
    "manifest.parquet": MANIFEST_REQUIRED,
    "scores/items.parquet": ITEM_COLUMNS,
    "scores/aggregates.parquet": AGGREGATE_COLUMNS,
    "scores/results.json": "scores",
    "audits/bias.parquet": BIAS_COLUMNS,
    "audits/bias_stats.parquet": BIAS_STATS_COLUMNS,
    "audits/bias_items.parquet": ("image_id", "prompt_id", "group", "probe", "attribute", "reading"),
    "audits/bias.json": "bias",
    "audits/diversity.parquet": ("attribute", "group", "cls", "raw", "raw_ci_low", "raw_ci_high"),
    "audits/diversity_stats.parquet": BIAS_STATS_COLUMNS,
    "audits/diversity_findings.parquet": FINDINGS_COLUMNS,
    "audits/diversity.json": "diversity",
    "audits/safety.parquet": SAFETY_COLUMNS,
    "audits/safety.json": "safety",
    "audits/memorization.parquet": (),
    "audits/memorization.json": "memorization",
    "gate.json": "gate",
}


def read_run_json(path: str | Path) -> dict:
    """run.json as a dict; refuses a file that does not parse or has another schema version."""
    from t2i_audit import __version__
    from t2i_audit.core.io import read_user_text

    path = Path(path)
    text = read_user_text(path, "run.json", "re-run `t2i-audit sample` into a new --out")
    try:
        meta = json.loads(text)
    except ValueError:
        raise InputError(f"{path}: not valid JSON; re-run `t2i-audit sample` into a new --out") from None
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if schema != RUN_SCHEMA:
        raise InputError(f"{path}: schema {schema!r} is not {RUN_SCHEMA!r} (this is t2i-audit {__version__}); "
                         f"read it with the version that wrote it, or sample the run again")
    return meta


def read_run(run_dir: str | Path, *, require_complete: bool = True, require_images: bool = False):
    """The one reader of a run: (run.json as a dict, manifest as a DataFrame with at least
    ``MANIFEST_REQUIRED``). ``require_complete``: refuse a run whose sampling did not finish;
    ``require_images``: refuse an empty manifest."""
    import pandas as pd

    run_dir = Path(run_dir)
    rj = run_dir / "run.json"
    if not rj.is_file():
        raise InputError(f"{run_dir}: no run.json; create the run with `t2i-audit sample --out {run_dir}`")
    meta = read_run_json(rj)
    if require_complete and meta.get("status") != "complete":
        raise InputError(f"{run_dir}: the run is not complete (status {meta.get('status')!r}); "
                         f"re-run the same `t2i-audit sample` command to finish it")
    mf = run_dir / "manifest.parquet"
    if not mf.is_file():
        raise InputError(f"{run_dir}: no manifest.parquet; re-run `t2i-audit sample` to rebuild it")
    try:
        manifest = pd.read_parquet(mf)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{mf}: unreadable ({str(e)[:80]}); re-run `t2i-audit sample` with the same options "
                         "to rebuild it") from None
    missing = [c for c in MANIFEST_REQUIRED if c not in manifest.columns]
    if missing:
        raise InputError(f"{mf}: missing columns {', '.join(missing)}")
    if require_images and manifest.empty:
        raise InputError(f"{run_dir}: the manifest lists no images")
    return meta, manifest.reset_index(drop=True)
