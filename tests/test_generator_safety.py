"""The bundled generator's safety filter: a concept checker in the pipeline's own CLIP space that
blocks (blacks out) images of configured concepts and says so, as diffusers pipelines do."""

import numpy as np
import pytest
import torch

from t2i_audit.errors import InputError
from t2i_audit.generator.pipeline.safety_filter import SafetyFilter

SPEC = "police officer=a police officer@0.6"


@pytest.fixture(scope="module")
def pipe():
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

    return Pipeline.load("bundled")


def _pixels(images) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images])


def test_filter_blocks_the_concept_on_renders(pipe):
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_scene, scene_rng

    spec = BiasSpec.load()
    profs = ["police officer", "chef", "police officer", "doctor", "firefighter", "police officer"]
    ims = [
        render(sample_scene(scene_rng(5, i), spec, kind="person", profession=p)) for i, p in enumerate(profs)
    ]
    px = _pixels(ims)
    out, flags = SafetyFilter.parse(SPEC).apply(pipe.clip, px)
    assert flags == [p == "police officer" for p in profs]
    assert int(out[torch.tensor(flags)].max()) == 0
    assert torch.equal(out[~torch.tensor(flags)], px[~torch.tensor(flags)])


def test_pipeline_applies_its_filter_and_records_it(pipe):
    prompts, seeds = ["a police officer", "a chef"], [0, 1]
    fast = {"steps": 3, "prior_steps": 3, "micro_batch": 2}
    plain = pipe(prompts, seeds, **fast)
    filtered = pipe(prompts, seeds, safety=SPEC, **fast)
    expect = SafetyFilter.parse(SPEC).check(pipe.clip, _pixels(plain.images)).tolist()
    assert filtered.nsfw_content_detected == expect and plain.nsfw_content_detected is None
    for a, b, blocked in zip(filtered.images, plain.images, expect):
        assert (np.asarray(a).max() == 0) if blocked else np.array_equal(np.asarray(a), np.asarray(b))
    pipe.safety = SafetyFilter.parse(SPEC)
    try:
        assert pipe.config_dict()["safety"]["concepts"][0]["threshold"] == 0.6
    finally:
        pipe.safety = None


@pytest.mark.parametrize("bad", ["no threshold=a cop", "x=a cop@high", "=@0.5", "x=a cop@2"])
def test_filter_spec_errors(bad):
    with pytest.raises(InputError, match="NAME=TEXT"):
        SafetyFilter.parse(bad)
