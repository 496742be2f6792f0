"""The two generator changes behind the faster, un-collapsed default (issue 26):

- a prior that diffuses in a whitened CLIP space (``PriorConfig.space = "whitened"``), fine-tuned
  from a scaled-space prior by folding the whitening into its input and output layers;
- a guidance-distilled decoder (``decoder_distill_guidance``): one evaluation per step that stands
  for the teacher's two-branch classifier-free guidance.
"""

from __future__ import annotations

import json

import pytest
import torch

from t2i_audit.errors import InputError
from t2i_audit.generator.models.component_configs import PriorConfig
from t2i_audit.generator.models.prior import Prior
from t2i_audit.generator.models.safetensors_io import load_safetensors_into, save_safetensors
from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline
from t2i_audit.generator.samplers.diffusion_samplers import guided
from t2i_audit.generator.training.presets import get_preset
from t2i_audit.generator.training.train_all_stages import train_all
from t2i_audit.generator.training.train_distill import guided_target
from t2i_audit.generator.training.train_prior import _start_in_space


def _anisotropic_embeds(n: int = 400, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, d, generator=g) * torch.linspace(3.0, 0.02, d) + 1.0
    return torch.nn.functional.normalize(raw, dim=-1)


def _small(space: str = "scaled") -> Prior:
    torch.manual_seed(0)
    return Prior(PriorConfig(embed_dim=16, text_dim=8, width=32, layers=1, heads=2, context_length=5,
                             embed_scale=4.0, space=space)).eval()


def test_whitened_coordinates_have_unit_covariance_and_invert():
    prior = _small("whitened")
    e = _anisotropic_embeds()
    summary = prior.fit_space(e)
    z = prior.to_space(e)
    cov = torch.cov(z.T)
    kept = prior.space_std > prior.config.whiten_floor ** 0.5 + 1e-6  # not floored
    assert summary["n"] == 400 and kept.sum() >= 10
    assert torch.allclose(cov.diagonal()[kept], torch.ones(int(kept.sum())), atol=1e-3)
    assert torch.allclose(z.mean(0), torch.zeros(16), atol=1e-4)
    assert torch.allclose(prior.from_space(z), e, atol=1e-5)


@pytest.mark.parametrize("exponent, ceiling", [(0.25, 0.0), (0.5, 0.02)])
def test_partial_whitening_keeps_large_directions_larger(exponent, ceiling):
    prior = Prior(PriorConfig(**{**_small().config.to_dict(), "space": "whitened",
                                 "whiten_exponent": exponent, "whiten_ceiling": ceiling}))
    e = _anisotropic_embeds()
    prior.fit_space(e)
    var = torch.cov(prior.to_space(e).T).diagonal()
    ev = torch.linalg.eigvalsh(torch.cov((e * 4.0).T).double()).flip(0).float()
    kept = ev > prior.config.whiten_floor
    if ceiling:  # above the ceiling: untouched; below: lifted to the ceiling's variance (here 1)
        big = ev > ceiling
        assert torch.allclose(var[big], ev[big], rtol=1e-3)
        assert torch.allclose(var[kept & ~big], torch.ones(int((kept & ~big).sum())), atol=1e-3)
    else:  # variances become eigenvalue ** (1 - 2 * exponent) = sqrt(eigenvalue)
        assert torch.allclose(var[kept], ev[kept].sqrt(), rtol=1e-3)
    assert torch.allclose(prior.from_space(prior.to_space(e)), e, atol=1e-5)


def test_a_scaled_prior_is_the_identity_space():
    prior = _small("scaled")
    e = _anisotropic_embeds(8)
    assert torch.equal(prior.to_space(e), e * 4.0)
    assert prior.fit_space(e) == {} and "space_basis" not in prior.state_dict()


def test_folding_a_scaled_source_keeps_its_function(tmp_path):
    # The fine-tune's start: the whitened prior, given the whitened input, predicts exactly the
    # whitened coordinates of what the scaled source predicts.
    src = _small("scaled")
    save_safetensors(src.state_dict(), tmp_path / "m.safetensors")
    w = _small("whitened")
    e = _anisotropic_embeds()
    load_safetensors_into(w, _start_in_space(w, tmp_path / "m.safetensors", lambda: w.fit_space(e)))
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([5, 100, 500, 900])
    states, pooled = torch.randn(4, 5, 8, generator=g), torch.randn(4, 16, generator=g)
    valid = torch.ones(4, 5, dtype=torch.bool)
    with torch.no_grad():
        a = src(e[:4] * 4.0, t, states, pooled, valid)
        b = w(w.to_space(e[:4]), t, states, pooled, valid)
    assert torch.allclose(w.to_space(a / 4.0), b, atol=1e-4)
    unfolded = _small("whitened")  # the source weights copied as they are: another function
    unfolded.load_state_dict({**src.state_dict(), **{k: v for k, v in w.state_dict().items() if k.startswith("space_")}})
    with torch.no_grad():
        assert not torch.allclose(unfolded(w.to_space(e[:4]), t, states, pooled, valid), b, atol=1e-2)


def test_unknown_prior_space_is_an_input_error():
    with pytest.raises(InputError, match="whitened"):
        Prior(PriorConfig(space="whitend"))


