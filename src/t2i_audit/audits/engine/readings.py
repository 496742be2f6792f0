"""Run-facing steps of the engine: the run's images and their prompt groups, and writing results.

Groups are the value of the first group slot a prompt has (e.g. ``profession``), else its category.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from t2i_audit.core.images import open_image
from t2i_audit.errors import InputError


def parse_slots(manifest: pd.DataFrame) -> list[dict]:
    return [json.loads(s) if isinstance(s, str) and s else {} for s in manifest["slots"]]


def run_domain(meta: dict, manifest: pd.DataFrame) -> str:
    """'pictoworld' when the run's suite or prompts are PictoWorld's, else 'real'."""
    suite = str((meta.get("suite") or {}).get("name", ""))
    if suite.startswith("pictoworld"):
        return "pictoworld"
    from t2i_audit.world.vocab import PROFESSIONS

    slots = parse_slots(manifest) if "slots" in manifest else []
    profs = {s.get("profession") for s in slots} - {None}
    return "pictoworld" if profs and profs <= set(PROFESSIONS) else "real"


def open_run(run_dir) -> tuple[Path, dict, pd.DataFrame, str]:
    """A complete run's directory, run.json, manifest and domain; an error when it has no images."""
    from t2i_audit.core.rundir import read_run

    meta, manifest = read_run(run_dir, require_images=True)
    return Path(run_dir), meta, manifest, run_domain(meta, manifest)


def load_images(run_dir: Path, manifest: pd.DataFrame) -> list:

    imgs = []
    for rel in manifest["path"]:
        p = run_dir / str(rel)
        if not p.is_file():
            raise InputError(f"{run_dir}: image {rel} is in the manifest but missing; re-run `t2i-audit sample`")
        try:
            with open_image(p) as im:
                imgs.append(im.convert("RGB"))
        except OSError as e:
            raise InputError(f"{p}: not a readable image ({e}); delete it and re-run `t2i-audit sample`") from None
    return imgs


def image_table(manifest: pd.DataFrame, group_slots) -> pd.DataFrame:
    """One row per image: image_id, prompt_id (the cluster), group, slots."""
    slots = parse_slots(manifest)
    groups = []
    for s, cat in zip(slots, manifest["category"]):
        g = next((str(s[k]) for k in group_slots if s.get(k) is not None), None)
        groups.append(g if g is not None else f"category={cat}")
    return pd.DataFrame({"image_id": manifest["image_id"].astype(str), "prompt_id": manifest["prompt_id"].astype(str),
                         "group": groups, "slots": slots})


def write_audit(run_dir: Path, name: str, tables: dict[str, pd.DataFrame], summary: dict) -> Path:
    """``RUN/audits/<name><suffix>.parquet`` for each table (suffix '' for the key 'main', else
    '_<key>') and ``<name>.json``, written atomically. Call under the run's lock."""
    from t2i_audit.core.io import atomic_write_json, atomic_write_parquet

    out = Path(run_dir) / "audits"
    out.mkdir(exist_ok=True)
    for key, df in tables.items():
        atomic_write_parquet(out / (f"{name}.parquet" if key == "main" else f"{name}_{key}.parquet"), df)
    from t2i_audit.core.fingerprint import stage_fingerprint

    summary = {**summary, "fingerprint": stage_fingerprint(summary.get("config"))}  # what ran (gate compares)
    atomic_write_json(out / f"{name}.json", summary)
    return out
