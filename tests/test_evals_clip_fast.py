"""The exact class-token-only ViT forward (evals/clip_fast.py) and the batched preprocessing of the
bundled CLIP: the same embeddings as the stock open_clip path, and a fallback wherever the shortcut
would not be exact."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from t2i_audit.evals.features.clip_fast import fast_image_encoder
from t2i_audit.evals.features.extractors import load_extractor


def _images(n: int, seed: int, sizes=((32, 32),)) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % len(sizes)][::-1], 3), dtype=np.uint8))
            for i in range(n)]


@pytest.fixture(scope="module")
def bundled():
    return load_extractor("bundled-clip")


def test_bundled_fast_forward_matches_stock_encode_image(bundled):
    assert bundled._encode_image is not bundled.model.encode_image  # the shortcut is in use
    ims = _images(21, seed=3, sizes=((32, 32), (48, 40), (20, 20)))  # other sizes go through the resize
    stacked = torch.stack([bundled.preprocess(im) for im in ims])
    assert torch.equal(bundled.preprocess_batch(ims), stacked)  # batched preprocessing: identical tensors
    with torch.inference_mode():
        stock = bundled.model.encode_image(stacked)
    ours = bundled.embed_images(ims)
    assert ours.shape == stock.shape
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=2e-5)


def test_fast_forward_exact_with_layer_scale_and_no_projection():
    from open_clip.transformer import VisionTransformer

    torch.manual_seed(0)
    for output_dim in (16, None):
        v = VisionTransformer(image_size=16, patch_size=4, width=32, layers=3, heads=2, mlp_ratio=2.0,
                              ls_init_value=0.5, output_dim=output_dim or 32).eval()
        if output_dim is None:
            v.proj = None
        enc = fast_image_encoder(SimpleNamespace(visual=v))
        assert enc is not None
        x = torch.randn(5, 3, 16, 16)
        with torch.inference_mode():
            torch.testing.assert_close(enc(x), v(x), rtol=1e-5, atol=1e-5)


def test_fast_forward_falls_back_where_not_exact(bundled):
    m = copy.deepcopy(bundled.model)
    m.visual.pool_type = "avg"  # every token reaches the output: the shortcut would be wrong
    assert fast_image_encoder(m) is None
    m.visual.pool_type = "tok"
    assert fast_image_encoder(m) is not None
    m.train()  # training mode (patch dropout, attention dropout) keeps the stock forward
    assert fast_image_encoder(m) is None
    assert fast_image_encoder(SimpleNamespace(visual=torch.nn.Identity())) is None  # not an open_clip ViT
