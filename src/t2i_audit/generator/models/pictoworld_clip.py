"""The PictoWorld CLIP: an open_clip model built from a registered config JSON.

``load_clip(path_or_"bundled")`` returns a :class:`ClipBundle` (model, preprocess, tokenizer, id)
that the generator uses as its text encoder and image-embedding space, and that the evals use as
an evaluator model (CLIPScore, CLIP features for FD/CMMD, zero-shot probes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from t2i_audit.errors import InputError
from t2i_audit.generator.models.component_configs import ClipConfig
from t2i_audit.generator.models.safetensors_io import load_safetensors_into, save_safetensors
from t2i_audit.generator.models.tokenizer import CompactTokenizer, TokenizerConfig


def build_open_clip(cfg: ClipConfig, name: str = "pictoworld-clip"):
    """Register ``cfg`` with open_clip (as ``add_model_config`` does for a JSON file) and build it."""
    import tempfile

    import open_clip

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{name}.json"
        path.write_text(json.dumps(cfg.open_clip_config()))
        open_clip.add_model_config(path)
    import logging

    root = logging.getLogger()
    quiet = _NoPretrainedWarning()
    root.addFilter(quiet)  # open_clip warns "initialized randomly"; our weights are loaded next
    try:
        model = open_clip.create_model(name, pretrained=None)
    finally:
        root.removeFilter(quiet)
    model.eval()
    return model


class _NoPretrainedWarning:
    def filter(self, record) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


class ClipBundle:
    """A CLIP model with its preprocessing and tokenizer, and a stable id naming its weights."""

    def __init__(self, model, config: ClipConfig, tokenizer: CompactTokenizer, id: str):
        self.model = model
        self.config = config
        self.tokenizer = tokenizer
        self.id = id

    # ---------------------------------------------------------------- preprocessing
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalised (3, S, S) tensor. Other sizes are resized with antialiased
        bicubic resampling and rounded to uint8, as clean-fid recommends."""
        img = image.convert("RGB")
        s = self.config.image_size
        if img.size != (s, s):
            img = img.resize((s, s), Image.BICUBIC, reducing_gap=None)
        return self.normalize(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None])[0]

    def normalize(self, uint8_nchw: torch.Tensor) -> torch.Tensor:
        x = uint8_nchw.float() / 255.0
        mean = torch.tensor(self.config.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.config.std).view(1, 3, 1, 1)
        return (x - mean) / std

    # ---------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode_images(self, images, batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
        """PIL images (or a uint8 NCHW tensor) -> (N, D) embeddings."""
        if isinstance(images, torch.Tensor):
            batches = [self.normalize(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        else:
            batches = [torch.stack([self.preprocess(im) for im in images[i:i + batch_size]])
                       for i in range(0, len(images), batch_size)]
        dev = next(self.model.parameters()).device
        out = [self.model.encode_image(b.to(dev), normalize=normalize).float().cpu() for b in batches]
        return torch.cat(out) if out else torch.empty(0, self.config.embed_dim)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        dev = next(self.model.parameters()).device
        return self.model.encode_text(self.tokenizer(texts).to(dev), normalize=normalize).float().cpu()

    def save(self, directory: str | Path) -> None:
        save_clip(self.model, self.config, self.tokenizer, directory)


def text_states(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token states (B, L, W) after the final layer norm, and the pooled projected text
    embedding (B, D), from an open_clip CLIP text tower (the generator's text encoder)."""
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding.to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
    pooled = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    proj = model.text_projection
    pooled = proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj
    return x, pooled


def _weights_id(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"pictoworld-clip@{h}"


def save_clip(model, cfg: ClipConfig, tok: CompactTokenizer, directory: str | Path) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg.save(d / "config.json")
    (d / "tokenizer.json").write_text(tok.config.to_json() + "\n")
    (d / "open_clip_config.json").write_text(json.dumps(cfg.open_clip_config(), indent=2) + "\n")
    save_safetensors(model.state_dict(), d / "model.safetensors")


def bundled_dir(component: str = "") -> Path:
    from importlib import resources

    root = Path(str(resources.files("t2i_audit.generator").joinpath("bundled")))
    return root / component if component else root


def load_clip(path: str | Path = "bundled") -> ClipBundle:
    """Load a PictoWorld CLIP from a directory (config.json, tokenizer.json, model.safetensors),
    or the bundled one. A full generator checkpoint directory is accepted too (uses ``clip/``)."""
    d = bundled_dir("clip") if str(path) == "bundled" else Path(path)
    if (d / "clip" / "config.json").is_file():
        d = d / "clip"
    if not (d / "config.json").is_file():
        raise InputError(f"{d}: not a PictoWorld CLIP directory (config.json missing); "
                         "pass a checkpoint from `t2i-audit train` or 'bundled'")
    cfg = ClipConfig.load(d / "config.json")
    tok = CompactTokenizer(TokenizerConfig.from_dict(json.loads((d / "tokenizer.json").read_text())))
    model = build_open_clip(cfg)
    load_safetensors_into(model, d / "model.safetensors")
    model.eval()
    return ClipBundle(model, cfg, tok, _weights_id(d / "model.safetensors"))


def clip_loss(model, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with the learned temperature. Captions that are identical within the
    batch are treated as positives for each other (duplicates are common in PictoWorld)."""
    img = model.encode_image(images, normalize=True)
    txt = model.encode_text(tokens, normalize=True)
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
    same = (tokens[:, None, :] == tokens[None, :, :]).all(-1).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
