"""Training presets: component configs plus steps and batch sizes per stage, as JSON-able data.

A preset file may name a ``"base"``: another preset file in the same folder (``"base":
"decoder_finetune7"`` reads ``decoder_finetune7.json``), itself possibly based on another. The file
then holds only the keys that differ: each top-level key it gives replaces the base's value whole
(no merging inside a key), so what a fine-tune changed is what its file says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.generator.models.component_configs import (
    AutoencoderConfig,
    ClipConfig,
    DiTConfig,
    PriorConfig,
    _JsonConfig,
    read_config_json,
)
from t2i_audit.generator.models.unet import UNetConfig, decoder_config_from_dict
from t2i_audit.world.bias import BiasSpec

STAGES = ("clip", "autoencoder", "prior", "decoder")
DECODER_PEOPLE = ("spec", "uniform")


@dataclass
class Preset(_JsonConfig):
    name: str = "default"
    clip: dict = field(default_factory=lambda: ClipConfig().to_dict())
    autoencoder: dict = field(default_factory=lambda: AutoencoderConfig().to_dict())
    prior: dict = field(default_factory=lambda: PriorConfig().to_dict())
    decoder: dict = field(default_factory=lambda: UNetConfig().to_dict())
    steps: dict = field(default_factory=lambda: {"clip": 900, "autoencoder": 1500, "prior": 1500,
                                                 "decoder": 2200})
    batch: dict = field(default_factory=lambda: {"clip": 128, "autoencoder": 64, "prior": 128, "decoder": 64})
    save_every: int = 100
    # Learning rate per stage where it differs from the stage's default.
    lr: dict = field(default_factory=lambda: {"decoder": 3e-4})
    # The decoder's loss weighs latent pixels under a drawn object (1 + object_weight) against the
    # plain background (1): shapes cover ~7% of a 32x32 canvas and their edges decide the shape.
    # The mask comes from the clean image, so a weight > 0 biases the optimum towards "an object is
    # here" wherever the layout is uncertain: a decoder trained this way over-counts (asked for
    # four of five possible slots it fills all five). Fine-tunes can set 0 (decoder_finetune3.json).
    object_weight: float = 3.0
    # The same for latent pixels under a person's skin (head, legs): 1 + skin_weight. The head is
    # ~9 of 256 latent pixels, and an unweighted decoder lets its colour drift toward the clothing
    # and headwear beside it, so medium skin was often drawn as light or as no readable skin at all.
    skin_weight: float = 0.0
    # Mix of PictoWorld scene kinds the decoder trains on (None: the world's default mix,
    # world.scene.DEFAULT_KIND_WEIGHTS). CLIP and the autoencoder always see the default mix.
    decoder_kind_weights: dict | None = None
    # Seed of the decoder's PictoWorld scene stream. A second fine-tune can set a new one so that it
    # draws scenes the earlier training never saw.
    decoder_data_seed: int = 404
    # The bias spec the decoder's people are drawn from where the caption leaves presentation or
    # skin unsaid: "spec" (the training spec, as CLIP and the prior) or "uniform" (every cell
    # equal). Trained on the spec, the decoder learns the spec's mode from the caption alone
    # ("a police officer" -> light) and falls back to it wherever the CLIP embedding is unclear, on
    # top of the prior's draw: the bias is amplified. On "uniform" the caption says nothing about
    # skin or presentation, so the embedding alone decides and the planted bias lives in the prior.
    decoder_people: str = "spec"
    # Guidance distillation of the decoder (generator/training/train_distill.py): G > 0 trains, instead of the
    # decoder stage, a student of the --init-from checkpoint's decoder that samples at guidance G
    # with one evaluation per step (decoder steps, batch, lr, data seed, mix and people as above).
    decoder_distill_guidance: float = 0.0
    # The same two knobs for the prior (None: the world's default mix; 303: the original stream).
    prior_kind_weights: dict | None = None
    prior_data_seed: int = 303

    def __post_init__(self):
        # Component configs are stored as JSON data (tuples become lists), so that a preset equals
        # itself after a JSON round trip.
        for name in ("clip", "autoencoder", "prior", "decoder"):
            setattr(self, name, json.loads(json.dumps(getattr(self, name))))
        if self.decoder_people not in DECODER_PEOPLE:
            raise InputError(f"preset {self.name!r}: decoder_people {self.decoder_people!r}"
                             f"{did_you_mean(self.decoder_people, DECODER_PEOPLE)}; "
                             f"choose {' or '.join(DECODER_PEOPLE)}")

    @classmethod
    def load(cls, path) -> Preset:
        """A preset file, with its ``"base"`` chain resolved (see :func:`read_preset_json`)."""
        return cls.from_dict(read_preset_json(path), str(path))

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex) of the resolved preset as sorted JSON: the recipe, name included."""
        import hashlib

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def decoder_spec(self, spec: BiasSpec) -> BiasSpec:
        """The bias spec the decoder's people are drawn from, given the training ``spec``."""
        return BiasSpec.uniform() if self.decoder_people == "uniform" else spec

    def clip_config(self) -> ClipConfig:
        return ClipConfig.from_dict(self.clip)

    def autoencoder_config(self) -> AutoencoderConfig:
        return AutoencoderConfig.from_dict(self.autoencoder)

    def prior_config(self) -> PriorConfig:
        return PriorConfig.from_dict(self.prior)

    def decoder_config(self) -> DiTConfig | UNetConfig:
        return decoder_config_from_dict(self.decoder, f"preset {self.name!r} decoder")


