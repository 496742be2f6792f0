"""Model directories named by a generator spec: the existence check and the content fingerprint
recorded in run.json (checkpoint and diffusers adapters alike)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from t2i_audit.core.io import sha256_file
from t2i_audit.errors import InputError


def dir_fingerprint(path: str | Path, *, hash_limit: int = 64 << 20) -> str:
    """A content fingerprint of a model directory: sha256 of every file up to ``hash_limit`` bytes,
    and (name, size) of larger ones (hashing multi-GB weights on every run would be too slow)."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel or "__pycache__" in rel:
            continue
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= hash_limit:
            h.update(sha256_file(p).encode())
    return h.hexdigest()[:16]


def check_dir(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(f"{what} {path!r}: no such directory")
    return p.resolve()
