"""The run-directory schema, in one place: every file a run directory can hold, the columns its
tables must have, the schema versions this package reads, and the one reader of run.json and the
manifest. Writers (``evals.runs``, ``evals.scoring``, ``audits``) and readers (``reports``) import
their names from here, and every layer reads a run through :func:`read_run` (one contract:
``FILES`` lists required columns, ``SUPPORTED`` the schema versions). Layout and meaning: docs/results-schema.md.

Torch-free and pandas only inside functions, so every layer may import it.
"""

from __future__ import annotations

import json
from pathlib import Path

from t2i_audit.errors import InputError

SCHEMA_PREFIX = "t2i-audit/"
RUN_JSON = "run.json"  # the run's identity and status
MANIFEST = "manifest.parquet"  # one row per image
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
    RUN_JSON: "run",
    MANIFEST: MANIFEST_REQUIRED,
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


class ResultsError(InputError):
    """A run-directory file is missing, malformed, or of an unsupported schema version."""


def check_schema(data, path: Path, kind: str) -> dict:
    """Validate the ``schema`` key of a run-directory JSON file (``t2i-audit/<kind>/<major>``):
    any major version up to ``SUPPORTED[kind]`` is read, a newer one is refused."""
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object with a 'schema' key")
    schema = data.get("schema")
    want = f"{SCHEMA_PREFIX}{kind}/"
    if not isinstance(schema, str) or not schema.startswith(want):
        raise ResultsError(f"{path}: schema {schema!r} is not {want}<version>; is this the right file?")
    try:
        major = int(schema[len(want):].split(".")[0])
    except ValueError:
        raise ResultsError(f"{path}: malformed schema version in {schema!r}") from None
    if major > SUPPORTED[kind]:
        raise ResultsError(f"{path}: schema {schema} is newer than this t2i-audit supports "
                           f"({want}{SUPPORTED[kind]}); upgrade t2i-audit")
    return data


def read_json(path: Path, kind: str) -> dict:
    """A run-directory JSON file (``FILES[rel]`` names its kind) at a supported schema version."""
    from t2i_audit.core.io import read_user_text

    try:
        text = read_user_text(path, path.name, "re-run the step that wrote it")
    except OSError as e:
        raise ResultsError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); re-run the step "
                           "that wrote it") from None
    return check_schema(data, path, kind)


def read_table(path: Path, columns: tuple[str, ...]):
    """A run-directory Parquet table with at least ``columns`` (``FILES[rel]``)."""
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise ResultsError(f"{path}: not a readable Parquet table ({type(e).__name__}); re-run the "
                           "step that wrote it") from None
    lacking = [c for c in columns if c not in df.columns]
    if lacking:
        raise ResultsError(f"{path}: missing column(s) {', '.join(lacking)} required by "
                           "docs/results-schema.md")
    return df


def read_run_json(path: str | Path) -> dict:
    """run.json as a dict; refuses a file that does not parse or has an unsupported schema version."""
    return read_json(Path(path), "run")


def check_run_dir(run_dir: str | Path, *, manifest: bool = True) -> Path:
    """``run_dir`` as a Path when it holds run.json (and, with ``manifest``, manifest.parquet)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a run directory; give the --out of `t2i-audit sample`")
    if not (run_dir / RUN_JSON).is_file():
        raise ResultsError(f"{run_dir}: not a generation run: no run.json; create the run with "
                           f"`t2i-audit sample --out {run_dir}`")
    if manifest and not (run_dir / MANIFEST).is_file():
        raise ResultsError(f"{run_dir}: no manifest.parquet; re-run `t2i-audit sample` to rebuild it")
    return run_dir


def read_run(run_dir: str | Path, *, require_complete: bool = True, require_images: bool = False,
             require_manifest: bool = True):
    """The one reader of a run: (run.json as a dict, manifest as a DataFrame with at least
    ``MANIFEST_REQUIRED``). ``require_complete``: refuse a run whose sampling did not finish;
    ``require_images``: refuse an empty manifest; ``require_manifest=False``: a run without a
    manifest yet reads as (run.json, None) -- reports say what is missing instead of refusing."""
    run_dir = check_run_dir(run_dir, manifest=False)
    meta = read_run_json(run_dir / RUN_JSON)
    if require_complete and meta.get("status") != "complete":
        raise ResultsError(f"{run_dir}: the run is not complete (status {meta.get('status')!r}); "
                           f"re-run the same `t2i-audit sample` command to finish it")
    mf = run_dir / MANIFEST
    if not mf.is_file():
        if require_manifest:
            check_run_dir(run_dir)  # names the missing manifest
        return meta, None
    manifest = read_table(mf, MANIFEST_REQUIRED)
    if require_images and manifest.empty:
        raise ResultsError(f"{run_dir}: the manifest lists no images; sample some first")
    return meta, manifest.reset_index(drop=True)


def listed_images(directory: str | Path) -> list[str] | None:
    """The image paths, relative to ``directory``, that its manifest lists: a run's (``path``) or a
    PictoWorld data set's (``file``, from `t2i-audit world render`); None when it has no manifest.
    For commands that take "a run or a folder of images" (a reference set, a training set)."""
    mf = Path(directory) / MANIFEST
    if not mf.is_file():
        return None
    df = read_table(mf, ())
    col = "path" if "path" in df.columns else "file" if "file" in df.columns else None
    if col is None:
        raise ResultsError(f"{mf}: has neither a 'path' nor a 'file' column; is this a run or a data set?")
    return [str(p) for p in df[col]]
