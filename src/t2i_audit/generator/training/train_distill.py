"""Guidance distillation of the decoder (Meng et al. 2023, "On distillation of guided diffusion
models", stage one): a student decoder learns to output, in one evaluation, what the teacher's
classifier-free guidance computes from two (unconditional + scale x (conditional - unconditional)).
Sampling at that scale then needs half the decoder work.

The student starts from the teacher's weights and sees the decoder's own training inputs: renders'
latents noised at uniform timesteps, conditioned on their true CLIP image embeddings and caption
states. The loss is the mean squared error against the teacher's guided v-prediction.
"""

from __future__ import annotations

import copy

import torch

from t2i_audit.errors import InputError
from t2i_audit.generator.models.autoencoder import Autoencoder
from t2i_audit.generator.models.pictoworld_clip import ClipBundle
from t2i_audit.generator.training.stage_configs import DistillStageConfig
from t2i_audit.generator.training.train_decoder import DECODER_SCHEDULER, noised_batch
from t2i_audit.generator.training.train_prior import save_component
from t2i_audit.generator.training.training_state import run_stage
from t2i_audit.world.bias import BiasSpec


def guided_target(teacher: torch.nn.Module, z: torch.Tensor, t: torch.Tensor, img: torch.Tensor,
                  states: torch.Tensor, valid: torch.Tensor, scale: float) -> torch.Tensor:
    """The teacher's classifier-free-guided output, both branches in one batch exactly as the
    sampler runs them (``samplers.guided``: the unconditional branch drops image and text)."""
    b = z.shape[0]
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
    with torch.no_grad():
        out = teacher(torch.cat([z, z]), torch.cat([t, t]), torch.cat([img, img]),
                      torch.cat([states, states]), torch.cat([valid, valid]), drop, drop)
    cond, uncond = out[:b], out[b:]
    return uncond + scale * (cond - uncond)


def distill_guidance(out, clip: ClipBundle, autoencoder: Autoencoder, teacher: torch.nn.Module,
                     config: DistillStageConfig | None = None, *, spec: BiasSpec | None = None,
                     progress: bool = True, student: torch.nn.Module | None = None) -> torch.nn.Module:
    """Train a guidance-distilled copy of ``teacher`` at guidance ``config.guidance``; the EMA
    student is saved as ``out/decoder`` with ``distilled_guidance`` = that scale in its config.

    ``student`` continues an earlier distillation at the same scale (e.g. on another scene mix)
    instead of starting from the teacher's weights."""
    from diffusers import DDPMScheduler

    c = config or DistillStageConfig()
    scale, seed, batch, data_seed, kind_weights = c.guidance, c.seed, c.batch, c.data_seed, c.kind_weights
    if getattr(teacher.config, "distilled_guidance", 0.0):
        raise InputError("the teacher decoder is already guidance-distilled; distil from a plain decoder")
    if not hasattr(teacher.config, "distilled_guidance"):
        raise InputError(f"guidance distillation supports the UNet decoder, not {type(teacher).__name__}")
    if scale <= 1.0:
        raise InputError(f"distilled guidance scale must be above 1 (got {scale}); at 1 there is "
                         "nothing to distil")
    spec = spec or BiasSpec.load()
    teacher = teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if student is None:
        student = copy.deepcopy(teacher)
        student.config.distilled_guidance = float(scale)
    elif student.config.distilled_guidance != float(scale):
        raise InputError(f"the student decoder is distilled at guidance "
                         f"{student.config.distilled_guidance:g}, not {scale:g}; continue it at its own scale")
    student = student.train()
    for p in student.parameters():
        p.requires_grad_(True)
    ae = autoencoder.eval()
    noise_sched = DDPMScheduler(**DECODER_SCHEDULER.to_dict())
    clip.model.eval()

    def step_fn(step: int):
        _, _, states, valid, img, x0, noise, t, _ = noised_batch(
            clip, ae, noise_sched, step, batch, spec, seed=seed, data_seed=data_seed, kind_weights=kind_weights)
        z = noise_sched.add_noise(x0, noise, t)
        target = guided_target(teacher, z, t, img, states, valid, scale)
        pred = student(z, t, img, states, valid)
        return (pred - target).pow(2).mean(), {}

    def on_save(ema_model, step):
        save_component(ema_model, f"{out}/decoder", DECODER_SCHEDULER)

    ema = run_stage("decoder", out, student, step_fn, steps=c.steps, lr=c.lr, weight_decay=0.0,
                    save_every=c.save_every, on_save=on_save, progress=progress, ema_decay=0.995, config=c)
    return ema.model.eval()
