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
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import InputError
from . import distributed
from .adapters import GeneratorSpec, config_hash, load_generator
from .io import (
    Journal,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    fsync_dir,
    remove_temp_files,
    sha256_bytes,
    sha256_file,
)
from .locking import RunLock
from .suites import PromptSpec, PromptSuite, load_suite

RUN_SCHEMA = "t2i-audit/run/1"
IDENTITY_KEYS = ("suite", "generator", "params", "seed_policy", "images_per_prompt", "limit")
MANIFEST_COLUMNS = ("prompt_id", "category", "template", "slots", "text", "tags", "expect", "seed",
                    "image_id", "path", "sha256", "width", "height", "seconds")


class RunMismatchError(InputError):
    """The run directory holds a run of another suite, generator or parameters."""


@dataclass
class SampleConfig:
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> SampleConfig:
        return SampleConfig(**json.loads(text))


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


def image_id(prompt_id: str, seed: int) -> str:
    return f"{prompt_id}-s{int(seed)}"


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


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


def _identity(suite: PromptSuite, gen, params: dict, ipp: int | None, limit: int | None) -> dict:
    cfg = gen.config()
    return {
        "suite": {"name": suite.name, "version": suite.version, "hash": suite.hash},
        "generator": {"id": gen.id, "kind": gen.kind, "config": cfg, "config_hash": config_hash(cfg)},
        "params": params,
        "seed_policy": suite.seed_policy.to_dict(),
        "images_per_prompt": ipp,
        "limit": limit,
    }


def _explain_mismatch(old: dict, new: dict, run_dir: Path) -> str:
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
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.width, im.height
    except Exception:  # noqa: BLE001 - any decode failure means "regenerate"
        return None


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
    atomic_write_parquet(run_dir / "manifest.parquet", df)


def sample(cfg: SampleConfig, *, suite: PromptSuite | None = None, generator=None) -> RunResult:
    """Generate (or resume) the run ``cfg.out``. ``suite``/``generator`` override the names in cfg.

    Launched sharded (accelerate launch / torchrun, see :mod:`.distributed`), every rank draws its
    strided share of the (prompt, seed) pairs into its own journal and rank 0 merges after a barrier.
    """
    dist = distributed.current()
    suite = suite or dist.agree(lambda: load_suite(cfg.suite))
    gen = generator or dist.agree(lambda: load_generator(GeneratorSpec.parse(cfg.generator)))
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise InputError(f"--batch-size {cfg.batch_size}: must be >= 1")
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
    from .locking import RunLockedError

    if not fresh or isinstance(error, RunLockedError) or not run_dir.is_dir():
        return
    images = run_dir / "images"
    if (images.is_dir() and any(images.iterdir())) or any(run_dir.glob("journal*.jsonl")):
        return
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def journal_name(dist) -> str:
    """Each rank of a sharded run appends to its own journal; rank 0 folds them into journal.jsonl."""
    return "journal.jsonl" if not dist.sharded else f"journal.rank{dist.rank}.jsonl"


def _journal_files(run_dir: Path) -> list[Path]:
    """journal.jsonl first, then rank journals left by a sharded run, so the newest record wins."""
    shards = sorted(run_dir.glob("journal.rank*.jsonl"), key=lambda p: (len(p.name), p.name))
    return [run_dir / "journal.jsonl", *shards]


