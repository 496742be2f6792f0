"""The decoder's convolutional denoiser: a diffusers ``UNet2DConditionModel`` over the latents,
conditioned on the CLIP image embedding (added to the timestep embedding, as unCLIP's decoder
does, and projected into a few extra context tokens) and on the text token states (cross-attention).

Why a UNet: every transformer decoder measured here tokenised 4x4-pixel footprints and drew blobs
(shape accuracy at chance even when conditioned on the true CLIP image embedding); convolutions
draw edges and corners. Classifier-free guidance uses learned null conditioning, as in ``DiT``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from t2i_audit.generator.models.component_configs import _JsonConfig
from t2i_audit.generator.models.layers import null_conditioning


@dataclass
class UNetConfig(_JsonConfig):
    architecture: str = "unet"
    in_channels: int = 4
    input_size: int = 16
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 32
    cond_dim: int = 128  # CLIP image embedding dim
    text_dim: int = 128  # text token state width (= the cross-attention width)
    cond_tokens: int = 4  # context tokens the CLIP image embedding is projected into
    prediction: str = "v_prediction"
    # 0: a plain decoder (classifier-free guidance runs two branches). G > 0: guidance-distilled
    # (Meng et al. 2023): its conditional output already is the guided output at scale G, so it
    # samples at guidance G with one evaluation per step, and no other scale.
    distilled_guidance: float = 0.0

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)  # JSON gives a list


class UNetDecoder(nn.Module):
    def __init__(self, config: UNetConfig, context_length: int = 24):
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.config = c = config
        n = len(c.block_out_channels)
        self.unet = UNet2DConditionModel(
            sample_size=c.input_size, in_channels=c.in_channels, out_channels=c.in_channels,
            block_out_channels=tuple(c.block_out_channels), layers_per_block=c.layers_per_block,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
            cross_attention_dim=c.text_dim, attention_head_dim=c.attention_head_dim,
            norm_num_groups=c.norm_num_groups, class_embed_type="projection",
            projection_class_embeddings_input_dim=c.cond_dim)
        self.img_tokens = nn.Linear(c.cond_dim, c.cond_tokens * c.text_dim)
        self.null_img = nn.Parameter(torch.zeros(c.cond_dim))
        self.null_txt = nn.Parameter(torch.randn(context_length, c.text_dim) * 0.02)

    def forward(self, x: torch.Tensor, t: torch.Tensor, img_emb: torch.Tensor, txt_states: torch.Tensor,
                txt_valid: torch.Tensor, drop_img: torch.Tensor | None = None,
                drop_txt: torch.Tensor | None = None) -> torch.Tensor:
        """Same contract as ``DiT.forward``: x (B,C,H,W) noisy latents, t (B,), img_emb (B,D),
        txt_states (B,L,Wt), txt_valid (B,L) bool, drop_* (B,) bool -> null conditioning."""
        c = self.config
        b = x.shape[0]
        img_emb, txt_states, txt_valid = null_conditioning(self, img_emb, txt_states, txt_valid, drop_img, drop_txt)
        ctx = torch.cat([self.img_tokens(img_emb).view(b, c.cond_tokens, c.text_dim), txt_states], dim=1)
        mask = torch.cat([torch.ones(b, c.cond_tokens, dtype=torch.bool, device=x.device), txt_valid], dim=1)
        return self.unet(x, t, encoder_hidden_states=ctx, class_labels=img_emb,
                         encoder_attention_mask=mask.to(x.dtype)).sample


def decoder_config_from_dict(d: dict, source: str = "<dict>"):
    """The decoder config a dict describes: ``architecture`` 'unet' or 'dit' (the default, so
    checkpoints written before the key existed still load)."""
    from t2i_audit.errors import InputError, did_you_mean
    from t2i_audit.generator.models.component_configs import DiTConfig

    arch = d.get("architecture", "dit")
    classes = {"dit": DiTConfig, "unet": UNetConfig}
    if arch not in classes:
        raise InputError(f"{source}: unknown decoder architecture {arch!r}{did_you_mean(arch, classes)}; "
                         f"choose {', '.join(classes)}")
    return classes[arch].from_dict(d, source)


def build_decoder(config, context_length: int = 24) -> nn.Module:
    from t2i_audit.generator.models.dit import DiT

    if isinstance(config, UNetConfig):
        return UNetDecoder(config, context_length)
    return DiT(config, context_length)


def load_decoder(directory, context_length: int = 24) -> nn.Module:
    """A decoder component directory (config.json + model.safetensors) as a module."""
    from pathlib import Path

    from t2i_audit.generator.models.safetensors_io import load_safetensors_into

    d = Path(directory)
    decoder = build_decoder(load_decoder_config(d / "config.json"), context_length)
    load_safetensors_into(decoder, d / "model.safetensors")
    return decoder


def load_decoder_config(path):
    from t2i_audit.generator.models.component_configs import read_config_json

    return decoder_config_from_dict(read_config_json(path), str(path))
