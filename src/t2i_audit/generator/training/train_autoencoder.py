"""Stage 2: train the latent autoencoder on PictoWorld renders, then set its latent scaling."""

from __future__ import annotations

import torch

from t2i_audit.generator.models.autoencoder import Autoencoder, to_pixels
from t2i_audit.generator.models.safetensors_io import save_safetensors
from t2i_audit.generator.training.stage_configs import AutoencoderStageConfig
from t2i_audit.generator.training.training_state import run_stage, world_batch
from t2i_audit.world.bias import BiasSpec


def save_autoencoder(model: Autoencoder, directory) -> None:
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model.config.save(d / "config.json")
    save_safetensors(model.state_dict(), d / "model.safetensors")


@torch.no_grad()
def calibrate_scaling(model: Autoencoder, spec: BiasSpec, n: int = 512, data_seed: int = 909) -> None:
    """Set shift/scaling so that latents have zero mean and unit variance (as SD's 0.18215)."""
    imgs, _, _ = world_batch(data_seed, 0, n, spec, model.config.image_size)
    z = model.encoder(to_pixels(imgs))
    model.config.shift = float(z.mean())
    model.config.scaling = float(1.0 / z.std())


def train_autoencoder(out, config: AutoencoderStageConfig | None = None, *, spec: BiasSpec | None = None,
                      progress: bool = True, init_weights=None) -> Autoencoder:
    """Train the autoencoder stage in ``out`` as ``config`` says (stage_configs.AutoencoderStageConfig)."""
    c = config or AutoencoderStageConfig()
    spec = spec or BiasSpec.load()
    cfg = c.model_config()
    seed, batch, data_seed = c.seed, c.batch, c.data_seed
    torch.manual_seed(seed)
    model = Autoencoder(cfg)

    def step_fn(step: int):
        imgs, _, _ = world_batch(data_seed, step * batch, batch, spec, cfg.image_size)
        torch.manual_seed(seed * 1_000_003 + step)  # the latent noise of this step
        loss, parts = model.loss(to_pixels(imgs))
        return loss, parts

    ema = run_stage("autoencoder", out, model, step_fn, steps=c.steps, lr=c.lr, ema_decay=0.995,
                    save_every=c.save_every, progress=progress, init_weights=init_weights, config=c)
    final = ema.model.eval()
    calibrate_scaling(final, spec)
    save_autoencoder(final, f"{out}/autoencoder")
    return final
