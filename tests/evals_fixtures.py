"""Tiny random evaluator models saved in their real on-disk formats (offline), for eval tests."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def tiny_hf_clip(directory: Path, seed: int = 0, image_size: int = 32) -> Path:
    """A random transformers CLIPModel + CLIPProcessor with a character-level BPE vocabulary,
    written with save_pretrained to ``directory``."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    chars = string.ascii_lowercase + string.digits + ".,'-"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, max_position_embeddings=77, bos_token_id=0,
                                   eos_token_id=1, pad_token_id=1).to_dict(),
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image_size, patch_size=8).to_dict(),
        projection_dim=16,
    )
    model = CLIPModel(cfg).eval()
    ip = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    proc = CLIPProcessor(image_processor=ip, tokenizer=tok)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    proc.save_pretrained(directory)
    return directory


def random_images(n: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
