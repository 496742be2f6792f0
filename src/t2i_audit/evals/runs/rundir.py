"""The files of a run directory: run.json (identity, metadata, schema), journal names, the
manifest, and reading a run back. :mod:`.runs` writes runs; scoring, audits and reports read them.

Layout and columns: docs/results-schema.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from t2i_audit import __version__
from t2i_audit.core.fingerprint import git_hash  # noqa: F401 - re-exported
from t2i_audit.core.io import atomic_write_parquet
from t2i_audit.core.rundir import (  # noqa: F401 - the run format, re-exported for writers
    MANIFEST,
    MANIFEST_COLUMNS,
    RUN_JSON,
    RUN_SCHEMA,
    read_run,
    read_run_json,
)
from t2i_audit.errors import InputError
from t2i_audit.evals.suites.loader import PromptSpec, PromptSuite

IDENTITY_KEYS = ("suite", "generator", "params", "seed_policy", "images_per_prompt", "limit")


class RunMismatchError(InputError):
    """The run directory holds a run of another suite, generator or parameters."""


def image_id(prompt_id: str, seed: int) -> str:
    return f"{prompt_id}-s{int(seed)}"


def environment() -> dict:
    """What besides the identity can change an image's bytes: versions and the torch thread count
    (recorded in run.json; `t2i-audit reproduce` compares them)."""
    import platform

    env = {"package": __version__, "python": platform.python_version(), "platform": platform.machine()}
    try:
        import torch

        env.update(torch=torch.__version__, threads=torch.get_num_threads())
    except ImportError:  # pragma: no cover - a folder/python generator needs no torch
        pass
    return env


def run_identity(suite: PromptSuite, gen, params: dict, ipp: int | None, limit: int | None,
                 seed_offset: int = 0) -> dict:
    """What makes a run's images: suite, generator, params, seeds (a nonzero ``--seed-offset`` is
    recorded in the seed policy: an A/A run of one checkpoint with other seeds), images per prompt."""
    from t2i_audit.evals.adapters.registry import config_hash

    cfg = gen.config()
    policy = suite.seed_policy.to_dict()
    if seed_offset:
        policy["offset"] = int(seed_offset)
    return {
        "suite": {"name": suite.name, "version": suite.version, "hash": suite.hash},
        "generator": {"id": gen.id, "kind": gen.kind, "config": cfg, "config_hash": config_hash(cfg)},
        "params": params,
        "seed_policy": policy,
        "images_per_prompt": ipp,
        "limit": limit,
    }


def explain_mismatch(old: dict, new: dict, run_dir: Path) -> str:
    diffs = []
    for k in IDENTITY_KEYS:
        a, b = old.get(k), new.get(k)
        if k == "generator":
            a = {x: (a or {}).get(x) for x in ("id", "config_hash")}
            b = {x: b.get(x) for x in ("id", "config_hash")}
        if k == "suite":
            a, b = (a or {}).get("hash"), b.get("hash")
            if a != b:
                diffs.append(f"suite hash {a} (in run.json) vs {b} (asked for)")
            continue
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            diffs.append(f"{k} {json.dumps(a, default=str)} (in run.json) vs {json.dumps(b, default=str)} (asked for)")
    return (f"{run_dir}: holds a different run: {'; '.join(diffs)}. Resume only with the same suite, "
            f"generator and parameters, or write to a new --out directory")


def journal_name(dist) -> str:
    """Each rank of a sharded run appends to its own journal; rank 0 folds them into journal.jsonl."""
    return "journal.jsonl" if not dist.sharded else f"journal.rank{dist.rank}.jsonl"


def journal_files(run_dir: Path) -> list[Path]:
    """journal.jsonl first, then rank journals left by a sharded run, so the newest record wins."""
    shards = sorted(run_dir.glob("journal.rank*.jsonl"), key=lambda p: (len(p.name), p.name))
    return [run_dir / "journal.jsonl", *shards]


def manifest_rows(plan: list[tuple[PromptSpec, int]], records: dict[str, dict]) -> list[dict]:
    rows = []
    for p, seed in plan:
        rec = records.get(image_id(p.prompt_id, seed))
        if rec is None:
            continue
        rows.append({
            "prompt_id": p.prompt_id, "category": p.category, "template": p.template,
            "slots": json.dumps(p.slots, sort_keys=True), "text": p.text, "tags": list(p.tags),
            "expect": json.dumps(p.expect, sort_keys=True) if p.expect is not None else None,
            "seed": int(seed), "image_id": rec["image_id"], "path": rec["path"], "sha256": rec["sha256"],
            "width": int(rec["width"]), "height": int(rec["height"]),
            "seconds": float("nan") if rec.get("seconds") is None else float(rec["seconds"]),
        })
    return rows


def write_manifest(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    df = df.astype({"seed": "int64", "width": "int64", "height": "int64", "seconds": "float64"})
    atomic_write_parquet(run_dir / MANIFEST, df)


load_run = read_run  # the one run reader under the name evals.runs has always exported
