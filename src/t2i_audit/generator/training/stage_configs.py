"""One config dataclass per training stage: everything a stage's recipe needs, as JSON-able data.

``stage_config(preset, stage)`` builds a stage's config from a resolved :class:`Preset`; each
config round-trips through JSON (``to_json``/``from_json``) and records the hash of the preset it
came from (``preset_hash``), which the stage writes into its train state so that a resume can tell
whether it continues the same recipe. The defaults are the stage functions' historical defaults;
a preset sets steps, batch, learning rate, save interval and the knobs it owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2i_audit.generator.models.component_configs import (
    AutoencoderConfig,
    ClipConfig,
    PriorConfig,
    _JsonConfig,
)
from t2i_audit.generator.training.presets import Preset


@dataclass
class ClipStageConfig(_JsonConfig):
    model: dict = field(default_factory=lambda: ClipConfig().to_dict())
    steps: int = 2000
    batch: int = 128
    lr: float = 1e-3
    seed: int = 1
    save_every: int = 200
    data_seed: int = 101
    preset_hash: str | None = None

    def model_config(self) -> ClipConfig:
        return ClipConfig.from_dict(self.model, "clip stage config")


@dataclass
class AutoencoderStageConfig(_JsonConfig):
    model: dict = field(default_factory=lambda: AutoencoderConfig().to_dict())
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    seed: int = 2
    save_every: int = 250
    data_seed: int = 202
    preset_hash: str | None = None

    def model_config(self) -> AutoencoderConfig:
        return AutoencoderConfig.from_dict(self.model, "autoencoder stage config")


@dataclass
class PriorStageConfig(_JsonConfig):
    model: dict | None = None  # None: a PriorConfig sized to the CLIP it trains against
    steps: int = 2000
    batch: int = 256
    lr: float = 5e-4
    seed: int = 3
    cond_drop: float = 0.1
    save_every: int = 200
    data_seed: int = 303
    kind_weights: dict | None = None
    preset_hash: str | None = None

    def model_config(self) -> PriorConfig | None:
        return None if self.model is None else PriorConfig.from_dict(self.model, "prior stage config")


@dataclass
class DecoderStageConfig(_JsonConfig):
    model: dict | None = None  # None: a UNetConfig sized to the CLIP and autoencoder
    steps: int = 3000
    batch: int = 64
    lr: float = 4e-4
    seed: int = 4
    drop_both: float = 0.1  # conditioning dropout for classifier-free guidance: both, then each alone
    drop_one: float = 0.05
    object_weight: float = 0.0
    skin_weight: float = 0.0
    save_every: int = 200
    data_seed: int = 404
    kind_weights: dict | None = None
    preset_hash: str | None = None

    def model_config(self):
        from t2i_audit.generator.models.unet import decoder_config_from_dict

        return None if self.model is None else decoder_config_from_dict(self.model, "decoder stage config")


@dataclass
class DistillStageConfig(_JsonConfig):
    guidance: float = 2.0  # the guidance scale the student learns to sample at
    steps: int = 1200
    batch: int = 32
    lr: float = 1e-4
    seed: int = 5
    save_every: int = 100
    data_seed: int = 412
    kind_weights: dict | None = None
    preset_hash: str | None = None


STAGE_CONFIGS = {"clip": ClipStageConfig, "autoencoder": AutoencoderStageConfig, "prior": PriorStageConfig,
                 "decoder": DecoderStageConfig, "distill": DistillStageConfig}


def stage_config(preset: Preset, stage: str):
    """The config of ``stage`` (clip, autoencoder, prior, decoder or distill) that ``preset``
    trains with: its steps, batch and save interval, its learning rate where the preset sets one,
    and the stage's own knobs; ``preset_hash`` names the preset."""
    key = "decoder" if stage == "distill" else stage
    common = {"steps": preset.steps[key], "batch": preset.batch[key], "save_every": preset.save_every,
              "preset_hash": preset.hash}
    if key in preset.lr:
        common["lr"] = preset.lr[key]
    own = {
        "clip": lambda: {"model": preset.clip},
        "autoencoder": lambda: {"model": preset.autoencoder},
        "prior": lambda: {"model": preset.prior, "data_seed": preset.prior_data_seed,
                          "kind_weights": preset.prior_kind_weights},
        "decoder": lambda: {"model": preset.decoder, "object_weight": preset.object_weight,
                            "skin_weight": preset.skin_weight, "data_seed": preset.decoder_data_seed,
                            "kind_weights": preset.decoder_kind_weights},
        "distill": lambda: {"guidance": preset.decoder_distill_guidance, "data_seed": preset.decoder_data_seed,
                            "kind_weights": preset.decoder_kind_weights},
    }[stage]()
    return STAGE_CONFIGS[stage](**common, **own)
