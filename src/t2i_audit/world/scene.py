"""Scene model of PictoWorld: a scene is a list of entities plus the geometry jitter to draw them.

A scene carries everything needed to render it (so rendering is a pure function of the scene) and
everything a metric needs as ground truth. Scenes are sampled from a seed with ``random.Random``,
so the same (seed, index) always gives the same scene.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

from t2i_audit.world.vocab import (
    CLOTHING,
    COLORS,
    MAX_OBJECTS,
    POSITIONS,
    PRESENTATIONS,
    PROFESSIONS,
    SHAPES,
    SKINS,
)

SCENE_KINDS = ("single", "pair", "count", "multi", "person")
# Default mix of scene kinds in the training distribution.
DEFAULT_KIND_WEIGHTS = {"single": 0.2, "pair": 0.15, "count": 0.15, "multi": 0.1, "person": 0.4}
# For person scenes: which attributes the caption states.
PERSON_CAPTION_MODES = {"neutral": 0.4, "presentation": 0.2, "skin": 0.15, "both": 0.25}


@dataclass(frozen=True)
class Shape:
    shape: str
    color: str
    position: str
    dx: float = 0.0  # jitter of the centre, canvas units
    dy: float = 0.0
    scale: float = 1.0
    rotation: int = 0  # triangles: 0 = apex up (only rotation drawn today)


@dataclass(frozen=True)
class Person:
    profession: str
    presentation: str
    skin: str
    clothing: str
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class Scene:
    """One PictoWorld scene.

    ``kind`` is one of SCENE_KINDS. ``said`` lists the attributes the caption states for a person
    scene ("presentation", "skin"); for shape scenes, ``said_position`` says whether positions
    are part of the caption. ``relation`` is set for "pair" scenes ("left of", "above", ...).
    """

    kind: str
    background: int
    shapes: tuple[Shape, ...] = ()
    person: Person | None = None
    said: tuple[str, ...] = ()
    said_position: bool = True
    relation: str | None = None
    template: int = 0  # index of the caption frame ("a photo of ...")
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def n_objects(self) -> int:
        return len(self.shapes) if self.person is None else 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Scene:
        d = json.loads(text)
        d["shapes"] = tuple(Shape(**s) for s in d.get("shapes", ()))
        d["person"] = Person(**d["person"]) if d.get("person") else None
        d["said"] = tuple(d.get("said", ()))
        return Scene(**d)


def _jitter_shape(rng: random.Random, shape: str, color: str, position: str) -> Shape:
    return Shape(
        shape=shape,
        color=color,
        position=position,
        dx=round(rng.uniform(-1.0, 1.0), 3),
        dy=round(rng.uniform(-1.0, 1.0), 3),
        scale=round(rng.uniform(0.9, 1.12), 3),
    )


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    r = rng.random()
    acc = 0.0
    for key, w in weights.items():
        acc += w
        if r < acc:
            return key
    return key  # float round-off: last key


def sample_single(rng: random.Random, background: int) -> Scene:
    sh = _jitter_shape(rng, rng.choice(SHAPES), rng.choice(COLORS), rng.choice(POSITIONS))
    return Scene("single", background, shapes=(sh,), said_position=rng.random() < 0.8,
                 template=rng.randrange(4))


RELATIONS = {"left of": ("left", "right"), "right of": ("right", "left"),
             "above": ("top", "bottom"), "below": ("bottom", "top")}


def sample_pair(rng: random.Random, background: int) -> Scene:
    relation = rng.choice(tuple(RELATIONS))
    pa, pb = RELATIONS[relation]
    while True:
        a = (rng.choice(SHAPES), rng.choice(COLORS))
        b = (rng.choice(SHAPES), rng.choice(COLORS))
        if a != b:
            break
    shapes = (_jitter_shape(rng, a[0], a[1], pa), _jitter_shape(rng, b[0], b[1], pb))
    return Scene("pair", background, shapes=shapes, relation=relation, template=rng.randrange(4))


def sample_count(rng: random.Random, background: int, n: int | None = None) -> Scene:
    n = n or rng.randint(1, MAX_OBJECTS)
    shape, color = rng.choice(SHAPES), rng.choice(COLORS)
    slots = rng.sample(POSITIONS, n)
    shapes = tuple(_jitter_shape(rng, shape, color, p) for p in slots)
    return Scene("count", background, shapes=shapes, said_position=False, template=rng.randrange(4))


def sample_multi(rng: random.Random, background: int) -> Scene:
    n = rng.randint(2, MAX_OBJECTS)
    slots = rng.sample(POSITIONS, n)
    kinds: list[tuple[str, str]] = []
    while len(kinds) < n:
        k = (rng.choice(SHAPES), rng.choice(COLORS))
        if k not in kinds:
            kinds.append(k)
    shapes = tuple(_jitter_shape(rng, s, c, p) for (s, c), p in zip(kinds, slots))
    return Scene("multi", background, shapes=shapes, said_position=rng.random() < 0.5,
                 template=rng.randrange(4))


def sample_person(rng: random.Random, background: int, spec, profession: str | None = None,
                  mode: str | None = None, modes: dict[str, float] | None = None) -> Scene:
    """A person pictogram. Attributes the caption states are drawn uniformly; attributes it leaves
    unsaid are drawn from the bias spec, P(presentation, skin | profession, what was said).
    ``modes`` weights what the caption states (default PERSON_CAPTION_MODES)."""
    profession = profession or rng.choice(PROFESSIONS)
    mode = mode or _pick(rng, modes or PERSON_CAPTION_MODES)
    said = {"neutral": (), "presentation": ("presentation",), "skin": ("skin",),
            "both": ("presentation", "skin")}[mode]
    presentation = rng.choice(PRESENTATIONS) if "presentation" in said else None
    skin = rng.choice(SKINS) if "skin" in said else None
    presentation, skin = spec.sample(rng, profession, presentation=presentation, skin=skin)
    person = Person(
        profession=profession,
        presentation=presentation,
        skin=skin,
        clothing=rng.choice(CLOTHING),
        dx=round(rng.uniform(-2.0, 2.0), 3),
        dy=round(rng.uniform(-1.0, 1.0), 3),
        scale=round(rng.uniform(0.92, 1.08), 3),
    )
    return Scene("person", background, person=person, said=said, template=rng.randrange(4))


def sample_background(rng: random.Random) -> int:
    from t2i_audit.world.vocab import BACKGROUND_RANGE

    return rng.randint(*BACKGROUND_RANGE)


def sample_scene(rng: random.Random, spec, kind_weights: dict[str, float] | None = None,
                 kind: str | None = None, person_modes: dict[str, float] | None = None, **kwargs) -> Scene:
    """Draw one scene. ``kind`` forces a scene kind; extra kwargs go to that kind's sampler;
    ``person_modes`` weights what person captions state."""
    kind = kind or _pick(rng, kind_weights or DEFAULT_KIND_WEIGHTS)
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {', '.join(SCENE_KINDS)}")
    bg = sample_background(rng)
    if kind == "single":
        return sample_single(rng, bg)
    if kind == "pair":
        return sample_pair(rng, bg)
    if kind == "count":
        return sample_count(rng, bg, **kwargs)
    if kind == "multi":
        return sample_multi(rng, bg)
    return sample_person(rng, bg, spec, modes=person_modes, **kwargs)


def scene_rng(seed: int, index: int) -> random.Random:
    """The RNG for scene ``index`` of a stream seeded with ``seed`` (independent of batching)."""
    return random.Random((int(seed) & 0xFFFFFFFF) << 32 | (int(index) & 0xFFFFFFFF))
