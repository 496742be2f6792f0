"""Generation runs: sample a suite with a generator into a run directory that survives being killed.

Layout and columns: docs/results-schema.md. Each image is written atomically (temp file + fsync +
os.replace) and then recorded in ``journal.jsonl`` (one fsync'ed line per image). Re-running resumes:
journal records whose image file still has its sha256 are kept, a complete image file without a
record (killed between the two writes) is adopted, everything else is generated. ``manifest.parquet``
is rebuilt from the journal in suite order, so a SIGKILL at any moment loses at most the batch in
flight. One writer at a time (``.lock``); a directory holding another suite, generator or params is
refused.

Sharded (``accelerate launch`` / ``torchrun``, see :mod:`.distributed`): rank 0 holds the lock and
writes run.json; each rank draws its strided share into ``journal.rank<R>.jsonl``; after a barrier
rank 0 writes the manifest and folds the rank journals into ``journal.jsonl``. Resume reads every
journal, so a killed sharded run resumes with any number of processes.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import t2i_audit.evals.distributed.launch as distributed
from t2i_audit import __version__
from t2i_audit.core.config import ConfigBase
from t2i_audit.core.images import open_image
from t2i_audit.core.io import (
    Journal,
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    remove_temp_files,
    sha256_bytes,
    sha256_file,
)
from t2i_audit.errors import InputError
from t2i_audit.evals.adapters.registry import GeneratorSpec, load_generator, load_model
from t2i_audit.evals.runs.locking import RunLock
from t2i_audit.evals.runs.rundir import (  # noqa: F401 - re-exported: callers import the run format from here too
    IDENTITY_KEYS,
    MANIFEST_COLUMNS,
    RUN_JSON,
    RUN_SCHEMA,
    RunMismatchError,
    environment,
    explain_mismatch,
    git_hash,
    image_id,
    journal_files,
    journal_name,
    load_run,
    manifest_rows,
    read_run_json,
    run_identity,
    write_manifest,
)
from t2i_audit.evals.suites.loader import PromptSuite, check_suite_size, load_suite


@dataclass
class SampleConfig(ConfigBase):
    """Settings of ``t2i-audit sample``; round-trips through JSON."""

    suite: str
    out: str
    generator: str = "bundled"
    images_per_prompt: int | None = None
    limit: int | None = None
    batch_size: int | None = None  # None: per device (distributed.BATCH_SIZES)
    params: dict = field(default_factory=dict)
    skip_missing: bool = False
    progress: bool = True
    allow_large: bool = False  # plan more than evals.suites.loader.MAX_SUITE_IMAGES images
    allow_outside: bool = False  # a folder generator's CSV may name images outside its folder
    seed_offset: int = 0  # added to every planned seed (A/A runs of one checkpoint for `gate calibrate`)


@dataclass
class RunResult:
    run_dir: str
    run_id: str
    n_planned: int
    n_images: int
    n_generated: int
    n_reused: int
    n_adopted: int
    n_regenerated: int
    n_missing: int
    seconds: float
    stale_lock: dict | None = None


def _encode(img) -> tuple[bytes, int, int]:
    from PIL import Image

    if not isinstance(img, Image.Image):
        import numpy as np

        arr = np.asarray(img)
        if arr.dtype != np.uint8 or arr.ndim != 3:
            raise InputError(f"the generator returned {type(img).__name__} {getattr(arr, 'shape', '')}; "
                             f"expected PIL images (or HxWx3 uint8 arrays)")
        img = Image.fromarray(arr)
    if img.mode != "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue(), img.width, img.height


def _image_ok(path: Path) -> tuple[int, int] | None:

    try:
        with open_image(path) as im:
            im.load()
            return im.width, im.height
    except Exception:  # noqa: BLE001 - any decode failure means "regenerate"
        return None


def sample(cfg: SampleConfig, *, suite: PromptSuite | None = None, generator=None) -> RunResult:
    """Generate (or resume) the run ``cfg.out``. ``suite``/``generator`` override the names in cfg.

    Launched sharded (accelerate launch / torchrun, see :mod:`.distributed`), every rank draws its
    strided share of the (prompt, seed) pairs into its own journal and rank 0 merges after a barrier.
    """
    dist = distributed.current()
    suite = suite or dist.agree(lambda: load_suite(cfg.suite))
    check_suite_size(suite, cfg.images_per_prompt, cfg.limit, allow_large=cfg.allow_large)
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise InputError(f"--batch-size {cfg.batch_size}: must be >= 1")
    gen = generator or dist.agree(lambda: load_generator(GeneratorSpec.parse(cfg.generator),
                                                                allow_outside=cfg.allow_outside))
    # The model is loaded (and refused) before the run directory is created or touched.
    dist.agree(lambda: load_model(gen, cfg.params))
    run_dir = Path(cfg.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir}: exists and is not a directory")
    if not dist.sharded:
        fresh = not run_dir.exists()
        try:
            with RunLock(run_dir) as lock:
                return _sample_locked(cfg, suite, gen, run_dir, lock, dist)
        except InputError as e:
            _discard_if_untouched(run_dir, fresh, e)
            raise
    # One job, one writer: rank 0 holds the run lock for all ranks.
    lock = RunLock(run_dir, purpose=f"sample ({dist.world_size} ranks)")
    dist.on_main(lambda: lock.acquire() and None)
    try:
        return _sample_locked(cfg, suite, gen, run_dir, lock, dist)
    finally:
        lock.release()  # a no-op on ranks other than 0


def _discard_if_untouched(run_dir: Path, fresh: bool, error: InputError) -> None:
    """A new run refused before its first image (e.g. a folder generator missing files) leaves no
    directory behind; any run with images, or a directory that existed before, is kept."""
    from t2i_audit.evals.runs.locking import RunLockedError

    if not fresh or isinstance(error, RunLockedError) or not run_dir.is_dir():
        return
    images = run_dir / "images"
    if (images.is_dir() and any(images.iterdir())) or any(j.stat().st_size for j in run_dir.glob("journal*.jsonl")):
        return
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def _prelude(cfg: SampleConfig, suite: PromptSuite, gen, run_dir: Path, batch_size: int, dist) -> dict:
    """Rank 0, before any rank writes: check or create run.json and mark the run as running."""
    images_dir = run_dir / "images"
    remove_temp_files(run_dir)
    remove_temp_files(images_dir)
    ident = run_identity(suite, gen, dict(cfg.params), cfg.images_per_prompt, cfg.limit, cfg.seed_offset)
    run_json = run_dir / RUN_JSON
    if run_json.is_file():
        old = read_run_json(run_json)  # the one contract: a run.json of another schema is refused
        if {k: old.get(k) for k in IDENTITY_KEYS} != json.loads(json.dumps(ident, default=str)):
            raise RunMismatchError(explain_mismatch(old, ident, run_dir))
        meta = old
    else:
        others = [p.name for p in run_dir.iterdir() if not p.name.startswith(".lock")]
        if others:
            raise InputError(f"--out {run_dir}: not empty and has no run.json ({', '.join(sorted(others)[:5])}); "
                             f"choose a new or empty directory")
        blob = json.dumps(ident, sort_keys=True, default=str).encode()
        meta = {"schema": RUN_SCHEMA, "run_id": f"{suite.name}-{sha256_bytes(blob)[:12]}", **ident,
                "package_version": __version__, "git_hash": git_hash(), "environment": environment(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    ds = distributed.device_settings(dist)
    meta.update(status="running", batch_size=batch_size, processes=dist.world_size, device=ds.kind,
                dtype=ds.dtype)
    images_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_json, meta)
    return meta


def _covered_plan(cfg: SampleConfig, gen, plan: list) -> tuple[list, int]:
    """The plan without the (prompt, seed) pairs a prepared generator (e.g. a folder) has no image
    for, and how many those are; an error unless ``--skip-missing``."""
    if not hasattr(gen, "prepare"):
        return plan, 0
    covered = gen.prepare([(p.text, s) for p, s in plan])
    missing = [(p, s) for (p, s), ok in zip(plan, covered) if not ok]
    if missing and not cfg.skip_missing:
        ex = "; ".join(f"{p.text!r} seed {s}" for p, s in missing[:3])
        raise InputError(f"{gen.id}: no image for {len(missing)} of {len(plan)} planned (prompt, seed) "
                         f"pairs (e.g. {ex}); add them, or pass --skip-missing to sample the rest")
    return [ps for ps, ok in zip(plan, covered) if ok], len(missing)


def _journal_records(run_dir: Path, planned: dict) -> tuple[dict[str, dict], int]:
    """What is already on disk for this rank's share: journal records whose image checks out; images
    changed after they were written are deleted (never adopted) and counted for regeneration."""
    records: dict[str, dict] = {}
    n_regen = 0
    for jf in journal_files(run_dir):
        for rec in Journal.read(jf):
            if rec.get("image_id") in planned:
                records[rec["image_id"]] = rec
    for iid in list(records):
        path = run_dir / records[iid]["path"]
        if not path.is_file() or sha256_file(path) != records[iid]["sha256"]:
            del records[iid]
            path.unlink(missing_ok=True)
            n_regen += 1
    return records, n_regen


def _adopt_orphans(planned: dict, records: dict, images_dir: Path, journal: Journal) -> int:
    """Complete images on disk that the journal does not list (a crash between the write and the
    journal line) are adopted; broken ones are deleted."""
    n = 0
    for iid in planned:
        path = images_dir / f"{iid}.png"
        if iid in records or not path.is_file():
            continue
        size = _image_ok(path)
        if size is None:
            path.unlink()
            continue
        rec = {"image_id": iid, "path": f"images/{iid}.png", "sha256": sha256_file(path),
               "width": size[0], "height": size[1], "seconds": None, "adopted": True}
        journal.append(rec)
        records[iid] = rec
        n += 1
    return n


def _draw_batches(gen, todo: list, batch_size: int, params: dict, images_dir: Path, journal: Journal,
                  records: dict, bar) -> None:
    """Generate ``todo`` in batches; each image is written atomically, then journalled."""
    for b in range(0, len(todo), batch_size):
        batch = todo[b:b + batch_size]
        t = time.perf_counter()
        images = gen([p.text for p, _ in batch], [s for _, s in batch], params)
        if len(images) != len(batch):
            raise InputError(f"{gen.id}: returned {len(images)} images for {len(batch)} prompts")
        per = (time.perf_counter() - t) / len(batch)
        for (p, s), img in zip(batch, images):
            data, w, h = _encode(img)
            iid = image_id(p.prompt_id, s)
            atomic_write_bytes(images_dir / f"{iid}.png", data, sync_dir=False)
            rec = {"image_id": iid, "path": f"images/{iid}.png", "sha256": sha256_bytes(data),
                   "width": w, "height": h, "seconds": round(per, 6)}
            journal.append(rec, sync=False)
            records[iid] = rec
        journal.sync()
        bar.update(len(batch))


def _merge(run_dir: Path, plan: list, shares: list, meta: dict, n_missing: int) -> dict:
    """Rank 0: every rank's records into the manifest (suite order) and journal.jsonl; run.json complete."""
    merged: dict[str, dict] = {}
    for recs, _ in shares:
        merged.update(recs)
    write_manifest(run_dir, manifest_rows(plan, merged))
    shard_journals = journal_files(run_dir)[1:]
    if shard_journals:  # fold rank journals into journal.jsonl, then drop them
        body = "".join(json.dumps(merged[image_id(p.prompt_id, s)], sort_keys=True) + "\n"
                       for p, s in plan if image_id(p.prompt_id, s) in merged)
        atomic_write_bytes(run_dir / "journal.jsonl", body.encode("utf-8"))
        for jf in shard_journals:
            jf.unlink(missing_ok=True)
    meta.update(status="complete", n_planned=len(plan) + n_missing, n_images=len(merged),
                n_missing=n_missing, completed=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(run_dir / RUN_JSON, meta)
    return meta


def default_batch_size(gen, params: dict | None, dist) -> int:
    """Prompts per generator call: the device's default, or the adapter's ``batch_hint`` where larger."""
    hint = getattr(gen, "batch_hint", None)
    return max(distributed.device_settings(dist).sample_batch, int(hint(params or {})) if callable(hint) else 0)


def _sample_locked(cfg: SampleConfig, suite: PromptSuite, gen, run_dir: Path, lock: RunLock, dist) -> RunResult:
    from tqdm import tqdm

    t0 = time.perf_counter()
    images_dir = run_dir / "images"
    batch_size = cfg.batch_size or default_batch_size(gen, cfg.params, dist)
    meta = dist.on_main(lambda: _prelude(cfg, suite, gen, run_dir, batch_size, dist))
    plan = [(p, s + cfg.seed_offset) for p, s in suite.plan(cfg.images_per_prompt, cfg.limit)]
    plan, n_missing = _covered_plan(cfg, gen, plan)
    planned = {image_id(p.prompt_id, s): (p, s) for p, s in dist.shard(plan)}
    records, n_regen = _journal_records(run_dir, planned)
    journal = Journal(run_dir / journal_name(dist)).open()
    counts = {}

    def generate() -> list:
        counts["adopted"] = _adopt_orphans(planned, records, images_dir, journal)
        counts["reused"] = len(records) - counts["adopted"]
        todo = [(p, s) for iid, (p, s) in planned.items() if iid not in records]
        desc = f"sample {suite.name}" + (f" [rank {dist.rank}/{dist.world_size}]" if dist.sharded else "")
        bar = tqdm(total=len(planned), initial=len(planned) - len(todo), unit="img", desc=desc,
                   disable=not cfg.progress or not dist.is_main, dynamic_ncols=True)
        _draw_batches(gen, todo, batch_size, dict(cfg.params), images_dir, journal, records, bar)
        bar.close()
        return todo

    try:
        todo = dist.agree(generate)
    finally:
        journal.close()
        fsync_dir(images_dir)
    # Merge: every rank's records and counts reach rank 0, which writes the manifest in suite order.
    shares = dist.all_gather((records, (len(todo), counts.get("reused", 0), counts.get("adopted", 0), n_regen)))
    meta = dist.on_main(lambda: _merge(run_dir, plan, shares, meta, n_missing))
    tot = [sum(c[i] for _, c in shares) for i in range(4)]
    return RunResult(run_dir=str(run_dir), run_id=meta["run_id"], n_planned=len(plan) + n_missing,
                     n_images=int(meta["n_images"]), n_generated=tot[0], n_reused=tot[1], n_adopted=tot[2],
                     n_regenerated=tot[3], n_missing=n_missing, seconds=time.perf_counter() - t0,
                     stale_lock=lock.recovered)
