"""Content-addressed embedding cache: (content sha256, extractor id) → float32 vector.

One SQLite database (WAL mode) under the cache directory holds every embedding as a raw float32
blob. SQLite gives atomic commits and many concurrent readers with one writer, so runs scored in
parallel can share the cache safely; a failed write leaves the previous state. Keys are content
hashes (an image's PNG bytes, or ``text:`` + a caption), never paths, so re-scoring a run, or
scoring two runs that share images, never embeds the same content twice for one extractor.

Directory: the ``directory`` argument, else ``$T2I_AUDIT_CACHE``, else
``~/.cache/t2i-audit/embeddings``. Reference-set statistics (Fréchet moments) are stored as
``.npz`` files beside the database, written atomically.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2i_audit.core.io import atomic_write_bytes
from t2i_audit.errors import InputError

ENV_VAR = "T2I_AUDIT_CACHE"
DB_NAME = "embeddings.sqlite"


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "t2i-audit" / "embeddings"


def text_key(text: str) -> str:
    """Cache key of a caption: sha256 of ``text:`` + the UTF-8 text."""
    return hashlib.sha256(b"text:" + text.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        block = f.read(chunk)
        h = hashlib.sha256(block)
        while len(block) == chunk:  # files under one chunk (images) take a single read
            block = f.read(chunk)
            h.update(block)
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    forward_passes: int = 0  # batches sent through a feature extractor
    embedded: int = 0  # items embedded (images + texts)

    def line(self) -> str:
        return (f"cache: {self.hits} hits, {self.misses} misses, {self.forward_passes} forward passes "
                f"({self.embedded} items embedded)")


class EmbeddingCache:
    """Get and put embeddings by (key, extractor id). ``enabled=False`` keeps nothing on disk
    but still counts misses and forward passes, so the caller's code path is the same."""

    def __init__(self, directory: str | Path | None = None, *, enabled: bool = True):
        self.enabled = enabled
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self.stats = CacheStats()
        self._con: sqlite3.Connection | None = None

    # -- storage ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                con = self._open_with_retry()
            except (OSError, sqlite3.Error) as e:
                raise InputError(f"embedding cache {self.directory}: cannot open ({e}); set --cache-dir or "
                                 f"${ENV_VAR} to a writable folder, or pass --no-cache") from e
            self._con = con
        return self._con

    def _open_with_retry(self, attempts: int = 200) -> sqlite3.Connection:
        """Open the database. Switching a new database to WAL takes an exclusive lock that SQLite's
        busy timeout does not cover, so processes opening the same new cache at once (sharded
        runs) retry briefly instead of failing with "database is locked"."""
        import time

        for i in range(attempts):
            con = sqlite3.connect(self.directory / DB_NAME, timeout=60.0, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("CREATE TABLE IF NOT EXISTS emb (extractor TEXT NOT NULL, key TEXT NOT NULL, "
                            "dim INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (extractor, key))")
                return con
            except sqlite3.OperationalError as e:
                con.close()
                if "locked" not in str(e) or i == attempts - 1:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def get_many(self, extractor_id: str, keys: list[str]) -> dict[str, np.ndarray]:
        """Embeddings found for ``keys`` (a dict; absent keys are misses). Counts hits/misses."""
        found: dict[str, np.ndarray] = {}
        if self.enabled and keys:
            con = self._db()
            uniq = list(dict.fromkeys(keys))
            for i in range(0, len(uniq), 500):
                chunk = uniq[i:i + 500]
                q = f"SELECT key, dim, data FROM emb WHERE extractor=? AND key IN ({','.join('?' * len(chunk))})"
                for key, dim, data in con.execute(q, [extractor_id, *chunk]):
                    v = np.frombuffer(data, dtype=np.float32)
                    if v.size == dim:
                        found[key] = v
        hits = sum(1 for k in keys if k in found)
        self.stats.hits += hits
        self.stats.misses += len(keys) - hits
        return found

    def put_many(self, extractor_id: str, items: dict[str, np.ndarray]) -> None:
        if not self.enabled or not items:
            return
        rows = []
        for key, v in items.items():
            a = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
            rows.append((extractor_id, key, int(a.size), a.tobytes()))
        con = self._db()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("INSERT OR REPLACE INTO emb (extractor, key, dim, data) VALUES (?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def count(self, extractor_id: str | None = None) -> int:
        if not self.enabled:
            return 0
        con = self._db()
        if extractor_id is None:
            return int(con.execute("SELECT COUNT(*) FROM emb").fetchone()[0])
        return int(con.execute("SELECT COUNT(*) FROM emb WHERE extractor=?", (extractor_id,)).fetchone()[0])

    # -- reference statistics ----------------------------------------------------------------
    def _stats_path(self, name: str) -> Path:
        safe = hashlib.sha256(name.encode()).hexdigest()[:32]
        return self.directory / "stats" / f"{safe}.npz"

    def get_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        """Arrays stored under ``name`` (e.g. reference moments per (reference hash, extractor))."""
        if not self.enabled:
            return None
        p = self._stats_path(name)
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def put_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        p = self._stats_path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(p, buf.getvalue(), fsync=False)


def embed_cached(cache: EmbeddingCache, extractor_id: str, keys: list[str], load, embed,
                 batch_size: int = 64, progress: bool = False, desc: str = "embed") -> np.ndarray:
    """Embeddings (N, D) float32 for ``keys``, embedding only cache misses.

    ``load(i)`` returns the input for item ``i`` (a PIL image or a caption); ``embed(list)``
    returns a (B, D) tensor/array. Each call of ``embed`` counts as one forward pass.
    """
    from tqdm import tqdm

    found = cache.get_many(extractor_id, keys)
    todo: list[int] = []
    seen: set[str] = set()
    for i, k in enumerate(keys):
        if k not in found and k not in seen:
            todo.append(i)
            seen.add(k)
    new: dict[str, np.ndarray] = {}
    with tqdm(total=len(todo), desc=desc, unit="item", disable=not progress or not todo) as bar:
        for s in range(0, len(todo), batch_size):
            idx = todo[s:s + batch_size]
            out = embed([load(i) for i in idx])
            out = out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
            out = out.astype(np.float32, copy=False)
            if not np.all(np.isfinite(out)):
                raise InputError(f"feature extractor {extractor_id}: produced NaN/Inf features; check the "
                                 "weights file (a corrupt or half-trained checkpoint gives this)")
            cache.stats.forward_passes += 1
            cache.stats.embedded += len(idx)
            batch = {keys[i]: out[j] for j, i in enumerate(idx)}
            cache.put_many(extractor_id, batch)
            new.update(batch)
            bar.update(len(idx))
    found.update(new)
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[k] for k in keys])
