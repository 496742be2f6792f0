"""A small convolutional autoencoder: 32x32x3 pixels <-> 16x16x4 latents (one x2 downsample).

The decoder diffuses in this latent space (as Kandinsky 2.2 pairs a CLIP prior with a latent
decoder): measured here, a latent decoder drew shapes where pixel DiTs drew blobs at equal wall clock.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from t2i_audit.generator.models.component_configs import AutoencoderConfig


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.n1 = nn.GroupNorm(8, ch)
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.n2 = nn.GroupNorm(8, ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(h)))


class Autoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        ch = list(config.channels)
        enc = [nn.Conv2d(config.in_channels, ch[0], 3, padding=1), ResBlock(ch[0])]
        for a, b in zip(ch[:-1], ch[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), ResBlock(b)]
        enc += [nn.GroupNorm(8, ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], config.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(config.latent_channels, ch[-1], 3, padding=1), ResBlock(ch[-1])]
        for a, b in zip(ch[::-1][:-1], ch[::-1][1:]):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1), ResBlock(b)]
        dec += [nn.GroupNorm(8, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], config.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_size(self) -> int:
        return self.config.image_size // 2 ** (len(self.config.channels) - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] -> scaled latents (what the diffusion model sees)."""
        return (self.encoder(x) - self.config.shift) * self.config.scaling

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> pixels in [-1, 1] (not clamped)."""
        return self.decoder(z / self.config.scaling + self.config.shift)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        z = self.encoder(x)
        if self.training:  # a little latent noise makes the decoder tolerant of imperfect latents
            z = z + 0.05 * torch.randn_like(z)
        rec = self.decoder(z)
        l1 = (rec - x).abs().mean()
        mse = F.mse_loss(rec, x)
        reg = 1e-4 * z.pow(2).mean()
        return l1 + mse + reg, {"l1": l1.item(), "mse": mse.item()}


def to_pixels(uint8_nchw: torch.Tensor) -> torch.Tensor:
    return uint8_nchw.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounded (not truncated), as clean-fid recommends."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
