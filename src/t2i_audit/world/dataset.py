"""Rendering PictoWorld data sets to disk and streaming them for training.

A data set directory holds ``images/<id>.png``, ``manifest.parquet`` (one row per image with every
ground-truth attribute and the captions) and ``card.json`` (counts per attribute, spec hash, seed,
renderer version).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from t2i_audit.core.io import atomic_write_bytes, atomic_write_parquet
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.captions import bare_caption, caption, paraphrases
from t2i_audit.world.render import RENDERER_VERSION, render
from t2i_audit.world.scene import Scene, sample_scene, scene_rng

MANIFEST_COLUMNS = (
    "id", "file", "seed", "index", "kind", "caption", "bare_caption", "paraphrases", "n_objects",
    "objects", "shapes", "colors", "positions", "relation", "profession", "presentation", "skin",
    "clothing", "said_presentation", "said_skin", "said_position", "background", "size",
    "scene_json", "bias_spec_hash", "renderer_version",
)


def scene_row(scene: Scene, *, index: int, seed: int, size: int, spec_hash: str) -> dict:
    p = scene.person
    objs = [{"shape": s.shape, "color": s.color, "position": s.position} for s in scene.shapes]
    sid = f"{index:07d}"
    return {
        "id": sid,
        "file": f"images/{sid}.png",
        "seed": int(seed),
        "index": int(index),
        "kind": scene.kind,
        "caption": caption(scene),
        "bare_caption": bare_caption(scene),
        "paraphrases": paraphrases(scene),
        "n_objects": scene.n_objects,
        "objects": json.dumps(objs),
        "shapes": [o["shape"] for o in objs],
        "colors": [o["color"] for o in objs],
        "positions": [o["position"] for o in objs],
        "relation": scene.relation,
        "profession": p.profession if p else None,
        "presentation": p.presentation if p else None,
        "skin": p.skin if p else None,
        "clothing": p.clothing if p else None,
        "said_presentation": bool(p and "presentation" in scene.said),
        "said_skin": bool(p and "skin" in scene.said),
        "said_position": bool(scene.said_position) if not p else False,
        "background": int(scene.background),
        "size": int(size),
        "scene_json": scene.to_json(),
        "bias_spec_hash": spec_hash,
        "renderer_version": RENDERER_VERSION,
    }


def iter_scenes(n: int, seed: int = 0, spec: BiasSpec | None = None, start: int = 0,
                **scene_kwargs) -> Iterator[tuple[int, Scene]]:
    """Scenes ``start .. start+n-1`` of the stream ``seed``. Scene i depends on (seed, i) only."""
    spec = spec or BiasSpec.load()
    for i in range(start, start + n):
        yield i, sample_scene(scene_rng(seed, i), spec, **scene_kwargs)


def card(rows: list[dict], *, seed: int, spec: BiasSpec, size: int) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for key in ("kind", "profession", "presentation", "skin", "clothing", "n_objects"):
        c = Counter(str(r[key]) for r in rows if r[key] is not None)
        counts[key] = dict(sorted(c.items()))
    for key in ("shapes", "colors", "positions"):
        c = Counter(v for r in rows for v in r[key])
        counts[key[:-1]] = dict(sorted(c.items()))
    return {
        "n": len(rows),
        "seed": int(seed),
        "size": int(size),
        "bias_spec": {"name": spec.name, "version": spec.version, "hash": spec.hash, "source": spec.source},
        "renderer_version": RENDERER_VERSION,
        "counts": counts,
    }


def write_manifest(rows: list[dict], path: Path) -> None:
    import pandas as pd

    atomic_write_parquet(path, pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)))


def render_dataset(out: str | Path, n: int, *, seed: int = 0, size: int = 32,
                   spec: BiasSpec | None = None, progress: bool = True, **scene_kwargs) -> dict:
    """Render ``n`` scenes to ``out`` (PNGs + manifest.parquet + card.json). Returns the card."""
    from io import BytesIO

    from tqdm import tqdm

    spec = spec or BiasSpec.load()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    it = iter_scenes(n, seed, spec, **scene_kwargs)
    for i, scene in tqdm(it, total=n, desc="render", unit="img", disable=not progress):
        row = scene_row(scene, index=i, seed=seed, size=size, spec_hash=spec.hash)
        buf = BytesIO()
        render(scene, size).save(buf, format="PNG", optimize=False, compress_level=6)
        atomic_write_bytes(out / row["file"], buf.getvalue(), fsync=False)
        rows.append(row)
    write_manifest(rows, out / "manifest.parquet")
    c = card(rows, seed=seed, spec=spec, size=size)
    atomic_write_bytes(out / "card.json", (json.dumps(c, indent=2) + "\n").encode(), fsync=False)
    return c


def load_manifest(directory: str | Path):
    """Read a data set's manifest as a pandas DataFrame, with a clear error if it is missing."""
    import pandas as pd

    path = Path(directory) / "manifest.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no manifest.parquet; render one with "
                                "`t2i-audit world render --out DIR`")
    return pd.read_parquet(path)


def render_batch(scenes: list[Scene], size: int = 32) -> np.ndarray:
    """Render scenes to a uint8 array (N, size, size, 3), for training loops."""
    return np.stack([np.asarray(render(s, size)) for s in scenes])