def read_preset_json(path, _seen: tuple[str, ...] = ()) -> dict:
    """The full preset dict of a file: its ``"base"`` file's dict (resolved the same way, from the
    same folder) updated by the file's own top-level keys. A missing base or a cycle is an
    InputError naming the file."""
    from pathlib import Path

    p = Path(path)
    data = read_config_json(p)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise InputError(f"{p}: 'base' must name a preset file in {p.parent} (without .json), e.g. "
                         f"\"decoder_finetune7\"")
    if p.stem in _seen or base in _seen:
        raise InputError(f"{p}: the 'base' chain loops ({' -> '.join((*_seen, p.stem, base))}); break it")
    base_path = p.parent / f"{base}.json"
    if not base_path.is_file():
        names = sorted(q.stem for q in p.parent.glob("*.json"))
        raise InputError(f"{p}: base preset {base!r} not found in {p.parent}{did_you_mean(base, names)}; "
                         f"choose one of {', '.join(names)}")
    resolved = read_preset_json(base_path, (*_seen, p.stem))
    resolved.update(data)
    return resolved


def _tiny() -> Preset:
    return Preset(
        name="tiny",
        clip=ClipConfig(embed_dim=32, vision_width=32, vision_layers=1, vision_head_width=16, text_width=32,
                        text_layers=1, text_heads=2, patch_size=8).to_dict(),
        autoencoder=AutoencoderConfig(channels=(8, 16)).to_dict(),
        prior=PriorConfig(embed_dim=32, text_dim=32, width=32, layers=1, heads=2).to_dict(),
        decoder=UNetConfig(block_out_channels=(16, 32), attention_head_dim=16, norm_num_groups=8,
                           cond_dim=32, text_dim=32, cond_tokens=1).to_dict(),
        steps={"clip": 3, "autoencoder": 3, "prior": 3, "decoder": 3},
        batch={"clip": 16, "autoencoder": 8, "prior": 16, "decoder": 8},
        save_every=2,
    )


PRESETS = {"default": Preset, "tiny": _tiny}


def get_preset(name_or_path: str) -> Preset:
    from pathlib import Path

    if name_or_path in PRESETS:
        return PRESETS[name_or_path]()
    if Path(name_or_path).is_file():
        return Preset.load(name_or_path)
    raise InputError(f"unknown preset {name_or_path!r}{did_you_mean(name_or_path, PRESETS)}; "
                     f"choose {', '.join(PRESETS)} or a preset JSON file")
