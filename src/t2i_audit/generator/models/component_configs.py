"""Config dataclasses of every generator component. Each round-trips through JSON, and a checkpoint
directory stores one JSON per component so that it rebuilds itself without code changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from t2i_audit.core.config import ConfigBase, read_config_json  # noqa: F401 (read_config_json re-exported)


class _JsonConfig(ConfigBase):
    """Generator component configs: core.config.ConfigBase, written with a 2-space indent."""

    JSON_INDENT = 2


@dataclass
class ClipConfig(_JsonConfig):
    embed_dim: int = 128
    image_size: int = 32
    patch_size: int = 4
    vision_width: int = 128
    vision_layers: int = 4
    vision_head_width: int = 32
    text_width: int = 128
    text_layers: int = 4
    text_heads: int = 4
    context_length: int = 24
    vocab_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def open_clip_config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {"image_size": self.image_size, "layers": self.vision_layers,
                           "width": self.vision_width, "patch_size": self.patch_size,
                           "head_width": self.vision_head_width},
            "text_cfg": {"context_length": self.context_length, "vocab_size": self.vocab_size,
                         "width": self.text_width, "heads": self.text_heads, "layers": self.text_layers},
        }


@dataclass
class AutoencoderConfig(_JsonConfig):
    in_channels: int = 3
    latent_channels: int = 4
    channels: tuple[int, ...] = (32, 64)  # one downsample (x2) per entry after the first
    image_size: int = 32
    scaling: float = 1.0  # latents are multiplied by this before diffusion (set after training)
    shift: float = 0.0


@dataclass
class DiTConfig(_JsonConfig):
    """A DiT-style transformer denoiser over latent patches, conditioned in context."""

    architecture: str = "dit"
    in_channels: int = 4
    input_size: int = 16
    patch_size: int = 2
    width: int = 192
    layers: int = 6
    heads: int = 4
    cond_dim: int = 128  # CLIP image embedding dim
    text_dim: int = 128  # text token state width
    cond_tokens: int = 4  # tokens the CLIP image embedding is projected into
    prediction: str = "v_prediction"


@dataclass
class PriorConfig(_JsonConfig):
    """A transformer diffusion prior in CLIP space (text -> CLIP image embedding)."""

    embed_dim: int = 128
    text_dim: int = 128
    width: int = 192
    layers: int = 4
    heads: int = 4
    context_length: int = 24
    prediction: str = "sample"  # predicts the clean embedding, as DALL-E 2's prior
    embed_scale: float = 1.0  # normalised embeddings are multiplied by this (set at training)
    # The space the prior diffuses in: "scaled" (the scaled embedding itself) or "whitened" (its
    # PCA coordinates divided by their standard deviation, fit on training renders at the start of
    # training and stored with the weights). In the scaled space, clothing colour spans <1% of the
    # variance and an under-fit prior averages it out; whitened, every direction weighs the same.
    space: str = "scaled"
    # Whitening never divides by a standard deviation below sqrt(whiten_floor) (scaled units; the
    # mean eigenvalue of the scaled embedding is ~0.6): near-empty directions stay near zero.
    whiten_floor: float = 0.01
    # Each PCA coordinate is divided by eigenvalue ** whiten_exponent: 0.5 whitens fully (every
    # direction unit variance), 0.25 half-way (variances become sqrt(eigenvalue): the clothing
    # directions gain weight while the prior's errors in the large directions, multiplied back by
    # eigenvalue ** exponent when unwhitened, grow less).
    whiten_exponent: float = 0.5
    # > 0: eigenvalues above this are not scaled down (divided by 1, not their own power): only the
    # small directions are lifted, and the large ones keep the precision of an unwhitened prior.
    whiten_ceiling: float = 0.0


@dataclass
class SchedulerConfig(_JsonConfig):
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"


SAMPLERS = ("ddpm", "ddim", "dpm++", "dpm++sde")  # built by samplers.make_scheduler


@dataclass
class SamplerParams(_JsonConfig):
    """Sampling settings; the defaults are the documented default sampler."""

    sampler: str = "dpm++sde"  # dpm++sde | dpm++ | ddim | ddpm
    steps: int = 15
    guidance: float = 2.0
    prior_sampler: str = "dpm++sde"
    prior_steps: int = 15
    prior_guidance: float = 1.0
    # Guidance only where the training timestep t / T lies in [lo, hi] (Kynkaanniemi et al. 2024,
    # "Applying guidance in a limited interval improves sample and distribution quality"); outside
    # it the decoder runs its conditional branch alone (scale 1, half the work). [0, 1] = always.
    guidance_interval: list = field(default_factory=lambda: [0.0, 1.0])
    rerank: int = 1  # draw k candidates per image, keep the CLIP-best
    # The model always runs on exactly this many images at once (the last chunk is padded), so an
    # image's bytes never depend on how many other images were requested with it: CPU kernels
    # pick different code paths for different batch shapes (a 1-row matmul is a GEMV).
    micro_batch: int = 16
    # The prior's fixed chunk (None: ``micro_batch``). The prior is a small transformer whose
    # matrix products gain from more rows at once on two CPU threads (22.6 -> 25.9 samples/s from
    # 16 to 64 rows); its rows are then handed to the decoder ``micro_batch`` at a time.
    prior_micro_batch: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def prior_chunk(self) -> int:
        """Rows per prior call: ``prior_micro_batch``, or ``micro_batch`` where unset."""
        return self.micro_batch if self.prior_micro_batch is None else self.prior_micro_batch
