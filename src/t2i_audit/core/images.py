"""Opening user and run images with a pixel limit checked from the header, before any decoding.

PIL reads only the header on ``Image.open``; ``.size`` is known before ``.load()`` decodes. A 30000 x
30000 PNG of a few kilobytes (a decompression bomb) would decode to 2.7 GB, so every image t2i-audit
reads (folder generators, ``score --reference DIR``, ``audit memorization --train DIR``, run images
for features and probes) goes through :func:`open_image`, which refuses an image with more than
:func:`max_image_pixels` pixels in one line naming the file. The limit is 100,000,000 pixels (a
10000 x 10000 image) unless ``$T2I_AUDIT_MAX_IMAGE_PIXELS`` sets another.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from t2i_audit.errors import InputError

MAX_IMAGE_PIXELS = 100_000_000
ENV_VAR = "T2I_AUDIT_MAX_IMAGE_PIXELS"


class ImageTooLargeError(InputError):
    """An image's header announces more pixels than the limit; it was not decoded."""


def max_image_pixels() -> int:
    """The pixel limit: ``$T2I_AUDIT_MAX_IMAGE_PIXELS`` or :data:`MAX_IMAGE_PIXELS`."""
    raw = os.environ.get(ENV_VAR, "").strip().replace("_", "")
    if not raw:
        return MAX_IMAGE_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise InputError(f"${ENV_VAR}={raw!r}: expected a whole number of pixels, e.g. 100000000") from None
    if value < 1:
        raise InputError(f"${ENV_VAR}={raw!r}: must be at least 1")
    return value


def check_image_size(size: tuple[int, int], path: str | Path, what: str = "image") -> None:
    """Refuse a (width, height) above the limit, naming ``path``."""
    w, h = int(size[0]), int(size[1])
    limit = max_image_pixels()
    if w * h > limit:
        raise ImageTooLargeError(f"{what} {path}: {w}x{h} = {w * h:,} pixels is more than the limit of {limit:,} pixels "
                                 f"(a decompression bomb?); shrink it, or raise ${ENV_VAR}")


@contextmanager
def open_image(path: str | Path, what: str = "image"):
    """``PIL.Image.open(path)`` as a context manager, refused (not decoded) above the pixel limit.

    PIL's own bomb check is aligned with the limit, so it never warns or raises its own error type.
    Other decode errors propagate as PIL raises them (``OSError``, ``SyntaxError``, ``ValueError``).
    """
    from PIL import Image

    limit = max_image_pixels()
    Image.MAX_IMAGE_PIXELS = limit  # PIL warns above this and raises above twice this, at open
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            with open(path, "rb") as f:
                size = _header_size(f)
            raise ImageTooLargeError(f"{what} {path}: {size} is more than the limit of {limit:,} pixels (a "
                                     f"decompression bomb?); shrink it, or raise ${ENV_VAR}") from None
    with im:
        check_image_size(im.size, path, what)
        yield im


def _header_size(f) -> str:
    """``WxH = N pixels`` from a PNG header, or ``its size`` for other formats."""
    head = f.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return f"{w}x{h} = {w * h:,} pixels"
    return "its size"


def load_rgb(path: str | Path, what: str = "image"):
    """The image at ``path`` decoded as RGB, after the pixel-limit check."""
    with open_image(path, what) as im:
        return im.convert("RGB")
