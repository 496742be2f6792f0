"""Stage 3: train the diffusion prior (text -> CLIP image embedding) with a frozen CLIP."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from t2i_audit.generator.models.component_configs import PriorConfig, SchedulerConfig
from t2i_audit.generator.models.pictoworld_clip import ClipBundle, text_states
from t2i_audit.generator.models.prior import Prior
from t2i_audit.generator.models.safetensors_io import save_safetensors
from t2i_audit.generator.training.stage_configs import PriorStageConfig
from t2i_audit.generator.training.training_state import run_stage, stage_meta_path, world_batch
from t2i_audit.world.bias import BiasSpec

PRIOR_SCHEDULER = SchedulerConfig(prediction_type="sample")


def save_component(module, directory, scheduler: SchedulerConfig | None = None) -> None:
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    module.config.save(d / "config.json")
    if scheduler is not None:
        scheduler.save(d / "scheduler.json")
    save_safetensors(module.state_dict(), d / "model.safetensors")


@torch.no_grad()
def clip_targets(clip: ClipBundle, imgs: torch.Tensor, caps: list[str]):
    tokens = clip.tokenizer(caps)
    states, pooled = text_states(clip.model, tokens)
    img = clip.model.encode_image(clip.normalize(imgs), normalize=True)
    return states, F.normalize(pooled, dim=-1), tokens != 0, img


SPACE_FIT_RENDERS = 4096  # renders the whitening of a "whitened" prior is fit on


@torch.no_grad()
def fit_prior_space(model: Prior, clip: ClipBundle, data_seed: int, spec: BiasSpec,
                    kind_weights: dict | None, progress: bool = True) -> None:
    """Fit a whitened prior's PCA whitening on the CLIP embeddings of SPACE_FIT_RENDERS renders of
    the training mix, from a scene stream of its own (seed ``data_seed + 1_000_000``)."""
    embeds = []
    for start in range(0, SPACE_FIT_RENDERS, 256):
        imgs, caps, _ = world_batch(data_seed + 1_000_000, start, 256, spec, clip.config.image_size,
                                    kind_weights=kind_weights)
        embeds.append(clip_targets(clip, imgs, caps)[3])
    summary = model.fit_space(torch.cat(embeds))
    if progress:
        print(f"prior space: whitened on {summary['n']} renders, total variance "
              f"{summary['total_variance']:.2f}, top eigenvalues {summary['top_eigenvalues']}, "
              f"{summary['floored']} below the floor")


def _start_in_space(model: Prior, init_weights, fit) -> dict | None:
    """Where a fresh whitened ``model`` starts. A whitened source brings its own space (``fit`` is
    not run). Otherwise ``fit()`` fits this data's space, and a scaled-space source's input and
    output layers are folded through it (x = B diag(s) z + m), so the trunk starts computing the
    source's function; only the noise it sees is new."""
    from t2i_audit.generator.models.safetensors_io import load_state

    state = None if init_weights is None else dict(load_state(init_weights))
    if state is not None and "space_basis" in state:
        return state
    fit()
    if state is None:
        return None
    own = model.state_dict()
    basis, std, mean = own["space_basis"], own["space_std"], own["space_mean"]
    w_in, b_in = state["noisy.weight"].float(), state["noisy.bias"].float()
    state["noisy.weight"] = w_in @ basis * std
    state["noisy.bias"] = b_in + w_in @ mean
    w_out, b_out = state["out.weight"].float(), state["out.bias"].float()
    state["out.weight"] = (basis.T @ w_out) / std[:, None]
    state["out.bias"] = (basis.T @ (b_out - mean)) / std
    for k in ("space_basis", "space_std", "space_mean"):
        state[k] = own[k].clone()
    return state


def train_prior(out, clip: ClipBundle, config: PriorStageConfig | None = None, *, spec: BiasSpec | None = None,
                progress: bool = True, init_weights=None) -> Prior:
    """Train the prior stage in ``out`` as ``config`` says (see stage_configs.PriorStageConfig)."""
    from diffusers import DDPMScheduler

    c = config or PriorStageConfig()
    spec = spec or BiasSpec.load()
    seed, batch, data_seed, kind_weights = c.seed, c.batch, c.data_seed, c.kind_weights
    cfg = c.model_config() or PriorConfig(embed_dim=clip.config.embed_dim, text_dim=clip.config.text_width,
                                          context_length=clip.config.context_length)
    cfg.embed_scale = math.sqrt(cfg.embed_dim)
    torch.manual_seed(seed)
    model = Prior(cfg)
    noise_sched = DDPMScheduler(**PRIOR_SCHEDULER.to_dict())
    clip.model.eval()
    if cfg.space == "whitened" and not stage_meta_path(out, "prior").is_file():
        init_weights = _start_in_space(model, init_weights, lambda: fit_prior_space(
            model, clip, data_seed, spec, kind_weights, progress))

    def step_fn(step: int):
        imgs, caps, _ = world_batch(data_seed, step * batch, batch, spec, clip.config.image_size,
                                    kind_weights=kind_weights)
        states, pooled, valid, img = clip_targets(clip, imgs, caps)
        x0 = model.to_space(img)
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,), generator=g)
        drop = torch.rand(batch, generator=g) < c.cond_drop
        pred = model(noise_sched.add_noise(x0, noise, t), t, states, pooled, valid, drop)
        loss = F.mse_loss(pred, x0)
        cos = F.cosine_similarity(pred, x0, dim=-1).mean().item()
        return loss, {"cos": cos}

    def on_save(ema_model, step):
        save_component(ema_model, f"{out}/prior", PRIOR_SCHEDULER)

    ema = run_stage("prior", out, model, step_fn, steps=c.steps, lr=c.lr, weight_decay=0.01,
                    save_every=c.save_every, on_save=on_save, progress=progress, ema_decay=0.999,
                    init_weights=init_weights, config=c)
    return ema.model.eval()
