"""Stage 4: train the latent decoder (a UNet by default, or a DiT) conditioned on the CLIP image
embedding of the training image and on the caption's text states (frozen CLIP, frozen
autoencoder); v-prediction, cosine schedule, EMA, conditioning dropout for classifier-free
guidance, and a loss that can weigh object pixels above the plain background and a person's skin
(head and legs) above the rest."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from t2i_audit.generator.models.autoencoder import Autoencoder, to_pixels
from t2i_audit.generator.models.component_configs import SchedulerConfig
from t2i_audit.generator.models.pictoworld_clip import ClipBundle
from t2i_audit.generator.models.unet import UNetConfig, build_decoder
from t2i_audit.generator.training.stage_configs import DecoderStageConfig
from t2i_audit.generator.training.train_prior import clip_targets, save_component
from t2i_audit.generator.training.training_state import run_stage, world_batch
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.vocab import SKIN_RGB

DECODER_SCHEDULER = SchedulerConfig(prediction_type="v_prediction")


def _colour_distance(imgs: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) largest per-channel distance of uint8 images (B,3,H,W) from one colour per image
    (B,3) or (B,1) (a grey level)."""
    return (imgs.to(torch.int16) - rgb.to(torch.int16)[:, :, None, None]).abs().amax(dim=1, keepdim=True)


def object_mask(imgs: torch.Tensor, backgrounds: list[int], latent_size: int, threshold: int = 12) -> torch.Tensor:
    """(B,1,h,w) float mask of latent pixels whose image footprint holds any non-background pixel
    (PictoWorld backgrounds are one flat grey, so this is exact on training renders)."""
    fg = _colour_distance(imgs, torch.tensor(backgrounds)[:, None]) > threshold
    return F.adaptive_max_pool2d(fg.float(), latent_size)


def skin_mask(imgs: torch.Tensor, scenes: list, latent_size: int, threshold: int = 12) -> torch.Tensor:
    """(B,1,h,w) float mask of latent pixels whose image footprint holds the person's skin colour
    (head and, for skirts, legs); all zero for scenes without a person. Exact on training renders,
    which are drawn in crisp palette colours."""
    rgb = torch.tensor([SKIN_RGB[s.person.skin] if s.person else (0, 0, 0) for s in scenes])
    has_person = torch.tensor([s.person is not None for s in scenes])[:, None, None, None]
    hit = (_colour_distance(imgs, rgb) <= threshold) & has_person
    return F.adaptive_max_pool2d(hit.float(), latent_size)


def noised_batch(clip: ClipBundle, ae: Autoencoder, noise_sched, step: int, batch: int, spec: BiasSpec, *,
                 seed: int, data_seed: int, kind_weights: dict | None):
    """Decoder training batch ``step``: renders of stream ``data_seed`` (images, scenes), their
    caption states, valid mask and CLIP image embeddings, clean latents x0, the noise and timesteps
    drawn from the step's generator, and that generator (for the caller's further draws)."""
    imgs, caps, scenes = world_batch(data_seed, step * batch, batch, spec, ae.config.image_size,
                                     kind_weights=kind_weights)
    states, _, valid, img = clip_targets(clip, imgs, caps)
    with torch.no_grad():
        x0 = ae.encode(to_pixels(imgs))
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,), generator=g)
    return imgs, scenes, states, valid, img, x0, noise, t, g


def train_decoder(out, clip: ClipBundle, autoencoder: Autoencoder, config: DecoderStageConfig | None = None, *,
                  spec: BiasSpec | None = None, progress: bool = True, init_weights=None) -> torch.nn.Module:
    """Train the decoder stage in ``out`` as ``config`` says (see stage_configs.DecoderStageConfig);
    ``spec`` is the bias spec its people are drawn from, ``init_weights`` a fine-tune's start."""
    from diffusers import DDPMScheduler

    c = config or DecoderStageConfig()
    spec = spec or BiasSpec.load()
    ae = autoencoder.eval()
    cfg = c.model_config() or UNetConfig(in_channels=ae.config.latent_channels, input_size=ae.latent_size,
                                         cond_dim=clip.config.embed_dim, text_dim=clip.config.text_width)
    torch.manual_seed(c.seed)
    model = build_decoder(cfg, clip.config.context_length)
    noise_sched = DDPMScheduler(**DECODER_SCHEDULER.to_dict())
    clip.model.eval()
    batch, drop_both, drop_one = c.batch, c.drop_both, c.drop_one

    def step_fn(step: int):
        imgs, scenes, states, valid, img, x0, noise, t, g = noised_batch(
            clip, ae, noise_sched, step, batch, spec, seed=c.seed, data_seed=c.data_seed, kind_weights=c.kind_weights)
        r = torch.rand(batch, generator=g)
        drop_img = (r < drop_both) | ((r >= drop_both) & (r < drop_both + drop_one))
        drop_txt = (r < drop_both) | ((r >= drop_both + drop_one) & (r < drop_both + 2 * drop_one))
        pred = model(noise_sched.add_noise(x0, noise, t), t, img, states, valid, drop_img, drop_txt)
        err = (pred - noise_sched.get_velocity(x0, noise, t)).pow(2)
        if c.object_weight or c.skin_weight:
            w = torch.ones_like(err[:, :1])
            if c.object_weight:
                w = w + c.object_weight * object_mask(imgs, [s.background for s in scenes], x0.shape[-1])
            if c.skin_weight:
                w = w + c.skin_weight * skin_mask(imgs, scenes, x0.shape[-1])
            loss = (err * w).mean() / w.mean()
            return loss, {"mse": err.mean().item()}
        return err.mean(), {}

    def on_save(ema_model, step):
        save_component(ema_model, f"{out}/decoder", DECODER_SCHEDULER)

    ema = run_stage("decoder", out, model, step_fn, steps=c.steps, lr=c.lr, weight_decay=0.0,
                    save_every=c.save_every, on_save=on_save, progress=progress, ema_decay=0.999,
                    init_weights=init_weights, config=c)
    return ema.model.eval()
