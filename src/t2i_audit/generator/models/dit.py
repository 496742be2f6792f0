"""The decoder's denoiser: a DiT over latent patches, conditioned on the CLIP image embedding
(projected into a few tokens and into the adaLN vector) and on the text token states (in context).

Classifier-free guidance: learned null tokens stand in for a dropped image embedding or text.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from t2i_audit.generator.models.component_configs import DiTConfig
from t2i_audit.generator.models.layers import Block, TimeEmbed, key_mask, null_conditioning


class DiT(nn.Module):
    def __init__(self, config: DiTConfig, context_length: int = 24):
        super().__init__()
        self.config = c = config
        p = c.patch_size
        self.grid = c.input_size // p
        self.patch = nn.Linear(c.in_channels * p * p, c.width)
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid, c.width) * 0.02)
        self.time = TimeEmbed(c.width)
        self.img_vec = nn.Linear(c.cond_dim, c.width)
        self.img_tokens = nn.Linear(c.cond_dim, c.cond_tokens * c.width)
        self.txt = nn.Linear(c.text_dim, c.width)
        self.txt_pos = nn.Parameter(torch.randn(1, context_length, c.width) * 0.02)
        self.null_img = nn.Parameter(torch.zeros(c.cond_dim))
        self.null_txt = nn.Parameter(torch.randn(context_length, c.text_dim) * 0.02)
        self.blocks = nn.ModuleList([Block(c.width, c.heads) for _ in range(c.layers)])
        self.norm = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(c.width, 2 * c.width)
        self.out = nn.Linear(c.width, c.in_channels * p * p)
        for m in (self.final_ada, self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, img_emb: torch.Tensor, txt_states: torch.Tensor,
                txt_valid: torch.Tensor, drop_img: torch.Tensor | None = None,
                drop_txt: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B,C,H,W) noisy latents; t: (B,) timesteps; img_emb: (B,D) normalised CLIP image
        embedding; txt_states: (B,L,Wt); txt_valid: (B,L) bool; drop_*: (B,) bool -> null cond."""
        c = self.config
        b = x.shape[0]
        img_emb, txt_states, txt_valid = null_conditioning(self, img_emb, txt_states, txt_valid, drop_img, drop_txt)
        p, g = c.patch_size, self.grid
        tokens = x.reshape(b, c.in_channels, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
        h = self.patch(tokens) + self.pos
        cond_tok = self.img_tokens(img_emb).view(b, c.cond_tokens, c.width)
        txt_tok = self.txt(txt_states) + self.txt_pos[:, : txt_states.shape[1]]
        seq = torch.cat([cond_tok, txt_tok, h], dim=1)
        valid = torch.cat([torch.ones(b, c.cond_tokens, dtype=torch.bool), txt_valid,
                           torch.ones(b, g * g, dtype=torch.bool)], dim=1)
        mask = key_mask(valid)
        cvec = self.time(t) + self.img_vec(img_emb)
        for blk in self.blocks:
            seq = blk(seq, cvec, mask)
        h = seq[:, -g * g:]
        shift, scale = self.final_ada(torch.nn.functional.silu(cvec))[:, None].chunk(2, dim=-1)
        h = self.out(self.norm(h) * (1 + scale) + shift)
        return h.reshape(b, g, g, c.in_channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(x.shape)
