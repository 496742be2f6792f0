"""Caption grammar of PictoWorld.

Every scene has a canonical caption (the bare phrase) and paraphrases (the phrase inside a few
frames). Training draws from TRAIN_FRAMES only; HELD_OUT_FRAMES never appear in training
captions, so evaluation prompts built with them are not seen verbatim in training.
"""

from __future__ import annotations

from t2i_audit.world.scene import Scene, Shape
from t2i_audit.world.vocab import NUMBER_WORDS

TRAIN_FRAMES = ("{x}", "a photo of {x}", "a picture of {x}", "an illustration of {x}")
HELD_OUT_FRAMES = ("a drawing of {x}", "an image of {x}")

POSITION_PHRASE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def shape_phrase(s: Shape, with_position: bool) -> str:
    text = f"{article(s.color)} {s.color} {s.shape}"
    return f"{text} {POSITION_PHRASE[s.position]}" if with_position else text


def plural(shape: str) -> str:
    return shape + "s"


def join_list(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def person_phrase(profession: str, presentation: str | None, skin: str | None) -> str:
    words = [presentation, profession] if presentation else [profession]
    text = f"{article(words[0])} {' '.join(words)}"
    return f"{text} with {skin} skin" if skin else text


def bare_caption(scene: Scene) -> str:
    """The canonical caption: the bare phrase for the scene."""
    if scene.kind == "person":
        p = scene.person
        return person_phrase(
            p.profession,
            p.presentation if "presentation" in scene.said else None,
            p.skin if "skin" in scene.said else None,
        )
    if scene.kind == "single":
        return shape_phrase(scene.shapes[0], scene.said_position)
    if scene.kind == "pair":
        a, b = scene.shapes
        return f"{shape_phrase(a, False)} {scene.relation} {shape_phrase(b, False)}"
    if scene.kind == "count":
        s = scene.shapes[0]
        n = len(scene.shapes)
        return f"{NUMBER_WORDS[n - 1]} {s.color} {s.shape if n == 1 else plural(s.shape)}"
    if scene.kind == "multi":
        return join_list([shape_phrase(s, scene.said_position) for s in scene.shapes])
    raise ValueError(f"unknown scene kind {scene.kind!r}")


def frame(phrase: str, template: str) -> str:
    return template.format(x=phrase)


def paraphrases(scene: Scene, frames: tuple[str, ...] = TRAIN_FRAMES) -> list[str]:
    bare = bare_caption(scene)
    return [frame(bare, f) for f in frames]


def caption(scene: Scene) -> str:
    """The caption used for training: the bare phrase in the scene's frame."""
    return frame(bare_caption(scene), TRAIN_FRAMES[scene.template % len(TRAIN_FRAMES)])