def _sample_locked(cfg: SampleConfig, suite: PromptSuite, gen, run_dir: Path, lock: RunLock, dist) -> RunResult:
    from tqdm import tqdm

    t0 = time.perf_counter()
    images_dir = run_dir / "images"
    batch_size = cfg.batch_size or distributed.device_settings(dist).sample_batch

    def prelude() -> dict:  # rank 0, before any rank writes
        remove_temp_files(run_dir)
        remove_temp_files(images_dir)
        ident = _identity(suite, gen, dict(cfg.params), cfg.images_per_prompt, cfg.limit)
        run_json = run_dir / "run.json"
        if run_json.is_file():
            try:
                old = json.loads(run_json.read_text())
            except ValueError:
                raise InputError(f"{run_json}: not valid JSON; delete the run directory and sample again") from None
            if {k: old.get(k) for k in IDENTITY_KEYS} != json.loads(json.dumps(ident, default=str)):
                raise RunMismatchError(_explain_mismatch(old, ident, run_dir))
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

    meta = dist.on_main(prelude)

    plan = suite.plan(cfg.images_per_prompt, cfg.limit)
    n_missing = 0
    if hasattr(gen, "prepare"):
        covered = gen.prepare([(p.text, s) for p, s in plan])
        missing = [(p, s) for (p, s), ok in zip(plan, covered) if not ok]
        if missing and not cfg.skip_missing:
            ex = "; ".join(f"{p.text!r} seed {s}" for p, s in missing[:3])
            raise InputError(f"{gen.id}: no image for {len(missing)} of {len(plan)} planned (prompt, seed) "
                             f"pairs (e.g. {ex}); add them, or pass --skip-missing to sample the rest")
        n_missing = len(missing)
        plan = [ps for ps, ok in zip(plan, covered) if ok]

    # This rank's share; what is already on disk: journal records whose image checks out, and
    # complete orphan images.
    planned = {image_id(p.prompt_id, s): (p, s) for p, s in dist.shard(plan)}
    records: dict[str, dict] = {}
    n_regen = 0
    for jf in _journal_files(run_dir):
        for rec in Journal.read(jf):
            if rec.get("image_id") in planned:
                records[rec["image_id"]] = rec
    for iid in list(records):
        path = run_dir / records[iid]["path"]
        if not path.is_file() or sha256_file(path) != records[iid]["sha256"]:
            del records[iid]
            path.unlink(missing_ok=True)  # changed after it was written: never adopt it
            n_regen += 1
    journal = Journal(run_dir / journal_name(dist)).open()
    n_adopted = n_reused = 0

    def generate() -> list:
        nonlocal n_adopted, n_reused
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
            n_adopted += 1
        n_reused = len(records) - n_adopted
        todo = [(p, s) for iid, (p, s) in planned.items() if iid not in records]
        desc = f"sample {suite.name}" + (f" [rank {dist.rank}/{dist.world_size}]" if dist.sharded else "")
        bar = tqdm(total=len(planned), initial=len(planned) - len(todo), unit="img", desc=desc,
                   disable=not cfg.progress or not dist.is_main, dynamic_ncols=True)
        params = dict(cfg.params)
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
        bar.close()
        return todo

    try:
        todo = dist.agree(generate)
    finally:
        journal.close()
        fsync_dir(images_dir)

    # Merge: every rank's records and counts reach rank 0, which writes the manifest in suite order.
    counts = (len(todo), n_reused, n_adopted, n_regen)
    shares = dist.all_gather((records, counts))

    def merge() -> dict:
        merged: dict[str, dict] = {}
        for recs, _ in shares:
            merged.update(recs)
        write_manifest(run_dir, manifest_rows(plan, merged))
        shard_journals = _journal_files(run_dir)[1:]
        if shard_journals:  # fold rank journals into journal.jsonl, then drop them
            body = "".join(json.dumps(merged[image_id(p.prompt_id, s)], sort_keys=True) + "\n"
                           for p, s in plan if image_id(p.prompt_id, s) in merged)
            atomic_write_bytes(run_dir / "journal.jsonl", body.encode("utf-8"))
            for jf in shard_journals:
                jf.unlink(missing_ok=True)
        meta.update(status="complete", n_planned=len(plan) + n_missing, n_images=len(merged),
                    n_missing=n_missing, completed=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        atomic_write_json(run_dir / "run.json", meta)
        return meta

    meta = dist.on_main(merge)
    tot = [sum(c[i] for _, c in shares) for i in range(4)]
    return RunResult(run_dir=str(run_dir), run_id=meta["run_id"], n_planned=len(plan) + n_missing,
                     n_images=int(meta["n_images"]), n_generated=tot[0], n_reused=tot[1], n_adopted=tot[2],
                     n_regenerated=tot[3], n_missing=n_missing, seconds=time.perf_counter() - t0,
                     stale_lock=lock.recovered)


def read_run_json(path: str | Path) -> dict:
    """run.json as a dict; refuses a file that does not parse or has another schema version."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: not valid JSON; re-run `t2i-audit sample` into a new --out") from None
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if schema != RUN_SCHEMA:
        raise InputError(f"{path}: schema {schema!r} is not {RUN_SCHEMA!r} (this is t2i-audit {__version__}); "
                         f"read it with the version that wrote it, or sample the run again")
    return meta


def load_run(run_dir: str | Path, *, require_complete: bool = True):
    """Read a run directory: (run.json as a dict, manifest as a DataFrame)."""
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
        return meta, pd.read_parquet(mf)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{mf}: unreadable ({str(e)[:80]}); re-run `t2i-audit sample` with the same options "
                         "to rebuild it") from None
