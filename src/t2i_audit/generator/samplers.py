"""Samplers: short functions over one model contract, driven by diffusers schedulers.

``denoise(x_t, t) -> model output`` (already guided) is the only thing a sampler sees. DDPM
(ancestral, the reference), DDIM (eta = 0), DPM-Solver++ (multistep, 2nd order) and its stochastic
variant SDE-DPM-Solver++ are diffusers schedulers built from the same training noise schedule. Noise comes from one torch.Generator per
image, so an image depends on its own seed and never on the batch it was drawn in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.generator.configs import SAMPLERS, SchedulerConfig


def make_scheduler(name: str, cfg: SchedulerConfig):
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    common = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                  prediction_type=cfg.prediction_type)
    if name == "ddpm":
        return DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small")
    if name == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                             timestep_spacing="trailing")
    if name in ("dpm++", "dpmpp", "dpm-solver++"):
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", final_sigmas_type="zero")
    if name in ("dpm++sde", "sde-dpm++"):  # stochastic: fresh noise from each image's generator
        return DPMSolverMultistepScheduler(**common, algorithm_type="sde-dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", final_sigmas_type="zero")
    raise InputError(f"unknown sampler {name!r}{did_you_mean(name, SAMPLERS)}; "
                     f"choose one of {', '.join(SAMPLERS)}")


def initial_noise(shape: tuple[int, ...], generators: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


@torch.inference_mode()
def sample(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, scheduler,
           steps: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Run ``scheduler`` for ``steps`` from noise ``x`` (already drawn per image)."""
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    scheduler.set_timesteps(steps)
    x = x * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        out = denoise(scheduler.scale_model_input(x, t), tt)
        x = scheduler.step(out, t, x, generator=generators).prev_sample
    return x


def guided(model_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], scale: float):
    """Classifier-free guidance with the conditional and unconditional branches in one batch.
    ``model_fn(x, t, drop)`` runs the model with conditioning dropped where ``drop`` is True."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if scale == 1.0:
            return model_fn(x, t, torch.zeros(b, dtype=torch.bool))
        if scale == 0.0:
            return model_fn(x, t, torch.ones(b, dtype=torch.bool))
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), drop)
        cond, uncond = out[:b], out[b:]
        return uncond + scale * (cond - uncond)

    return denoise
