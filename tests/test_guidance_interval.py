"""Guidance in a limited interval (Kynkaenniemi et al. 2024): the guided combination only where the
timestep fraction lies in [lo, hi], the unconditional branch skipped elsewhere; the setting is
validated, recorded in the params, and keeps an image independent of its batch."""

from __future__ import annotations

import pytest
import torch

from t2i_audit.errors import InputError
from t2i_audit.generator.samplers.diffusion_samplers import check_interval, guided


def _model():
    calls = []

    def model_fn(x, t, drop):
        calls.append(x.shape[0])
        return torch.where(drop[:, None], torch.zeros_like(x), x + 1.0)  # uncond 0, cond x + 1

    return model_fn, calls


@pytest.mark.parametrize("t, inside", [(999, False), (601, False), (600, True), (300, True), (0, True)])
def test_guidance_applies_only_inside_the_interval(t, inside):
    model_fn, calls = _model()
    x = torch.arange(6.0).view(3, 2)
    out = guided(model_fn, 3.0, [0.0, 0.6])(x, torch.full((3,), t))
    cond = x + 1.0
    if inside:  # uncond + 3 (cond - uncond) with uncond = 0, both branches in one batch of 6
        assert torch.equal(out, 3.0 * cond) and calls == [6]
    else:  # the conditional branch alone: half the work
        assert torch.equal(out, cond) and calls == [3]


def test_full_interval_is_plain_guidance():
    model_fn, calls = _model()
    x = torch.ones(2, 2)
    for t in (999, 500, 0):
        assert torch.equal(guided(model_fn, 2.0)(x, torch.full((2,), t)), 2.0 * (x + 1.0))
    assert calls == [4, 4, 4]


@pytest.mark.parametrize("bad", [[0.7, 0.2], [-0.1, 0.5], [0.0, 1.5], "0.6", [0.1]])
def test_bad_interval_is_an_input_error(bad):
    with pytest.raises(InputError, match="guidance_interval"):
        check_interval(bad)


def test_interval_recorded_and_batch_independent(tmp_path):
    # A plain (not guidance-distilled) decoder: the bundled one has its guidance built in.
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline
    from test_determinism import random_checkpoint

    torch.set_num_threads(1)
    pipe = Pipeline.load(random_checkpoint(tmp_path))
    # trailing spacing, 2 steps: t = 999 (unguided) and 499 (guided)
    kw = dict(steps=2, prior_steps=1, guidance=3.0, guidance_interval=[0.0, 0.5], micro_batch=2)
    prompts, seeds = ["a red circle", "a chef", "a doctor"], [3, 4, 5]
    full = pipe(prompts, seeds, **kw)
    assert full.params.guidance_interval == [0.0, 0.5]
    one = pipe(prompts[2:], seeds[2:], **kw)
    assert one.images[0].tobytes() == full.images[2].tobytes()
    always = pipe(prompts[2:], seeds[2:], **{**kw, "guidance_interval": [0.0, 1.0]})
    assert always.images[0].tobytes() != one.images[0].tobytes()  # the interval changes the image
    with pytest.raises(InputError, match="guidance_interval"):
        pipe.resolve_params(guidance_interval=[0.9, 0.1])
