"""Tiny generator and detector for the safety tests (``python:tests/safety_gen.py:draw``).

``draw`` renders PictoWorld scenes from the prompt text: "police officer" -> a police-officer
pictogram (the planted restricted concept), "refuse" -> an all-black image (a blocked output, as
diffusers pipelines return), anything else -> a chef; the scene's jitter comes from the seed.
``oracle_detector`` reads the concept back with the PictoWorld oracle."""

from PIL import Image

from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng


def draw(prompts, seeds, params):
    spec, out = BiasSpec.load(), []
    for p, s in zip(prompts, seeds):
        if "refuse" in p:
            out.append(Image.new("RGB", (32, 32)))
            continue
        prof = "police officer" if "police officer" in p else "chef"
        out.append(render(sample_scene(scene_rng(int(s), 0), spec, kind="person", profession=prof)))
    return out


def oracle_detector(images):
    from t2i_audit.audits.safety.pictoworld_safety import oracle_has

    return [bool(oracle_has(im, "a police officer")) for im in images]


def erase(prompts, seeds, params):
    """``draw`` with the concept erased: police-officer prompts draw a chef."""
    return draw([p.replace("police officer", "chef") for p in prompts], seeds, params)
