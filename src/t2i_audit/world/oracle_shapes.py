"""Shape reading for the PictoWorld oracle: objects from colour components, split at slots when
same-coloured shapes touch, shape by template fit, position by nearest slot.

Shape is decided by a soft IoU between the object's alpha mask (mixing weight toward its colour,
so blur does not move the mass) and the three ideal shapes placed at the object's centroid with
the area of the object. IoU is computed only over pixels that do not belong to another object, so
an occluded or touching shape is compared where it is visible.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage

from t2i_audit.world.oracle_pixels import PAL_RGB, SHAPE_IDX, Pixels, segment_fit
from t2i_audit.world.vocab import COLORS, SHAPES, SLOT_CENTRES

# area of each ideal shape as a multiple of r^2 (r = the renderer's radius; see render._shape)
_AREA = {"circle": math.pi, "square": 3.24, "triangle": 2.52}
_SLOT_NAMES = tuple(SLOT_CENTRES)
_SLOT_XY = np.array([SLOT_CENTRES[s] for s in _SLOT_NAMES], dtype=np.float32)
_SUB_X = np.array([0.25, 0.75, 0.25, 0.75], dtype=np.float32)  # 2x2 supersampling offsets
_SUB_Y = np.array([0.25, 0.25, 0.75, 0.75], dtype=np.float32)


def coverage(shape: str, cx: float, cy: float, r: float, ys: np.ndarray, xs: np.ndarray,
             aspect: float = 1.0) -> np.ndarray:
    """Fraction of each pixel (grid ys, xs of pixel indices) covered by the ideal shape whose
    drawing centre is (cx, cy) in continuous pixel coordinates, radius r pixels. ``aspect``
    (width / height) lets the square be the slightly oblong rectangle that pixel rounding draws."""
    X = xs[None] + _SUB_X[:, None, None] - cx  # (4, h, w): 2x2 supersampling
    Y = ys[None] + _SUB_Y[:, None, None] - cy
    if shape == "circle":
        inside = X * X + Y * Y <= r * r
    elif shape == "square":
        h = 0.9 * r
        inside = (np.abs(X) <= h * math.sqrt(aspect)) & (np.abs(Y) <= h / math.sqrt(aspect))
    else:  # triangle, apex up
        inside = (Y <= 0.95 * r) & (np.abs(X) <= 1.2 * r * (Y + 1.15 * r) / (2.1 * r))
    return inside.mean(0, dtype=np.float32)


BLURS = (0.0, 0.6, 1.0, 1.5)  # template blur sigmas tried, in pixels of a 32-pixel image
SCALES = (0.94, 1.0, 1.06)  # radius factors tried (rasterisation at tiny sizes)


@lru_cache(maxsize=512)
def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """n x n matrix applying a zero-padded 1-D Gaussian blur of ``sigma`` pixels."""
    if sigma <= 0:
        return np.eye(n, dtype=np.float32)
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    m = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        lo, hi = max(0, i - r), min(n, i + r + 1)
        m[i, lo:hi] = k[lo - i + r: hi - i + r]
    return m


def fit_shape(alpha: np.ndarray, valid: np.ndarray, oy: int, ox: int, u: float = 1.0) -> dict:
    """Best ideal shape for an alpha patch (window origin oy, ox). Each shape is placed at the
    patch centroid with the patch's mass, tried at a few scales (rasterisation) and blurs (blurred,
    compressed or generated images), and scored by soft IoU over the valid pixels."""
    h, w = alpha.shape
    mass = float(alpha.sum())
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    my = float((alpha * (ys + 0.5)).sum() / mass)
    mx = float((alpha * (xs + 0.5)).sum() / mass)
    vx = float((alpha * (xs + 0.5 - mx) ** 2).sum() / mass)
    vy = float((alpha * (ys + 0.5 - my) ** 2).sum() / mass)
    aspect = math.sqrt(vx / vy) if vx > 0 and vy > 0 else 1.0
    aspect = min(max(aspect, 0.8), 1.25)
    templates, params = [], []
    for shape in SHAPES:
        r = math.sqrt(mass / _AREA[shape])
        cy = my - 0.25 * r if shape == "triangle" else my
        for k in SCALES:
            templates.append(coverage(shape, mx, cy, r * k, ys, xs, aspect if shape == "square" else 1.0))
            params.append((shape, cy, r * k))
    T = np.stack(templates)  # (S*K, h, w)
    vm = valid.astype(np.float32)
    best: dict[str, tuple] = {}
    for sb in BLURS:
        B = _blur_matrix(h, sb * u) @ T @ _blur_matrix(w, sb * u).T if sb else T
        inter = (np.minimum(alpha, B) * vm).sum((1, 2))
        union = (np.maximum(alpha, B) * vm).sum((1, 2))
        iou = inter / np.maximum(union, 1e-9)
        for j, (shape, cy, r) in enumerate(params):
            if shape not in best or iou[j] > best[shape][0]:
                best[shape] = (float(iou[j]), cy, r, sb)
    return {shape: {"iou": v[0], "cx": mx + ox, "cy": v[1] + oy, "r": v[2], "blur": v[3]}
            for shape, v in best.items()}


# RGB -> (Y, Cb, Cr) with luma weighted up: JPEG keeps luma sharp but subsamples chroma, so the
# mixing weight toward a colour is measured mostly on luma wherever the colour differs in luma.
# On noisy images (white noise in every channel) the plain RGB projection is the better estimator,
# so the luma weight drops to 1.5 there.
_YCC0 = np.array([[0.299, 0.587, 0.114], [-0.1687, -0.3313, 0.5], [0.5, -0.4187, -0.0813]],
                 dtype=np.float32)
_YCC = {w: _YCC0 * np.array([[w], [1.0], [1.0]], dtype=np.float32) for w in (1.5, 6.0)}


def luma_alpha(win: np.ndarray, bg: np.ndarray, rgb: np.ndarray, noisy: bool = False) -> np.ndarray:
    """Mixing weight in [0, 1] of each pixel toward colour ``rgb`` from the background, measured in
    a luma-weighted YCbCr space."""
    m = _YCC[1.5 if noisy else 6.0]
    d = m @ (np.asarray(rgb, np.float32) - bg)
    p = (win - bg) @ m.T
    return np.clip(p @ d / max(float(d @ d), 1e-6), 0.0, 1.0)


def nearest_slot(x: float, y: float) -> tuple[str, float, float]:
    """Nearest slot to (x, y) in canvas units: (name, distance, margin to the second nearest)."""
    d = np.sqrt(((_SLOT_XY - np.array([x, y], dtype=np.float32)) ** 2).sum(1))
    order = np.argsort(d)
    return _SLOT_NAMES[order[0]], float(d[order[0]]), float(d[order[1]] - d[order[0]])


def _split(comp: np.ndarray, alpha: np.ndarray, u: float) -> list[np.ndarray]:
    """Split a component holding several same-coloured shapes at the slots it covers."""
    ys, xs = np.nonzero(comp)
    w = alpha[ys, xs]
    pts = np.stack([(xs + 0.5) / u, (ys + 0.5) / u], 1)
    cand = [c for c in _SLOT_XY
            if w[((pts - c) ** 2).sum(1) <= 2.5 ** 2].sum() / (u * u) >= 2.0]
    if len(cand) < 2:
        return [comp]
    centres = np.array(cand, dtype=np.float32)
    for _ in range(3):  # a few weighted Lloyd steps from the slot centres
        d = ((pts[:, None, :] - centres[None]) ** 2).sum(-1)
        k = np.argmin(d, 1)
        for j in range(len(centres)):
            m = k == j
            if w[m].sum() > 0:
                centres[j] = (pts[m] * w[m, None]).sum(0) / w[m].sum()
    parts = []
    for j in range(len(centres)):
        m = np.zeros_like(comp)
        sel = k == j
        m[ys[sel], xs[sel]] = True
        parts.append(m)
    return parts


def _shape_colour_labels(px: Pixels, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground pixels relabelled with the four shape colours only: label (-1: none), the
    pixel's coverage alpha, and the colour's confidence margin."""
    H, W = px.fg.shape
    lab = np.full((H, W), -1, dtype=np.int64)
    alpha = np.zeros((H, W), dtype=np.float32)
    conf = np.zeros((H, W), dtype=np.float32)
    if px.fg.any():
        t, dist = segment_fit(px.a[px.fg], px.bg, PAL_RGB[SHAPE_IDX])
        score = dist - 2.0 * t
        order = np.argsort(score, 1)
        k = order[:, 0]
        idx = np.arange(len(k))
        ok = dist[idx, k] < cfg.color_max_dist
        lab[px.fg] = np.where(ok, k, -1)
        alpha[px.fg] = np.where(ok, t[idx, k], 0.0)
        s1, s2 = score[idx, k], score[idx, order[:, 1]]
        conf[px.fg] = np.clip((s2 - s1) / (np.abs(s2) + np.abs(s1) + 1e-6), 0, 1)
    return lab, alpha, conf


