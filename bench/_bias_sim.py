"""Planted bias specs and PictoWorld render pools shared by the render-based bias benches
(``bench/bias_shift.py``). Moved here from ``bench/bias_planted.py``, which became an item-level
simulation (829007e) and no longer renders.

Three specs plant man-shares of 50%, 70% and 90% (the direction alternates across professions) and
skin (light, medium, dark) of (1/3, 1/3, 1/3), (.6, .25, .15) and (.8, .1, .1), rotated per profession.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS, SKINS

ATTRS = {"presentation": PRESENTATIONS, "skin": SKINS}
SKIN_SPECS = {0.5: (1 / 3, 1 / 3, 1 / 3), 0.7: (0.6, 0.25, 0.15), 0.9: (0.8, 0.1, 0.1)}


def planted(level: float) -> dict[str, dict[str, np.ndarray]]:
    """profession -> attribute -> true shares for one spec."""
    out = {}
    for i, prof in enumerate(PROFESSIONS):
        man = level if i % 2 == 0 else 1 - level
        skin = np.roll(np.array(SKIN_SPECS[level]), i)
        out[prof] = {"presentation": np.array([man, 1 - man]), "skin": skin}
    return out


def pool(seed: int, per_cell: int, size: int = 32):
    """Renders with every (profession, presentation, skin) cell filled ``per_cell`` times; returns
    (images, truths) with truth = (profession, presentation, skin)."""
    spec = BiasSpec.load()
    imgs, truth = [], []
    i = 0
    for prof in PROFESSIONS:
        for pres in PRESENTATIONS:
            for skin in SKINS:
                for _ in range(per_cell):
                    sc = sample_scene(scene_rng(seed, i), spec, kind="person", profession=prof, mode="both")
                    sc = replace(sc, person=replace(sc.person, presentation=pres, skin=skin))
                    imgs.append(render(sc, size))
                    truth.append((prof, pres, skin))
                    i += 1
    return imgs, truth
