"""Build a Hugging Face hub cache on disk, in the hub's own layout, from a local model folder:
``models--ORG--NAME/{refs/REVISION, snapshots/COMMIT/<files as relative links>, blobs/<sha256>}``."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def add_to_cache(cache: Path, repo_id: str, source: Path, revision: str = "main") -> str:
    """Copy every file under ``source`` into ``cache`` as a snapshot of ``repo_id``; point
    ``refs/REVISION`` at it. Returns the (deterministic, content-derived) 40-hex commit."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    h = hashlib.sha1()
    for p in files:
        h.update(p.relative_to(source).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    commit = h.hexdigest()
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for p in files:
        blob = repo / "blobs" / hashlib.sha256(p.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(p, blob)
        link = repo / "snapshots" / commit / p.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs" / revision).write_text(commit)
    return commit
