"""Pixel-level stages of the PictoWorld oracle: image normalisation, background estimate,
foreground mask and palette labelling.

Colours are labelled by the nearest *mixing segment* from the background to a palette colour in
RGB: a pixel blurred half-way between a red shape and the grey background lies on the segment
background -> red, so it is still labelled red (with mixing weight ``t`` ~ 0.5) instead of being
snapped to whichever palette colour happens to lie near the mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from t2i_audit.world.vocab import CLOTHING_RGB, HEADWEAR, SHAPE_RGB, SKIN_RGB

# The palette the oracle knows: (name, group, rgb). Groups: shape, skin, cloth, darkcloth, hat.
# Headwear colours that coincide with shape colours (red, yellow, green) are not repeated.
_DARK = 0.72  # the renderer's trouser shade factor (render._darker)


def _palette() -> list[tuple[str, str, tuple[int, int, int]]]:
    pal: list[tuple[str, str, tuple[int, int, int]]] = []
    pal += [(c, "shape", rgb) for c, rgb in SHAPE_RGB.items()]
    pal += [(s, "skin", rgb) for s, rgb in SKIN_RGB.items()]
    pal += [(c, "cloth", rgb) for c, rgb in CLOTHING_RGB.items()]
    pal += [(c, "darkcloth", tuple(int(v * _DARK) for v in rgb)) for c, rgb in CLOTHING_RGB.items()]
    known = {rgb for _, _, rgb in pal}
    for name, rgb in HEADWEAR.values():
        if tuple(rgb) not in known:
            pal.append((name, "hat", tuple(rgb)))
            known.add(tuple(rgb))
    return pal


PALETTE = _palette()
PAL_NAMES = [p[0] for p in PALETTE]
PAL_GROUPS = np.array([p[1] for p in PALETTE])
PAL_RGB = np.array([p[2] for p in PALETTE], dtype=np.float32)
SHAPE_IDX = np.array([i for i, p in enumerate(PALETTE) if p[1] == "shape"])
SKIN_IDX = np.array([i for i, p in enumerate(PALETTE) if p[1] == "skin"])
NOISY_SIGMA = 8.0  # RGB units; JPEG ringing stays below it, sigma = 0.05 noise (12.75) is above
PERSON_GROUPS = ("skin", "cloth", "darkcloth", "hat")


def to_array(img) -> np.ndarray:
    """PIL image or array (H, W, 3) uint8 / float in [0, 255] (or [0, 1] floats) -> float32 HxWx3."""
    if isinstance(img, Image.Image):
        a = np.asarray(img.convert("RGB"), dtype=np.float32)
    else:
        a = np.asarray(img)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"expected an image array of shape (H, W, 3), got {a.shape}")
        a = a[..., :3]
        if a.dtype.kind == "f" and a.size and float(a.max()) <= 1.0 + 1e-6:
            a = a * 255.0
        a = a.astype(np.float32)
    if a.shape[0] < 16 or a.shape[1] < 16:
        raise ValueError(f"image too small for the oracle: {a.shape[1]}x{a.shape[0]} (need >= 16)")
    return a


def background(a: np.ndarray) -> tuple[np.ndarray, float]:
    """Background colour (median of the one-pixel border) and a robust noise sigma (RGB units)."""
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]], axis=0)
    bg = np.median(border, axis=0)
    dev = np.abs(border - bg)
    # MAD over channels of border pixels close to the background (objects touching the border
    # are excluded by the 40-unit cut).
    near = dev.max(axis=1) < 40
    sigma = 1.4826 * float(np.median(dev[near])) if near.any() else 0.0
    return bg.astype(np.float32), sigma


@dataclass
class Pixels:
    """Per-pixel evidence shared by the shape and person readers."""

    a: np.ndarray  # HxWx3 float32 (median-filtered when the image is noisy)
    raw: np.ndarray  # HxWx3 float32 as given
    bg: np.ndarray  # (3,)
    sigma: float
    fg: np.ndarray  # HxW bool, foreground
    label: np.ndarray  # HxW int, palette index of the nearest mixing segment (-1 on background)
    t: np.ndarray  # HxW float, mixing weight along that segment (1 = pure palette colour)
    dist: np.ndarray  # HxW float, distance to that segment
    u: float  # pixels per canvas unit
    noisy: bool = False  # noise sigma above NOISY_SIGMA: masks come from a median-filtered copy


def segment_fit(a: np.ndarray, bg: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For pixels (N, 3) and colours (K, 3): mixing weight t (N, K) in [0, 1] along bg -> colour
    and the distance (N, K) from each pixel to that segment."""
    d = rgb[None, :, :] - bg[None, None, :]  # (1, K, 3)
    p = a[:, None, :] - bg[None, None, :]  # (N, 1, 3)
    dd = (d * d).sum(-1)  # (1, K)
    t = np.clip((p * d).sum(-1) / np.maximum(dd, 1e-6), 0.0, 1.0)  # (N, K)
    r = p - t[..., None] * d
    return t, np.sqrt((r * r).sum(-1))


def pixel_evidence(a: np.ndarray, fg_min: float, fg_noise_k: float) -> Pixels:
    H, W = a.shape[:2]
    raw = a
    bg, sigma = background(a)
    noisy = sigma > NOISY_SIGMA
    if noisy:  # a 3x3 median per channel for the masks and labels
        a = ndimage.median_filter(a, size=(3, 3, 1), mode="nearest")
        bg, sigma_f = background(a)
    else:
        sigma_f = sigma
    diff = a - bg
    dbg = np.sqrt((diff * diff).sum(-1))
    thr = max(fg_min, fg_noise_k * sigma_f)
    fg = dbg > thr
    # drop isolated pixels (fewer than 2 foreground 8-neighbours)
    nb = ndimage.convolve(fg.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - fg
    fg &= nb >= 2
    label = np.full((H, W), -1, dtype=np.int64)
    t_map = np.zeros((H, W), dtype=np.float32)
    d_map = np.zeros((H, W), dtype=np.float32)
    if fg.any():
        px = a[fg]
        t, dist = segment_fit(px, bg, PAL_RGB)
        # prefer the segment the pixel lies on; among near-ties prefer the one it reaches further
        score = dist - 2.0 * t
        k = np.argmin(score, axis=1)
        idx = np.arange(len(k))
        label[fg] = k
        t_map[fg] = t[idx, k]
        d_map[fg] = dist[idx, k]
    return Pixels(a=a, raw=raw, bg=bg, sigma=sigma, fg=fg, label=label, t=t_map, dist=d_map,
                  u=(H + W) / 64.0, noisy=noisy)
