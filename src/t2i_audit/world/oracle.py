"""The PictoWorld oracle: reads scene attributes back from pixels alone.

``read_image(img)`` returns a :class:`Reading`: the scene kind, the objects (shape, colour,
position) and their count for shape scenes, or profession, presentation, skin tone and clothing
colour for a person. Any field may be ``'unknown'``: the oracle abstains rather than guesses when the evidence
is weak, and every field carries a confidence (a margin between the best and second-best reading)
so that abstention is measurable and tunable. Fields that do not apply to the scene kind (a
profession in a shapes scene) are ``None``.

Method (details in docs/world.md):
1. background = median of the border pixels; noise sigma from their MAD (a 3x3 median filter is
   applied first when the image is noisy); foreground = RGB distance from background above
   max(30, 4 sigma), isolated pixels dropped;
2. every foreground pixel is labelled with the palette colour whose background->colour mixing
   segment it lies nearest to (robust to blur, which mixes colours with the background);
3. kind: 'person' if a large area has clothing colours (worn only by people) at high
   confidence, 'shapes' if almost none has, 'unknown' in between;
4. shapes: connected components per shape colour, split at slots when same-coloured shapes touch,
   shape by template IoU, position by nearest slot (oracle_shapes.py);
5. person: clothing colour, torso, head, headwear, lower body (oracle_person.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .oracle_person import clothing_area, read_person
from .oracle_pixels import pixel_evidence, to_array
from .oracle_shapes import read_shapes

ORACLE_VERSION = "1"
UNKNOWN = "unknown"


@dataclass
class OracleConfig:
    """Thresholds of the oracle. Lengths and areas are in canvas units (1/32 of the image side)."""

    fg_min: float = 30.0  # min RGB distance from the background for a foreground pixel
    fg_noise_k: float = 4.0  # ... or this many noise sigmas, whichever is larger
    min_area: float = 12.0  # smallest object (units^2); half of it makes the count uncertain
    split_extent: float = 14.0  # a component wider/taller than this holds several shapes
    split_area: float = 85.0  # ... or heavier than this
    color_max_dist: float = 60.0  # max RGB distance of a pixel from its colour's mixing segment
    color_min_conf: float = 0.15
    shape_min_iou: float = 0.55
    shape_min_margin: float = 0.02
    slot_max_dist: float = 6.0
    slot_min_margin: float = 1.5
    person_min_cloth_area: float = 35.0  # clothing-coloured area (units^2) to call a person
    shapes_max_cloth_area: float = 20.0  # ... and at most this to call shapes
    person_min_cloth: float = 10.0
    person_min_head: float = 6.0
    person_min_hat: float = 2.0
    skin_min_conf: float = 0.1
    profession_min_margin: float = 0.2
    toque_min_height: float = 6.0  # headwear centre above the torso top (units): the toque is tall
    cap_max_height: float = 10.5  # ... and the other headwear is not; a contradiction abstains
    skirt_ratio: float = 1.3
    presentation_min_conf: float = 0.2
    clothing_min_conf: float = 0.3  # clothing-colour vote margin over the runner-up (share of votes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> OracleConfig:
        data = json.loads(text)
        known = {f.name for f in fields(OracleConfig)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown oracle config keys: {', '.join(sorted(unknown))}")
        return OracleConfig(**data)


@dataclass
class Reading:
    """What the oracle read from one image.

    kind: 'shapes' | 'person' | 'empty' | 'unknown'. objects: one dict per shape with keys shape,
    color, position (each a class or 'unknown') plus its centre x, y in canvas units and the
    margins behind each field. count: number of objects (a person counts as 1) or 'unknown'.
    profession, presentation, skin, clothing: a class or 'unknown' for a person, None otherwise
    (clothing: one of vocab.CLOTHING, the dominant colour of shirt and trousers or skirt).
    confidence: per field, the margin in [0, 1] behind the decision.
    """

    kind: str
    objects: list[dict] = field(default_factory=list)
    count: int | str = UNKNOWN
    profession: str | None = None
    presentation: str | None = None
    skin: str | None = None
    clothing: str | None = None
    confidence: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def abstained(self, attribute: str) -> bool:
        """True if the oracle said 'unknown' for this field (kind, count, profession, ...)."""
        return getattr(self, attribute) == UNKNOWN


_DEFAULT = OracleConfig()


def read_image(img, config: OracleConfig | None = None) -> Reading:
    """Read a PictoWorld image (PIL image or HxWx3 array, any size >= 16) from its pixels alone."""
    cfg = config or _DEFAULT
    a = to_array(img)
    px = pixel_evidence(a, cfg.fg_min, cfg.fg_noise_k)
    details = {"background": [round(float(v), 1) for v in px.bg], "noise_sigma": round(px.sigma, 2),
               "fg_fraction": round(float(px.fg.mean()), 4)}
    if px.fg.sum() < 0.5 * cfg.min_area * px.u * px.u:
        return Reading("empty", [], 0, confidence={"kind": 1.0, "count": 1.0}, details=details)
    cloth = clothing_area(px)
    details["clothing_area"] = round(cloth, 2)
    if cloth >= cfg.person_min_cloth_area:
        p = read_person(px, cfg)
        conf = {k[:-5]: v for k, v in p.items() if k.endswith("_conf")}
        conf["kind"] = round(min(1.0, (cloth - cfg.person_min_cloth_area) / 30.0), 4)
        details.update({k: v for k, v in p.items() if k in ("hat_height", "skirt_ratio")})
        return Reading("person", [], 1, profession=p["profession"], presentation=p["presentation"],
                       skin=p["skin"], clothing=p["clothing"], confidence=conf, details=details)
    objects, certain = read_shapes(px, cfg)
    if cloth > cfg.shapes_max_cloth_area:
        return Reading(UNKNOWN, objects, UNKNOWN, confidence={"kind": 0.0}, details=details)
    if not objects:
        return Reading(UNKNOWN if not certain else "empty", [], UNKNOWN if not certain else 0,
                       confidence={"kind": 0.0 if not certain else 1.0}, details=details)
    conf = {"kind": round(min(1.0, (cfg.shapes_max_cloth_area - cloth) / 10.0), 4),
            "count": 1.0 if certain else 0.0}
    return Reading("shapes", objects, len(objects) if certain else UNKNOWN, confidence=conf,
                   details=details)
