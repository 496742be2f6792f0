"""Score a generation run: per-image and aggregate metrics with 95% intervals, written under
RUN/scores/ (items.parquet, aggregates.parquet, results.json; see docs/results-schema.md).

Metrics are looked up by name in :data:`METRICS`. Image and caption embeddings go through the
content-addressed :class:`EmbeddingCache`, so re-scoring a run makes no forward passes.

Sharded (``accelerate launch`` / ``torchrun``): each rank verifies, embeds and judges its strided
share of the images; the rows are gathered back into manifest order on every rank, Fréchet moments
are float64 running sums added across ranks, and rank 0 writes the results (see docs/scale.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import t2i_audit.evals.distributed.launch as distributed
import t2i_audit.evals.metrics.distribution as md
from t2i_audit.core.config import ConfigBase
from t2i_audit.core.fingerprint import stage_fingerprint
from t2i_audit.core.images import load_rgb
from t2i_audit.core.io import atomic_write_json, atomic_write_parquet, remove_temp_files, sha256_file
from t2i_audit.core.rundir import check_run_dir, read_run
from t2i_audit.core.score_status import clear_marker, mark_failed, mark_scoring
from t2i_audit.errors import InputError
from t2i_audit.evals.features.cache import EmbeddingCache, embed_cached, text_key
from t2i_audit.evals.features.extractors import load_extractor
from t2i_audit.evals.metrics.registry import METRICS, parse_metrics
from t2i_audit.evals.runs.locking import RunLock

SCHEMA = "t2i-audit/scores/1"


@dataclass
class ScoreConfig(ConfigBase):
    metrics: tuple[str, ...] = ("clip_score", "skills")
    features: str = "bundled-clip"  # extractor for fd, fd_inf, kid
    clip: str = "bundled-clip"  # text-image extractor for clip_score and cmmd
    reference: str | None = None  # a folder, or 'world'
    reference_n: int = 1000
    reference_seed: int = 0
    reps: int = 2000  # cluster-bootstrap replicates for means and proportions
    dist_reps: int = 20  # bootstrap replicates for distribution metrics
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    fd_inf_points: int = 10
    batch_size: int = 64
    cache: bool = True
    cache_dir: str | None = None
    progress: bool = True


def load_run(run_dir: str | Path) -> tuple[Path, dict, pd.DataFrame]:
    """(run directory, run.json, manifest) of a run to score: ``core.rundir.read_run``, which also
    reads runs whose sampling stopped early (scored as they stand), plus the directory."""
    meta, df = read_run(run_dir, require_complete=False, require_images=True)
    return Path(run_dir), meta, df


@dataclass
class Context:
    root: Path
    info: dict
    manifest: pd.DataFrame
    cfg: ScoreConfig
    cache: EmbeddingCache
    timings: dict[str, float] = field(default_factory=dict)
    evaluators: dict[str, str] = field(default_factory=dict)
    methodology: dict[str, str] = field(default_factory=dict)
    reference_info: dict | None = None
    dist: distributed.Dist = field(default_factory=distributed.current)
    _memo: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)  # "evaluator": the one being loaded, named if it fails

    def timed(self, stage: str, fn: Callable):
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t

    @property
    def prompts(self) -> np.ndarray:
        return self.manifest["prompt_id"].astype(str).to_numpy()

    def image(self, i: int) -> Image.Image:
        return load_rgb(self.root / self.manifest["path"].iloc[i])

    def extractor(self, spec: str, role: str):
        self.status["evaluator"] = f"{role} {spec}"
        ex = self.timed(f"load {role} model", lambda: self.dist.agree(lambda: load_extractor(spec)))
        self.status.pop("evaluator", None)
        distributed.place_extractor(ex, self.cfg.batch_size)
        self.evaluators[role] = ex.id
        return ex

    def embed_sharded(self, ex, keys: list[str], load: Callable, embed: Callable, desc: str,
                      progress: bool) -> np.ndarray:
        """Embeddings of ``keys`` in order; each rank embeds (or finds in the cache) its share."""
        def part(idx: list[int]) -> np.ndarray:
            return embed_cached(self.cache, ex.id, [keys[i] for i in idx], lambda j: load(idx[j]), embed,
                                self.cfg.batch_size, progress and self.dist.is_main, desc)

        return self.dist.gather_rows(len(keys), part)

    def image_features(self, spec: str, role: str) -> np.ndarray:
        key = ("img", spec)
        ex = self.extractor(spec, role)  # loaded once per process; records the evaluator of this role
        if key not in self._memo:
            keys = self.manifest["sha256"].astype(str).tolist()
            self._memo[key] = self.timed(f"embed images ({role})", lambda: self.embed_sharded(
                ex, keys, self.image, ex.embed_images, f"embed images ({role})", self.cfg.progress))
        return self._memo[key]

    def image_moments(self, spec: str, role: str) -> md.GaussianMoments:
        """Fréchet moments of the generated set: float64 running sums of each rank's share, added
        across ranks."""
        feats = self.image_features(spec, role)
        own = md.GaussianMoments.of(feats[self.dist.shard_indices(len(feats))])
        return md.GaussianMoments.from_arrays(self.dist.sum(own.to_arrays()))

    def text_features(self, spec: str, role: str) -> np.ndarray:
        ex = self.extractor(spec, role)
        if not hasattr(ex, "embed_texts"):
            raise InputError(f"--clip {spec}: {ex.id} embeds images only; CLIPScore needs a CLIP "
                             "(bundled-clip, open_clip:..., hf-clip:...)")
        texts = self.manifest["text"].astype(str).tolist()
        uniq = list(dict.fromkeys(texts))
        keys, bs = [text_key(t) for t in uniq], self.cfg.batch_size

        def block(b: int) -> np.ndarray:
            return embed_cached(self.cache, ex.id, keys[b * bs:(b + 1) * bs], lambda j: uniq[b * bs + j],
                                ex.embed_texts, bs)

        def run() -> np.ndarray:
            # Each distinct caption once across all ranks, in whole batches of the single-process
            # order (rank r takes batches r, r + W, ...), so sharding changes no batch and no bit.
            n_blocks = -(-len(uniq) // bs)
            return np.concatenate(self.dist.gather_shards(n_blocks, lambda idx: [block(b) for b in idx]))

        feats = self.timed(f"embed texts ({role})", run)
        row = {t: j for j, t in enumerate(uniq)}
        return feats[[row[t] for t in texts]]

    def reference_features(self, spec: str, role: str) -> tuple[np.ndarray, md.GaussianMoments]:
        from t2i_audit.evals.scoring.reference import load_reference, reference_moments

        if self.cfg.reference is None:
            raise InputError("fd/kid/cmmd/fd_inf compare against a reference set: pass --reference DIR or "
                             "--reference world")
        if "ref" not in self._memo:
            size = int(self.manifest["width"].mode().iloc[0]) if "width" in self.manifest else 32
            self._memo["ref"] = self.timed("reference set", lambda: load_reference(
                self.cfg.reference, n=self.cfg.reference_n, seed=self.cfg.reference_seed, size=size))
        ref = self._memo["ref"]
        self.reference_info = ref.info()
        key = ("ref", spec)
        ex = self.extractor(spec, role)
        if key not in self._memo:
            feats = self.timed(f"embed reference ({role})", lambda: self.embed_sharded(
                ex, ref.keys, ref.load, ex.embed_images, "embed reference", self.cfg.progress))
            moments = reference_moments(ref, ex, self.cache, feats)
            self._memo[key] = (feats, moments)
        return self._memo[key]


def score_run(run_dir: str | Path, cfg: ScoreConfig | None = None, cache: EmbeddingCache | None = None) -> dict:
    """Compute the configured metrics for a run and write RUN/scores/. Returns the results dict
    (plus ``items`` and ``aggregates`` DataFrames under the keys of the same names).

    One writer per run directory: the run's ``.lock`` is held (by rank 0) while scoring, so a second
    `score`, an audit or a `sample` into the same run is refused; leftovers of a killed score's
    atomic writes are removed first."""
    dist = distributed.current()
    dist.agree(lambda: check_run_dir(run_dir))  # a run directory, checked before its lock is taken (and
    # read after it is held, so that what is scored is what the lock protects)
    lock = RunLock(run_dir, purpose="score")
    cfg = cfg or ScoreConfig()
    evaluators = {"clip": cfg.clip, "features": cfg.features}

    def take() -> None:
        lock.acquire()
        remove_temp_files(Path(run_dir) / "scores")
        mark_scoring(run_dir, evaluators)  # previous results are stale until the new ones are written

    dist.on_main(take)
    status: dict = {}
    try:
        return _score_run(run_dir, cfg, cache, status)
    except Exception as e:
        if dist.is_main:  # a failed re-score never leaves the old results looking current
            try:
                mark_failed(run_dir, e, status.get("evaluator"), evaluators)
            except OSError:  # e.g. the disk is full: the "running" marker stays, which is also stale
                pass
        raise
    finally:
        lock.release()  # a no-op on ranks other than 0


def _score_run(run_dir: str | Path, cfg: ScoreConfig, cache: EmbeddingCache | None, status: dict) -> dict:
    names = parse_metrics(cfg.metrics)
    t0 = time.perf_counter()
    cache = cache or EmbeddingCache(cfg.cache_dir, enabled=cfg.cache)
    dist = distributed.current()
    ctx = Context(*dist.agree(lambda: load_run(run_dir)), cfg=cfg, cache=cache, dist=dist, status=status)

    def verify():
        paths, hashes = ctx.manifest["path"].tolist(), ctx.manifest["sha256"].tolist()
        full = [os.path.join(ctx.root, p) for p in paths]  # plain strings: pathlib costs more than the hashing
        ok = ctx.dist.gather_shards(len(paths), lambda idx: [
            os.path.isfile(full[i]) and sha256_file(full[i]) == hashes[i] for i in idx])
        bad = [p for p, good in zip(paths, ok) if not good]
        if bad:
            raise InputError(f"{run_dir}: {len(bad)} image(s) are missing or differ from their manifest sha256 "
                             f"(e.g. {bad[0]}); re-run `t2i-audit sample` to repair the run")

    ctx.timed("verify images", verify)
    items, aggs = [], []
    for n in names:
        it, rows = METRICS[n][0](ctx)
        items.append(it)
        aggs.extend(rows)
    items_df = pd.concat([i for i in items if len(i)], ignore_index=True) if any(len(i) for i in items) else items[0]
    agg_df = pd.DataFrame(aggs, columns=["metric", "group", "value", "ci_low", "ci_high", "n_prompts", "n_images",
                                         "method"])
    ctx.timings["total"] = time.perf_counter() - t0
    results = {
        "schema": SCHEMA, "run_id": str(ctx.info.get("run_id", ctx.root.name)),
        "suite_hash": (ctx.info.get("suite") or {}).get("hash"),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "evaluators": ctx.evaluators, "methodology": ctx.methodology,
        "aggregates": json.loads(agg_df.to_json(orient="records")),
        "reference": ctx.reference_info, "config": json.loads(cfg.to_json()),
        "timings_s": {k: round(v, 3) for k, v in ctx.timings.items()},
        "cache": {k: int(v) for k, v in dist.sum(dataclasses.asdict(cache.stats)).items()},
        "processes": dist.world_size,
        "fingerprint": stage_fingerprint(json.loads(cfg.to_json())),  # what ran; files the config names
    }
    out = ctx.root / "scores"

    def write():
        out.mkdir(exist_ok=True)
        atomic_write_parquet(out / "items.parquet", items_df)
        atomic_write_parquet(out / "aggregates.parquet", agg_df)
        atomic_write_json(out / "results.json", results)
        clear_marker(ctx.root)

    dist.on_main(write)
    return {**results, "items": items_df, "aggregates_df": agg_df}


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"


def format_table(agg) -> str:
    """Aggregates (a DataFrame or results.json records) as an aligned text table."""
    agg = pd.DataFrame(agg) if not isinstance(agg, pd.DataFrame) else agg
    rows = [("metric", "group", "value", "95% CI", "n prompts", "n images")]
    for r in agg.itertuples():
        ci = "—" if r.ci_low is None or math.isnan(r.ci_low) else f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        rows.append((r.metric, r.group, _fmt(r.value), ci, str(r.n_prompts), str(r.n_images)))
    w = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w[i]) if i < 2 or i == 3 else c.rjust(w[i]) for i, c in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)
