"""Person reading for the PictoWorld oracle: head, headwear, skin tone and body presentation.

The pictogram is found by its colours (skin, clothing, headwear). The torso top is the first row
of the longest run of rows in the dominant clothing colour; the head is the skin above it; the
headwear is everything that is neither skin nor background above the head's centre. The clothing
colour is that dominant clothing colour, its confidence the vote margin over the runner-up. Skin tone is
the nearest skin colour to the median of the head's core pixels; profession is the headwear
colour vote, checked against the headwear's height (the chef's toque is the only tall one);
presentation combines the lower-body silhouette (a skirt widens well beyond the torso, trousers do
not) with its colour (trousers are a darker shade of the shirt, a skirt is the same shade).
"""

from __future__ import annotations

import numpy as np

from .oracle_pixels import PAL_GROUPS, PAL_RGB, SKIN_IDX, Pixels, segment_fit
from .vocab import CLOTHING, HEADWEAR, SKINS

_HAT_PROFS = tuple(HEADWEAR)
_HAT_RGB = np.array([HEADWEAR[p][1] for p in _HAT_PROFS], dtype=np.float32)
_CHEF = _HAT_PROFS.index("chef")
_CLOTH_IDX = np.array([i for i, g in enumerate(PAL_GROUPS) if g == "cloth"])
_DARK_IDX = np.array([i for i, g in enumerate(PAL_GROUPS) if g == "darkcloth"])


def torso_top(rows: np.ndarray) -> int:
    """First row of the longest run of consecutive shirt rows. The topmost shirt row alone is not
    enough: where a hat meets the head, a blur of the two can match a clothing colour (yellow hard
    hat + medium skin ~ orange) for a row or two above the head, and taking that row as the torso
    top would leave no head to read."""
    breaks = np.nonzero(np.diff(rows) > 1)[0]
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [rows.size - 1]])
    best = int(np.argmax(ends - starts))  # ties: the topmost run
    return int(rows[starts[best]])


def read_person(px: Pixels, cfg) -> dict:
    """Profession, presentation, skin and clothing with confidences; 'unknown' where evidence is weak."""
    u = px.u
    out = {"profession": "unknown", "presentation": "unknown", "skin": "unknown", "clothing": "unknown",
           "profession_conf": 0.0, "presentation_conf": 0.0, "skin_conf": 0.0, "clothing_conf": 0.0}
    lab, t, fg = px.label, px.t, px.fg
    core = fg & (t > 0.5)
    # dominant clothing hue (shirt and trousers counted together)
    votes = np.array([((lab == _CLOTH_IDX[i]) | (lab == _DARK_IDX[i]))[core].sum()
                      for i in range(len(CLOTHING))])
    if votes.max() < cfg.person_min_cloth * u * u:
        return out
    ci = int(np.argmax(votes))
    # ---- clothing colour: the vote's margin over the runner-up, as a share of all clothing votes
    o = np.argsort(-votes)
    cconf = float((votes[o[0]] - votes[o[1]]) / max(votes.sum(), 1))
    out["clothing_conf"] = round(cconf, 4)
    if cconf >= cfg.clothing_min_conf:
        out["clothing"] = CLOTHING[ci]
    shirt = core & (lab == _CLOTH_IDX[ci])
    rows = np.nonzero(shirt.sum(1) >= 3 * u)[0]  # a torso row holds ~8 units of shirt
    if rows.size == 0:
        return out
    t0 = torso_top(rows)
    fg_rows = np.nonzero(fg.any(1))[0]
    bottom = int(fg_rows.max())
    skin_px = core & np.isin(lab, SKIN_IDX)
    head = skin_px.copy()
    head[t0 + int(round(0.5 * u)):] = False
    # ---- skin tone from the median colour of the head's core
    if head.sum() >= cfg.person_min_head * u * u:
        med = np.median(px.a[head], axis=0)
        d = np.sqrt(((PAL_RGB[SKIN_IDX] - med) ** 2).sum(1))
        o = np.argsort(d)
        conf = float((d[o[1]] - d[o[0]]) / (d[o[1]] + d[o[0]] + 1e-6))
        out["skin_conf"] = round(conf, 4)
        if conf >= cfg.skin_min_conf:
            out["skin"] = SKINS[o[0]]
        head_rows = np.nonzero(head.any(1))[0]
        head_cy = float(head_rows.mean())
    else:
        head_cy = t0 - 3.0 * u
    # ---- headwear: non-skin foreground above the head's centre
    hat = fg & ~np.isin(lab, SKIN_IDX)
    hat[int(round(head_cy)):] = False
    if hat.sum() >= cfg.person_min_hat * u * u:
        ht, hd = segment_fit(px.a[hat], px.bg, _HAT_RGB)
        score = hd - 2.0 * ht
        k = np.argmin(score, 1)
        w = ht[np.arange(len(k)), k]
        hv = np.bincount(k, weights=w, minlength=len(_HAT_PROFS))
        o = np.argsort(-hv)
        margin = float((hv[o[0]] - hv[o[1]]) / max(hv.sum(), 1e-6))
        # height of the headwear's centre of mass above the torso top (units): ~11-13 for the
        # toque, 5-8 for the others; robust to JPEG halos that a topmost-row measure is not
        hy = np.nonzero(hat)[0]
        height = (t0 - float((hy * w).sum() / max(w.sum(), 1e-6))) / u
        is_chef = o[0] == _CHEF
        agree = height >= cfg.toque_min_height if is_chef else height <= cfg.cap_max_height
        out["profession_conf"] = round(margin if agree else 0.0, 4)
        out["hat_height"] = round(float(height), 2)
        if agree and margin >= cfg.profession_min_margin:
            out["profession"] = _HAT_PROFS[o[0]]
    # ---- presentation from the lower body
    out.update(_presentation(px, cfg, ci, t0, bottom))
    return out


