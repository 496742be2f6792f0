"""Transformer building blocks shared by the decoder (DiT) and the prior: adaLN-zero blocks with
PyTorch's scaled-dot-product attention, and sinusoidal timestep embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def null_conditioning(model: nn.Module, img_emb: torch.Tensor, txt_states: torch.Tensor, txt_valid: torch.Tensor,
                      drop_img: torch.Tensor | None, drop_txt: torch.Tensor | None):
    """Classifier-free guidance for the decoders: rows flagged in ``drop_img``/``drop_txt`` get the
    model's learned ``null_img``/``null_txt`` instead of their conditioning (null text is all valid)."""
    if drop_img is not None:
        img_emb = torch.where(drop_img[:, None], model.null_img.expand_as(img_emb), img_emb)
    if drop_txt is not None:
        txt_states = torch.where(drop_txt[:, None, None], model.null_txt.expand_as(txt_states), txt_states)
        txt_valid = txt_valid | drop_txt[:, None]
    return img_emb, txt_states, txt_valid


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    """Pre-norm transformer block modulated (shift, scale, gate) by a conditioning vector."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(F.silu(c))[:, None].chunk(6, dim=-1)
        x = x + g1 * self.attn(self.norm1(x) * (1 + sc1) + s1, mask)
        return x + g2 * self.mlp(self.norm2(x) * (1 + sc2) + s2)


class TimeEmbed(nn.Module):
    def __init__(self, width: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))


def key_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, S) bool of attendable keys -> an SDPA mask broadcastable to (B, heads, S, S)."""
    return valid[:, None, None, :]
