"""Helpers every feature extractor shares: weights files and their hashes, images to uint8."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from t2i_audit.errors import InputError


def weights_hash(*paths: str | Path, n: int = 12) -> str:
    """sha256 over the bytes of the given files (in order), first ``n`` hex digits."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:n]


def _need_file(path: str, what: str, fix: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{what} {path!r}: no such file; {fix}")
    return p


def images_to_uint8(images: list, size: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 from PIL images; if ``size`` is given, resize with PIL's antialiased
    bicubic filter and round to uint8 first (clean-fid, Parmar et al. 2022)."""
    from PIL import Image

    arrs = []
    for im in images:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC)  # PIL rounds to uint8
        arrs.append(np.asarray(im, dtype=np.uint8))
    return np.stack(arrs) if arrs else np.zeros((0, size or 0, size or 0, 3), np.uint8)
