"""A fast text-conditioned PictoWorld generator for the perturbation tests
(``python:tests/perturb_gen.py:draw``): a person pictogram whose profession, presentation and skin
follow the words of the prompt (unsaid ones from the default bias spec); the seed draws the rest.
A prompt without a profession word draws a chef."""

import dataclasses
import re

from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS, SKINS


def _word(text, options):
    hits = [o for o in options if re.search(rf"\b{o}\b", text)]
    return hits[0] if hits else None


def draw(prompts, seeds, params):
    spec, out = BiasSpec.load(), []
    for p, s in zip(prompts, seeds):
        prof = _word(p, PROFESSIONS) or "chef"
        scene = sample_scene(scene_rng(int(s), 0), spec, kind="person", profession=prof)
        said = {k: _word(p, v) for k, v in (("presentation", ("woman", "man")), ("skin", SKINS))}
        person = dataclasses.replace(scene.person, **{k: v for k, v in said.items() if v in (*PRESENTATIONS, *SKINS)})
        out.append(render(dataclasses.replace(scene, person=person)))
    return out