def read_shapes(px: Pixels, cfg) -> tuple[list[dict], bool]:
    """Objects in a shapes image, and whether the count is certain."""
    u = px.u
    H, W = px.fg.shape
    lab, alpha, conf = _shape_colour_labels(px, cfg)
    parts: list[tuple[int, np.ndarray]] = []
    certain = True
    area_unit = u * u
    for ci in range(len(COLORS)):
        mask = (lab == ci) & (alpha > 0.15)
        if not mask.any():
            continue
        comps, n = ndimage.label(mask)
        for j, sl in enumerate(ndimage.find_objects(comps), start=1):
            comp = comps == j
            mass = float(alpha[comp].sum()) / area_unit
            if mass < cfg.min_area:
                if mass >= cfg.min_area * 0.5:
                    certain = False
                continue
            hh = (sl[0].stop - sl[0].start) / u
            ww = (sl[1].stop - sl[1].start) / u
            if hh > cfg.split_extent or ww > cfg.split_extent or mass > cfg.split_area:
                for part in _split(comp, alpha, u):
                    pm = float(alpha[part].sum()) / area_unit
                    if pm >= cfg.min_area:
                        parts.append((ci, part))
                    elif pm >= cfg.min_area * 0.5:
                        certain = False
            else:
                parts.append((ci, comp))
    if not parts:
        return [], certain
    owner = np.full((H, W), -1, dtype=np.int64)
    for oi, (_, m) in enumerate(parts):
        owner[m] = oi
    # alpha for the shape fit from the unfiltered image (a median filter rounds corners)
    objects = []
    pad = max(3, int(round(3 * u)))
    grow = np.ones((3, 3), bool)
    for oi, (ci, m) in enumerate(parts):
        ys, xs = np.nonzero(m)
        y0, y1 = max(0, ys.min() - pad), min(H, ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(W, xs.max() + pad + 1)
        win_owner = owner[y0:y1, x0:x1]
        valid = (win_owner == oi) | (win_owner == -1)
        region = ndimage.binary_dilation(win_owner == oi, grow, iterations=max(1, int(round(2 * u))))
        region &= valid
        t_raw = luma_alpha(px.raw[y0:y1, x0:x1], px.bg, PAL_RGB[SHAPE_IDX][ci], px.noisy)
        a = np.where(region, t_raw, 0.0).astype(np.float32)
        fits = fit_shape(a, valid, y0, x0, u)
        ranked = sorted(fits, key=lambda s: -fits[s]["iou"])
        best, second = ranked[0], ranked[1]
        iou1, margin = fits[best]["iou"], fits[best]["iou"] - fits[second]["iou"]
        shape = best if iou1 >= cfg.shape_min_iou and margin >= cfg.shape_min_margin else "unknown"
        cx = fits[best]["cx"] / u
        cy = fits[best]["cy"] / u
        slot, dist, smargin = nearest_slot(cx, cy)
        position = slot if dist <= cfg.slot_max_dist and smargin >= cfg.slot_min_margin else "unknown"
        ccore = conf[m][alpha[m] > 0.5]
        cconf = float(np.median(ccore)) if ccore.size else 0.0
        color = COLORS[ci] if cconf >= cfg.color_min_conf else "unknown"
        objects.append({
            "shape": shape, "color": color, "position": position,
            "x": round(cx, 3), "y": round(cy, 3), "area": round(float(a.sum()) / area_unit, 2),
            "shape_iou": round(iou1, 4), "shape_margin": round(margin, 4),
            "color_conf": round(cconf, 4), "position_dist": round(dist, 3),
            "position_margin": round(smargin, 3),
        })
    objects.sort(key=lambda o: (o["y"], o["x"]))
    return objects, certain