def test_guided_target_is_what_the_sampler_computes():
    calls = []

    class Teacher(torch.nn.Module):
        def forward(self, z, t, img, states, valid, drop_img, drop_txt):
            calls.append(z.shape[0])
            cond = z * 2.0 + img.sum(-1)[:, None, None, None]
            return torch.where(drop_img[:, None, None, None], z * 0.5, cond)

    teacher = Teacher()
    z, t = torch.randn(3, 2, 4, 4), torch.full((3,), 400)
    img, states, valid = torch.randn(3, 5), torch.randn(3, 6, 8), torch.ones(3, 6, dtype=torch.bool)
    target = guided_target(teacher, z, t, img, states, valid, 2.0)

    def model_fn(x, tt, drop):
        def rep(v):
            return torch.cat([v] * (x.shape[0] // v.shape[0]))

        return teacher(x, tt, rep(img), rep(states), rep(valid), drop, drop)

    assert torch.allclose(target, guided(model_fn, 2.0)(z, t))
    assert calls[0] == 6  # both branches in one batch


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """A tiny checkpoint, then the issue-26 recipe on it: whitened prior + distilled decoder."""
    base = tmp_path_factory.mktemp("base")
    train_all(base, get_preset("tiny"), progress=False, log=lambda *a: None)
    preset = get_preset("tiny")
    preset.prior = {**preset.prior, "space": "whitened"}
    preset.decoder_distill_guidance = 2.0
    preset.steps = {**preset.steps, "prior": 4, "decoder": 4}
    out = tmp_path_factory.mktemp("ft")
    train_all(out, preset, stages=("prior", "decoder"), progress=False, log=lambda *a: None, init_from=base)
    return base, out


def test_recipe_checkpoint_records_and_loads(finetuned):
    base, out = finetuned
    training = json.loads((out / "index.json").read_text())["training"]
    assert training["decoder_distill_guidance"] == 2.0
    assert training["init_from"]["finetuned"] == ["decoder", "prior"]
    assert "decoder_object_weight" not in training  # the distillation loss is unweighted
    pipe = Pipeline.load(out)
    assert pipe.prior.config.space == "whitened" and pipe.distilled_guidance == 2.0
    assert not torch.equal(pipe.prior.space_basis, torch.eye(pipe.prior.config.embed_dim))  # fit, saved


def test_distilled_decoder_runs_once_per_step_and_refuses_other_guidance(finetuned):
    _, out = finetuned
    pipe = Pipeline.load(out)
    rows = []
    hook = pipe.decoder.register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
    p = pipe.resolve_params(guidance=2.0, steps=3, prior_steps=2, micro_batch=4)
    pipe(["a red circle"], [3], p)
    hook.remove()
    assert rows == [4, 4, 4]  # three steps, one evaluation each, no unconditional half
    for bad in ({"guidance": 3.0}, {"guidance": 2.0, "guidance_interval": [0.4, 1.0]}):
        with pytest.raises(InputError, match="guidance-distilled at guidance 2"):
            pipe(["a red circle"], [3], **bad)


def test_distilled_default_is_batch_independent(finetuned):
    _, out = finetuned
    pipe = Pipeline.load(out)
    prompts = ["a red circle", "a chef", "two blue squares", "a doctor", "a green triangle"]
    seeds = [11, 12, 13, 14, 15]
    together = pipe(prompts, seeds, steps=3, prior_steps=2, micro_batch=4).images
    alone = [pipe([p], [s], steps=3, prior_steps=2, micro_batch=4).images[0] for p, s in zip(prompts, seeds)]
    assert [a.tobytes() for a in together] == [b.tobytes() for b in alone]


def test_distillation_needs_a_teacher(tmp_path):
    preset = get_preset("tiny")
    preset.decoder_distill_guidance = 2.0
    with pytest.raises(InputError, match="--init-from"):
        train_all(tmp_path / "x", preset, progress=False, log=lambda *a: None)


def _distil_preset(steps: int = 2):
    preset = get_preset("tiny")
    preset.decoder_distill_guidance = 2.0
    preset.steps = {**preset.steps, "decoder": steps}
    return preset


def test_continued_distillation_starts_from_the_student(finetuned, tmp_path):
    """A distilling preset on an already-distilled decoder continues it (teacher from --teacher):
    two more steps leave the weights beside the earlier student's, far from the teacher's."""
    from safetensors.torch import load_file

    base, student = finetuned
    out = tmp_path / "more"
    train_all(out, _distil_preset(), stages=("decoder",), progress=False, log=lambda *a: None,
              init_from=student, teacher_from=base)
    w = {k: load_file(d / "decoder" / "model.safetensors") for k, d in
         (("more", out), ("student", student), ("teacher", base))}

    def dist(a, b):
        return sum((w[a][k].float() - w[b][k].float()).pow(2).sum() for k in w[a]).item()

    assert dist("more", "student") < 0.1 * dist("more", "teacher")
    assert Pipeline.load(out).distilled_guidance == 2.0
    chain = json.loads((out / "index.json").read_text())["training"]["init_from"]
    assert chain["distill_teacher"] == json.loads((base / "index.json").read_text())["id"]


def test_continued_distillation_needs_the_plain_teacher(finetuned, tmp_path):
    base, student = finetuned
    with pytest.raises(InputError, match="--teacher"):
        train_all(tmp_path / "a", _distil_preset(), stages=("decoder",), progress=False,
                  log=lambda *a: None, init_from=student)
    with pytest.raises(InputError, match="give --init-from"):
        train_all(tmp_path / "c", _distil_preset(), stages=("decoder",), progress=False,
                  log=lambda *a: None, teacher_from=base)
    with pytest.raises(InputError, match="plain and is itself the teacher"):
        train_all(tmp_path / "b", _distil_preset(), stages=("decoder",), progress=False,
                  log=lambda *a: None, init_from=base, teacher_from=base)
