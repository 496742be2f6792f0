"""PictoWorld images that follow a prompt's expectation, except where an error is planted.

For benches and tests of judges: a "generator" that draws what the expectation asks and gets each
stated field wrong with probability ``p_err`` (a wrong colour, shape, position, a count off by one,
the relation's objects swapped, a wrong profession / presentation / skin), then degrades the render
(``world.corrupt``, e.g. ``blur:0.5,noise:0.03``) as generation does. The truth of every question is
read back by the oracle, never taken from this planting.
"""

from __future__ import annotations

import random

from t2i_audit.world.corrupt import corrupt
from t2i_audit.world.render import render
from t2i_audit.world.scene import RELATIONS, Person, Scene, Shape, sample_background
from t2i_audit.world.vocab import CLOTHING, COLORS, POSITIONS, PRESENTATIONS, PROFESSIONS, SHAPES, SKINS

DEGRADE = "blur:0.5,noise:0.03"


def _maybe(rng: random.Random, value, choices, p_err: float):
    value = value if value else rng.choice(choices)
    if rng.random() < p_err:
        return rng.choice([c for c in choices if c != value])
    return value


def _shape(rng, shape, color, position) -> Shape:
    return Shape(shape, color, position, round(rng.uniform(-1, 1), 3), round(rng.uniform(-1, 1), 3),
                 round(rng.uniform(0.9, 1.12), 3))


def _person(rng: random.Random, p: dict, p_err: float, bg: int) -> Scene:
    person = Person(_maybe(rng, p.get("profession"), PROFESSIONS, p_err),
                    _maybe(rng, p.get("presentation"), PRESENTATIONS, p_err if p.get("presentation") else 0),
                    _maybe(rng, p.get("skin"), SKINS, p_err if p.get("skin") else 0), rng.choice(CLOTHING),
                    round(rng.uniform(-2, 2), 3), round(rng.uniform(-1, 1), 3), round(rng.uniform(0.92, 1.08), 3))
    return Scene("person", bg, person=person)


def scene_for(expect: dict, rng: random.Random, p_err: float = 0.2) -> Scene:
    """A scene drawn for ``expect`` with planted errors (see the module doc)."""
    bg = sample_background(rng)
    if expect.get("person") is not None:
        return _person(rng, expect["person"], p_err, bg)
    objs = list(expect.get("objects") or [{}])
    rel = expect.get("relation")
    if rel and len(objs) >= 2:
        pa, pb = RELATIONS[rel["rel"]]
        if rng.random() < p_err:
            pa, pb = pb, pa
        a, b = objs[int(rel["a"])], objs[int(rel["b"])]
        shapes = [_shape(rng, _maybe(rng, o.get("shape"), SHAPES, p_err / 2), _maybe(rng, o.get("color"), COLORS,
                                                                                   p_err / 2), pos)
                  for o, pos in ((a, pa), (b, pb))]
        return Scene("pair", bg, shapes=tuple(shapes), relation=rel["rel"])
    n = int(expect.get("count") or len(objs))
    if len(objs) == 1 and rng.random() < p_err and n > 0:
        n = max(1, min(4, n + rng.choice((-1, 1))))
    o = objs[0]
    shape, color = _maybe(rng, o.get("shape"), SHAPES, p_err), _maybe(rng, o.get("color"), COLORS, p_err)
    if n == 1:
        pos = _maybe(rng, o.get("position"), POSITIONS, p_err if o.get("position") else 0)
        return Scene("single", bg, shapes=(_shape(rng, shape, color, pos),))
    slots = rng.sample(POSITIONS, n)
    return Scene("count", bg, shapes=tuple(_shape(rng, shape, color, s) for s in slots), said_position=False)


def draw(expect: dict, seed: int, p_err: float = 0.2, degrade: str | None = DEGRADE, size: int = 32):
    """One degraded render (PIL image) for ``expect``, seeded."""
    rng = random.Random(seed)
    img = render(scene_for(expect, rng, p_err), size)
    return corrupt(img, degrade, seed) if degrade else img
