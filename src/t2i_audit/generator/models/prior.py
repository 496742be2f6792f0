"""The diffusion prior in CLIP space: text (token states + pooled embedding) -> CLIP image embedding.

A transformer reads [text tokens, pooled text, timestep, noisy image embedding, query] and predicts
the clean embedding at the query token (DALL-E 2 predicts x0 directly). Neutral captions are
one-to-many: the prior must reproduce the *distribution* of image embeddings, which is where the
planted bias lives, so it is a diffusion model rather than a regression.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.generator.models.component_configs import PriorConfig
from t2i_audit.generator.models.layers import Block, TimeEmbed, key_mask

PRIOR_SPACES = ("scaled", "whitened")


class Prior(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = c = config
        if c.space not in PRIOR_SPACES:
            raise InputError(f"prior space {c.space!r}{did_you_mean(c.space, PRIOR_SPACES)}; "
                             f"choose {' or '.join(PRIOR_SPACES)}")
        if c.space == "whitened":  # fit by fit_space() before training, then saved with the weights
            self.register_buffer("space_mean", torch.zeros(c.embed_dim))
            self.register_buffer("space_basis", torch.eye(c.embed_dim))
            self.register_buffer("space_std", torch.ones(c.embed_dim))
        self.txt = nn.Linear(c.text_dim, c.width)
        self.pooled = nn.Linear(c.embed_dim, c.width)
        self.noisy = nn.Linear(c.embed_dim, c.width)
        self.time = TimeEmbed(c.width)
        self.query = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, c.context_length + 4, c.width) * 0.02)
        self.null_txt = nn.Parameter(torch.randn(c.context_length, c.text_dim) * 0.02)
        self.null_pooled = nn.Parameter(torch.zeros(c.embed_dim))
        self.blocks = nn.ModuleList([Block(c.width, c.heads) for _ in range(c.layers)])
        self.norm = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.embed_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, txt_states: torch.Tensor, txt_pooled: torch.Tensor,
                txt_valid: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B,D) noisy (scaled) image embedding; returns the predicted clean embedding (B,D)."""
        b = x.shape[0]
        if drop is not None:
            txt_states = torch.where(drop[:, None, None], self.null_txt.expand_as(txt_states), txt_states)
            txt_pooled = torch.where(drop[:, None], self.null_pooled.expand_as(txt_pooled), txt_pooled)
            txt_valid = txt_valid | drop[:, None]
        temb = self.time(t)
        seq = torch.cat([self.txt(txt_states), self.pooled(txt_pooled)[:, None], temb[:, None],
                         self.noisy(x)[:, None], self.query.expand(b, 1, -1)], dim=1)
        seq = seq + self.pos[:, : seq.shape[1]]
        valid = torch.cat([txt_valid, torch.ones(b, 4, dtype=torch.bool)], dim=1)
        mask = key_mask(valid)
        for blk in self.blocks:
            seq = blk(seq, temb, mask)
        return self.out(self.norm(seq[:, -1]))

    # ------------------------------------------------------------------ the diffusion space
    @torch.no_grad()
    def fit_space(self, embeds: torch.Tensor) -> dict:
        """Fit the whitening of a "whitened" prior on unit CLIP image embeddings (N, D) of training
        renders: PCA of the scaled embeddings, each coordinate divided by its eigenvalue (floored)
        to the power ``whiten_exponent`` (0.5: its standard deviation). Returns the spectrum
        summary that training logs."""
        if self.config.space != "whitened":
            return {}
        x = embeds.double() * self.config.embed_scale
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1)
        ev, vec = torch.linalg.eigh(cov)
        ev, vec = ev.flip(0).clamp_min(0.0), vec.flip(1)
        self.space_mean.copy_(mean.float())
        self.space_basis.copy_(vec.float())
        c = self.config
        scale = ev.clamp_min(c.whiten_floor).pow(c.whiten_exponent)
        if c.whiten_ceiling > 0:  # large directions stay as they are
            scale = torch.where(ev > c.whiten_ceiling, torch.ones_like(scale), scale / c.whiten_ceiling ** c.whiten_exponent)
        self.space_std.copy_(scale.float())
        return {"n": len(x), "total_variance": float(ev.sum()), "top_eigenvalues": [round(float(v), 4) for v in ev[:8]],
                "floored": int((ev < self.config.whiten_floor).sum())}

    def to_space(self, embeds: torch.Tensor) -> torch.Tensor:
        """Unit CLIP image embeddings (B, D) -> the coordinates the prior diffuses in."""
        x = embeds * self.config.embed_scale
        if self.config.space == "whitened":
            x = (x - self.space_mean) @ self.space_basis / self.space_std
        return x

    def from_space(self, x: torch.Tensor) -> torch.Tensor:
        """The prior's coordinates (B, D) -> unit CLIP image embeddings."""
        if self.config.space == "whitened":
            x = (x * self.space_std) @ self.space_basis.T + self.space_mean
        return torch.nn.functional.normalize(x, dim=-1)
