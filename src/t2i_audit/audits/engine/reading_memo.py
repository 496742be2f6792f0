"""In-process memo of the per-image work the audits repeat: oracle readings and evaluator embeddings.

In one process the audits read the same images several times: the bias audit's two oracle probes,
its two zero-shot CLIP probes and their calibration-shift check, then the diversity audit's two
oracle probes and its feature embeddings. This memo does each reading once. Like the on-disk
embedding cache (``evals.features.cache``) it keys by *content* -- a hash of an image's mode, size
and pixel bytes (dtype, shape and bytes of an array), never a path or an ``id()`` -- plus the reader
or extractor that produced the value (a never-reused token held while that object lives).

Exact by construction: a CLIP's output for one image depends, at float32 round-off, on the other
images in its forward batch, so embeddings are memoised per forward batch -- the chunks of
``extractor.batch_size`` images ``embed_images`` itself forms (every extractor in
``evals.features`` embeds its input in independent chunks of that size; one without ``batch_size``
is memoised per whole call) -- and a memoised call returns bit for bit what
``extractor.embed_images(images)`` returns.

Bounded: least-recently-used entries are dropped past a count (and, for embeddings, a byte) limit.
Safe to share: stored arrays are read-only and every call returns a fresh array or a deep copy.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

_MISSING = object()


class LRUMemo:
    """A thread-safe map that forgets its least recently used entries past ``max_entries`` (and past
    ``max_bytes`` of array values, counted by ``nbytes``)."""

    def __init__(self, max_entries: int, max_bytes: int | None = None):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._data: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, default=None):
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            old = self._data.pop(key, _MISSING)
            if old is not _MISSING:
                self._bytes -= getattr(old, "nbytes", 0)
            self._data[key] = value
            self._bytes += getattr(value, "nbytes", 0)
            while len(self._data) > self.max_entries or (
                    self.max_bytes is not None and self._bytes > self.max_bytes and len(self._data) > 1):
                _, dropped = self._data.popitem(last=False)
                self._bytes -= getattr(dropped, "nbytes", 0)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


READINGS = LRUMemo(max_entries=16_384)  # oracle readings: a few kB each
EMBEDDINGS = LRUMemo(max_entries=2_048, max_bytes=256 << 20)  # forward batches of embeddings

_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NEXT_TOKEN = itertools.count()
_TOKEN_LOCK = threading.Lock()


def owner_token(owner) -> int | None:
    """A number naming ``owner`` (a reader or extractor) for as long as it lives, never reused; None
    for an object that cannot be weakly referenced or hashed (its results are then not memoised)."""
    with _TOKEN_LOCK:
        try:
            token = _TOKENS.get(owner)
            if token is None:
                token = _TOKENS[owner] = next(_NEXT_TOKEN)
        except TypeError:
            return None
    return token


def content_key(image) -> bytes | None:
    """Digest of an image's content: a PIL image's mode, size, pixel bytes (and palette and
    transparency, which its conversions read); a numeric array's dtype, shape and bytes. None for
    anything else (not memoised)."""
    if isinstance(image, np.ndarray):
        if image.dtype.hasobject:
            return None
        h = hashlib.blake2b(f"array|{image.dtype.str}|{image.shape}".encode(), digest_size=20)
        h.update(np.ascontiguousarray(image).tobytes())
        return h.digest()
    if not all(hasattr(image, a) for a in ("mode", "size", "tobytes", "getpalette", "info")):
        return None
    h = hashlib.blake2b(f"pil|{image.mode}|{tuple(image.size)}".encode(), digest_size=20)
    h.update(image.tobytes())
    if image.mode in ("P", "PA"):
        h.update(bytes(image.getpalette() or []))
    h.update(repr(image.info.get("transparency")).encode())
    return h.digest()


def memo_read(reader: Callable, image):
    """``reader(image)``, computed once per (reader, image content); returns a deep copy, so a caller
    that edits its result leaves the memo intact."""
    token, key = owner_token(reader), content_key(image)
    if token is None or key is None:
        return reader(image)
    value = READINGS.get((token, key), _MISSING)
    if value is _MISSING:
        value = reader(image)
        READINGS.put((token, key), value)
    return copy.deepcopy(value)


def _as_array(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def memo_embed_images(extractor, images: Sequence) -> np.ndarray:
    """``extractor.embed_images(images)`` as a numpy array (float32 for the bundled extractors),
    bit for bit, each forward batch embedded once per (extractor, content of its images)."""
    images = list(images)
    token = owner_token(extractor)
    keys = [content_key(im) for im in images] if token is not None else [None]
    if not images or any(k is None for k in keys):
        return _as_array(extractor.embed_images(images)).copy()
    size = getattr(extractor, "batch_size", None)
    size = size if isinstance(size, int) and size > 0 else len(images)
    out = []
    for s in range(0, len(images), size):
        h = hashlib.blake2b(b"".join(keys[s:s + size]), digest_size=20)
        key = (token, len(keys[s:s + size]), h.digest())
        value = EMBEDDINGS.get(key)
        if value is None:
            value = _as_array(extractor.embed_images(images[s:s + size])).copy()
            value.setflags(write=False)
            EMBEDDINGS.put(key, value)
        out.append(value)
    return np.concatenate(out)


def clear() -> None:
    """Forget every memoised reading and embedding."""
    READINGS.clear()
    EMBEDDINGS.clear()
