"""PIL renderer for PictoWorld scenes: a pure function of the scene and the output size.

Geometry lives in a 32-unit canvas and is scaled to the requested size (32, 64, 128, ...), so a
scene looks the same at every size. Drawing is crisp (no antialiasing): every pixel is a palette
colour, which keeps rendering fast and the ground truth unambiguous.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from t2i_audit.world.scene import Person, Scene, Shape
from t2i_audit.world.vocab import (
    CANVAS,
    CLOTHING_RGB,
    HEADWEAR,
    SHAPE_RADIUS,
    SHAPE_RGB,
    SKIN_RGB,
    SLOT_CENTRES,
)

RENDERER_VERSION = "1"
SIZES = (32, 64, 128)


def _shape(draw: ImageDraw.ImageDraw, s: Shape, u: float) -> None:
    cx, cy = SLOT_CENTRES[s.position]
    cx, cy = (cx + s.dx) * u, (cy + s.dy) * u
    r = SHAPE_RADIUS * s.scale * u
    rgb = SHAPE_RGB[s.color]
    if s.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r - 1, cy + r - 1], fill=rgb)
    elif s.shape == "square":
        h = 0.9 * r
        draw.rectangle([cx - h, cy - h, cx + h - 1, cy + h - 1], fill=rgb)
    elif s.shape == "triangle":
        draw.polygon([(cx, cy - 1.15 * r), (cx + 1.2 * r, cy + 0.95 * r), (cx - 1.2 * r, cy + 0.95 * r)],
                     fill=rgb)
    else:
        raise ValueError(f"unknown shape {s.shape!r}")


def _darker(rgb: tuple[int, int, int], f: float = 0.72) -> tuple[int, int, int]:
    return tuple(int(c * f) for c in rgb)


def _person(draw: ImageDraw.ImageDraw, p: Person, u: float) -> None:
    ax, ay = 16.0 + p.dx, 16.0 + p.dy  # anchor (canvas units)
    k = p.scale

    def X(x: float) -> float:  # person-local x (relative to anchor) -> pixels
        return (ax + k * x) * u

    def Y(y: float) -> float:  # person-local y, where 0 is the anchor row (16)
        return (ay + k * (y - 16.0)) * u

    skin = SKIN_RGB[p.skin]
    cloth = CLOTHING_RGB[p.clothing]
    # body
    if p.presentation == "man":
        trousers = _darker(cloth)
        draw.rectangle([X(-3.9), Y(21.5), X(-1.2), Y(29.6)], fill=trousers)
        draw.rectangle([X(1.2), Y(21.5), X(3.9), Y(29.6)], fill=trousers)
        draw.rectangle([X(-4.0), Y(15.4), X(4.0), Y(22.0)], fill=cloth)
    elif p.presentation == "woman":
        draw.rectangle([X(-2.6), Y(26.5), X(-1.3), Y(29.6)], fill=skin)
        draw.rectangle([X(1.3), Y(26.5), X(2.6), Y(29.6)], fill=skin)
        draw.rectangle([X(-3.6), Y(15.4), X(3.6), Y(21.8)], fill=cloth)
        draw.polygon([(X(-3.6), Y(21.4)), (X(3.6), Y(21.4)), (X(6.4), Y(27.2)), (X(-6.4), Y(27.2))],
                     fill=cloth)
    else:
        raise ValueError(f"unknown presentation {p.presentation!r}")
    # head
    draw.ellipse([X(-3.3), Y(8.6), X(3.3), Y(15.2)], fill=skin)
    # headwear: a distinct colour and outline per profession
    _, hw = HEADWEAR[p.profession]
    if p.profession == "firefighter":  # dome helmet with a wide brim
        draw.pieslice([X(-3.9), Y(6.2), X(3.9), Y(13.4)], 180, 360, fill=hw)
        draw.rectangle([X(-5.4), Y(9.0), X(5.4), Y(10.4)], fill=hw)
    elif p.profession == "chef":  # tall toque with a puff
        draw.rectangle([X(-2.7), Y(3.8), X(2.7), Y(10.0)], fill=hw)
        draw.ellipse([X(-3.6), Y(1.6), X(3.6), Y(5.8)], fill=hw)
    elif p.profession == "police officer":  # flat cap with a visor to the right
        draw.rectangle([X(-3.7), Y(6.8), X(3.7), Y(9.8)], fill=hw)
        draw.rectangle([X(0.0), Y(9.0), X(5.8), Y(10.4)], fill=hw)
    elif p.profession == "construction worker":  # dome hard hat, small brim, crest
        draw.pieslice([X(-3.7), Y(5.8), X(3.7), Y(13.6)], 180, 360, fill=hw)
        draw.rectangle([X(-4.5), Y(9.2), X(4.5), Y(10.2)], fill=hw)
    elif p.profession == "doctor":  # close-fitting scrub cap
        draw.pieslice([X(-3.5), Y(7.6), X(3.5), Y(12.6)], 180, 360, fill=hw)
    else:
        raise ValueError(f"unknown profession {p.profession!r}")


def render(scene: Scene, size: int = 32) -> Image.Image:
    """Render a scene to an RGB image of ``size`` x ``size`` pixels."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    img = Image.new("RGB", (size, size), (scene.background,) * 3)
    draw = ImageDraw.Draw(img)
    u = size / CANVAS
    if scene.person is not None:
        _person(draw, scene.person, u)
    for s in scene.shapes:
        _shape(draw, s, u)
    return img


def render_array(scene: Scene, size: int = 32) -> np.ndarray:
    """Render to a uint8 array of shape (size, size, 3)."""
    return np.asarray(render(scene, size))
