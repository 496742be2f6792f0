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
from t2i_audit.generator.models.component_configs import SAMPLERS, SchedulerConfig


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


def check_interval(interval, name: str = "guidance_interval") -> tuple[float, float]:
    """``[lo, hi]`` with 0 <= lo <= hi <= 1 as floats, else InputError naming the fix."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise InputError(f"{name} {interval!r}: give two numbers [lo, hi] in 0..1, e.g. [0.0, 0.6]") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise InputError(f"{name} {interval!r}: need 0 <= lo <= hi <= 1 (fractions of the training "
                         "timesteps), e.g. [0.0, 0.6]")
    return lo, hi


def guided(model_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], scale: float,
           interval=(0.0, 1.0), num_train_timesteps: int = 1000):
    """Classifier-free guidance with the conditional and unconditional branches in one batch.
    ``model_fn(x, t, drop)`` runs the model with conditioning dropped where ``drop`` is True.

    Guidance in a limited interval (Kynkaenniemi et al. 2024): the guided combination is used only
    at steps whose timestep fraction t / T lies in ``interval`` = [lo, hi]; elsewhere the
    conditional branch runs alone, so the unconditional evaluation is skipped (a real speed-up).
    The decision depends on t only, the same for every row, so an image still depends on its seed
    and not on its batch."""
    lo, hi = check_interval(interval)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        frac = float(t[0]) / num_train_timesteps
        if scale == 1.0 or not lo <= frac <= hi:
            return model_fn(x, t, torch.zeros(b, dtype=torch.bool))
        if scale == 0.0:
            return model_fn(x, t, torch.ones(b, dtype=torch.bool))
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), drop)
        cond, uncond = out[:b], out[b:]
        return uncond + scale * (cond - uncond)

    return denoise
