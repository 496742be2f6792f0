"""Seeded image corruptions for testing the oracle (and metrics) on imperfect images.

- ``noise:S``  additive Gaussian noise, sigma S in [0, 1] units of the pixel range, clipped;
- ``blur:R``   PIL Gaussian blur of radius R pixels;
- ``jpeg:Q``   JPEG round trip at quality Q (PIL defaults: 4:2:0 chroma subsampling).

``corrupt(img, spec, seed)`` applies one or several (``"blur:0.7,noise:0.05"``) in order. Noise
draws from ``numpy.random.default_rng(seed)``, so the same (image, spec, seed) gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from t2i_audit.errors import InputError

KINDS = ("noise", "blur", "jpeg")


@dataclass(frozen=True)
class Corruption:
    kind: str
    level: float

    def __str__(self) -> str:
        lv = int(self.level) if self.kind == "jpeg" else self.level
        return f"{self.kind}:{lv}"


def parse(spec: str) -> list[Corruption]:
    """Parse ``"noise:0.05"`` or ``"blur:0.7,jpeg:75"`` into corruptions; InputError if malformed."""
    out = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, level = part.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS or not sep:
            raise InputError(f"corruption {part!r}: expected one of noise:SIGMA, blur:RADIUS, jpeg:QUALITY "
                             "(e.g. noise:0.05)")
        try:
            lv = float(level)
        except ValueError:
            raise InputError(f"corruption {part!r}: level {level!r} is not a number") from None
        if kind == "noise" and not 0 <= lv <= 1:
            raise InputError(f"corruption {part!r}: noise sigma must be in [0, 1] (fraction of the range)")
        if kind == "blur" and lv < 0:
            raise InputError(f"corruption {part!r}: blur radius must be >= 0")
        if kind == "jpeg" and not (1 <= lv <= 100 and lv == int(lv)):
            raise InputError(f"corruption {part!r}: jpeg quality must be an integer in 1..100")
        out.append(Corruption(kind, lv))
    if not out:
        raise InputError(f"corruption {spec!r}: empty; give e.g. noise:0.05, blur:0.7 or jpeg:75")
    return out


def gaussian_noise(img: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    rng = np.random.default_rng(seed)
    a = a + rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8))


def gaussian_blur(img: Image.Image, radius: float) -> Image.Image:
    return img.convert("RGB").filter(ImageFilter.GaussianBlur(radius))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def corrupt(img: Image.Image, spec: str | list[Corruption], seed: int = 0) -> Image.Image:
    """Apply corruptions in order. ``seed`` drives the noise (each noise step gets seed + its index)."""
    cs = parse(spec) if isinstance(spec, str) else spec
    for i, c in enumerate(cs):
        if c.kind == "noise":
            img = gaussian_noise(img, c.level, seed + i)
        elif c.kind == "blur":
            img = gaussian_blur(img, c.level)
        else:
            img = jpeg(img, int(c.level))
    return img
