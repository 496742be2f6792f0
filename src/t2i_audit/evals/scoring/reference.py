"""Reference image sets for distribution metrics (FD, KID, CMMD): a folder, or PictoWorld renders.

A reference set is a list of images addressed by the sha256 of their PNG/JPEG bytes; its hash is
the sha256 of those hashes in order, so reference statistics can be cached per
(reference set hash, extractor id) and any change to the set changes the key.

- ``world``: ``n`` PictoWorld scenes from the training distribution (default scene-kind mix and
  bias spec), rendered in memory at the run's image size from ``seed``.
- ``DIR``: a run directory or PictoWorld data set (``manifest.parquet`` with ``path``/``file``),
  or any folder of .png/.jpg/.jpeg/.webp images (sorted by name).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from t2i_audit.core.images import ImageTooLargeError, open_image
from t2i_audit.core.rundir import listed_images
from t2i_audit.errors import InputError
from t2i_audit.evals.features.cache import EmbeddingCache, embed_cached, file_sha256
from t2i_audit.evals.metrics.distribution import GaussianMoments

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class ReferenceSet:
    kind: str  # 'world' or 'folder'
    description: str
    keys: list[str]  # sha256 of each image's encoded bytes
    load: Callable[[int], Image.Image] = field(repr=False)

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def hash(self) -> str:
        return hashlib.sha256("\n".join(self.keys).encode()).hexdigest()[:16]

    def info(self) -> dict:
        return {"kind": self.kind, "description": self.description, "n": self.n, "hash": self.hash}


def world_reference(n: int = 1000, seed: int = 0, size: int = 32, bias_spec: str = "default") -> ReferenceSet:
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.dataset import iter_scenes
    from t2i_audit.world.render import RENDERER_VERSION, render

    if n < 2:
        raise InputError(f"--reference-n {n}: a reference set needs at least 2 images")
    spec = BiasSpec.load(bias_spec)
    blobs: list[bytes] = []
    for _, scene in iter_scenes(n, seed, spec):
        buf = io.BytesIO()
        render(scene, size).save(buf, format="PNG", compress_level=1)
        blobs.append(buf.getvalue())
    keys = [hashlib.sha256(b).hexdigest() for b in blobs]
    desc = (f"PictoWorld renders: {n} scenes of the training distribution, seed {seed}, {size}x{size}, "
            f"bias spec {spec.name} {spec.hash}, renderer v{RENDERER_VERSION}")
    return ReferenceSet("world", desc, keys, lambda i: Image.open(io.BytesIO(blobs[i])).convert("RGB"))


def image_files(d: str | Path) -> list[str]:
    """Image files under ``d`` (any depth, not following directory links, names starting with '.'
    skipped) as path strings, in path order (component by component, as ``sorted`` orders ``Path``
    objects). Plain ``os.walk`` and strings: pathlib's rglob, Path objects and their comparisons
    cost more than hashing the files on a warm re-score."""
    found: list[tuple[tuple[str, ...], str]] = []
    for root, _, files in os.walk(d):
        rel = os.path.relpath(root, d)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        prefix = os.path.join(root, "")
        for f in files:
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES):
                found.append(((*parts, f), prefix + f))
    found.sort(key=lambda t: t[0])
    return [name for _, name in found]


def folder_reference(directory: str | Path) -> ReferenceSet:
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise InputError(f"--reference {directory}: no such folder; give an image folder, a run or data set "
                         "directory, or 'world'")
    paths: list[str]
    listed = listed_images(d)
    if listed is not None:
        paths = [os.path.join(d, p) for p in listed]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise InputError(f"--reference {directory}: {len(missing)} listed image(s) are missing, e.g. {missing[0]}")
    else:
        paths = image_files(d)
    if len(paths) < 2:
        raise InputError(f"--reference {directory}: {len(paths)} image(s) found; a reference set needs at least 2")
    try:
        keys = [file_sha256(p) for p in paths]
    except OSError as e:  # e.g. a dangling link, or a file removed meanwhile
        raise InputError(f"--reference {directory}: cannot read {e.filename} ({e.strerror}); remove or "
                         "restore it") from None

    def load(i: int) -> Image.Image:
        try:
            with open_image(paths[i], "reference image") as im:
                return im.convert("RGB")
        except ImageTooLargeError:
            raise
        except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
            raise InputError(f"--reference {directory}: image {paths[i]} does not decode ({str(e)[:80]}); "
                             "remove or re-export it") from None

    return ReferenceSet("folder", f"{len(paths)} images from {d}", keys, load)


def load_reference(spec: str, *, n: int = 1000, seed: int = 0, size: int = 32) -> ReferenceSet:
    return world_reference(n, seed, size) if spec == "world" else folder_reference(spec)


def reference_features(ref: ReferenceSet, extractor, cache: EmbeddingCache, *, batch_size: int = 64,
                       progress: bool = False) -> np.ndarray:
    return embed_cached(cache, extractor.id, ref.keys, ref.load, extractor.embed_images,
                        batch_size=batch_size, progress=progress, desc="embed reference")


def reference_moments(ref: ReferenceSet, extractor, cache: EmbeddingCache, feats: np.ndarray | None = None,
                      **kw) -> GaussianMoments:
    """Fréchet moments of the reference set, cached per (reference hash, extractor id)."""
    name = f"moments|{ref.hash}|{extractor.id}"
    got = cache.get_arrays(name)
    if got is not None:
        return GaussianMoments.from_arrays(got)
    if feats is None:
        feats = reference_features(ref, extractor, cache, **kw)
    m = GaussianMoments.of(feats)
    cache.put_arrays(name, m.to_arrays())
    return m