def _presentation(px: Pixels, cfg, ci: int, t0: int, bottom: int) -> dict:
    """Presentation from the lower body below the torso top ``t0``: silhouette width and colour."""
    u, lab, t, fg = px.u, px.label, px.t, px.fg
    out: dict = {}
    L = bottom - t0
    if L >= 6 * u:
        torso = fg[t0 + int(0.1 * L): t0 + int(0.35 * L) + 1]
        band = fg[t0 + int(0.45 * L): t0 + int(0.85 * L) + 1]

        def widths(block: np.ndarray) -> np.ndarray:
            has = block.any(1)
            if not has.any():
                return np.zeros(1)
            left = np.argmax(block, 1)
            right = block.shape[1] - 1 - np.argmax(block[:, ::-1], 1)
            return np.where(has, right - left + 1, 0)

        wt = float(np.median(widths(torso)))
        wb = float(widths(band).max())
        ratio = wb / max(wt, 1.0)
        s_width = float(np.clip((ratio - cfg.skirt_ratio) / 0.25, -1, 1))
        lo = np.zeros_like(fg)
        lo[t0 + int(0.45 * L): t0 + int(0.85 * L) + 1] = True
        n_norm = float(t[lo & (lab == _CLOTH_IDX[ci])].sum())
        n_dark = float(t[lo & (lab == _DARK_IDX[ci])].sum())
        s_col = (n_norm - n_dark) / max(n_norm + n_dark, 1e-6) if n_norm + n_dark > 2 * u * u else 0.0
        score = 0.5 * (s_width + s_col)
        out["presentation_conf"] = round(abs(score), 4)
        out["skirt_ratio"] = round(ratio, 3)
        if abs(score) >= cfg.presentation_min_conf and s_width * s_col >= -0.25:
            out["presentation"] = "woman" if score > 0 else "man"
    return out


def clothing_area(px: Pixels) -> float:
    """Area (canvas units^2) of confident clothing-coloured pixels: colours only a person wears.
    About 70-150 on people (also under blur, noise and JPEG), at most ~12 on shape scenes."""
    core = px.fg & (px.t > 0.6) & (px.dist < 25.0)
    g = PAL_GROUPS[px.label[core]]
    return float(np.isin(g, ("cloth", "darkcloth")).sum()) / (px.u * px.u)
