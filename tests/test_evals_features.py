"""Feature extractors: spec parsing, offline loaders in real formats, CLIPScore agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evals_fixtures import random_images, tiny_hf_clip
from system_tools import require_module
from t2i_audit.errors import InputError
from t2i_audit.evals.features.extractors import load_extractor, parse_spec
from t2i_audit.evals.metrics.clip import clip_score, cosine


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return tiny_hf_clip(tmp_path_factory.mktemp("hfclip"))


def test_parse_spec_and_did_you_mean():
    assert parse_spec("open_clip:ViT-B-32:/w.safetensors") == ("open_clip", ["ViT-B-32", "/w.safetensors"])
    assert parse_spec("bundled-clip") == ("bundled-clip", [])
    assert parse_spec("inception:/a/b:c.pth") == ("inception", ["/a/b:c.pth"])
    with pytest.raises(InputError, match="did you mean 'hf-clip'"):
        parse_spec("hf-clp:/x")
    with pytest.raises(InputError, match="expected open_clip:ARCH"):
        parse_spec("open_clip:ViT-B-32")
    with pytest.raises(InputError, match="no such file"):
        load_extractor("inception:/nonexistent/weights.pth")


def test_clip_score_matches_torchmetrics(hf_dir):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    ex = load_extractor(f"hf-clip:{hf_dir}")
    assert ex.id.startswith("hf-clip:") and ex.id == load_extractor(f"hf-clip:{hf_dir}").id
    images = random_images(6, seed=1)
    texts = ["a red circle", "two blue squares", "a chef", "a woman doctor with dark skin", "a cat", "a dog"]
    ours = clip_score(ex.embed_images(images).numpy(), ex.embed_texts(texts).numpy())
    raw = 100 * cosine(ex.embed_images(images).numpy(), ex.embed_texts(texts).numpy())

    class _Model(CLIPModel):  # transformers 5 returns output objects; torchmetrics 1.9 wants tensors
        def get_image_features(self, *a, **k):
            return super().get_image_features(*a, **k).pooler_output

        def get_text_features(self, *a, **k):
            return super().get_text_features(*a, **k).pooler_output

    def factory():
        return (_Model.from_pretrained(str(hf_dir), local_files_only=True).eval(),
                CLIPProcessor.from_pretrained(str(hf_dir), local_files_only=True))

    for im, text, mine, r in zip(images, texts, ours, raw):
        metric = CLIPScore(model_name_or_path=factory)
        metric.update(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), text)
        want = float(metric.compute())  # 100·cos clamped at 0
        assert abs(mine - want) <= 1e-4 * max(abs(want), 1e-6) + 1e-6
        assert abs(max(r, 0.0) - want) <= 1e-4 * max(abs(want), 1e-6) + 1e-6


def test_open_clip_from_config_json_and_weights(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / "tiny-test-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-test-clip", pretrained=None)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    ex = load_extractor(f"open_clip:{path}:{tmp_path / 'w.safetensors'}")
    assert ex.id.startswith("open_clip:tiny-test-clip")
    img = random_images(3, seed=2)
    with torch.no_grad():
        want = model.eval().encode_image(torch.stack([ex.preprocess(i) for i in img]))
    got = ex.embed_images(img)
    assert got.shape == (3, 16) and torch.allclose(got, want, atol=1e-6)
    assert ex.embed_texts(["a red circle"]).shape == (1, 16)
    with pytest.raises(InputError, match="did you mean"):
        load_extractor(f"open_clip:ViT-B-31:{tmp_path / 'w.safetensors'}")


def test_inception_weights_round_trip(tmp_path):
    require_module("torch_fidelity", "pip install -e '.[dev]' installs torch-fidelity")
    from safetensors.torch import save_file

    from t2i_audit.evals.features.inception import build_inception

    torch.manual_seed(0)
    net = build_inception()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "incep.safetensors"))
    torch.save(net.state_dict(), tmp_path / "incep.pth")  # torch-fidelity's plain state-dict format
    img = random_images(2, size=32, seed=3)
    a = load_extractor(f"inception:{tmp_path / 'incep.safetensors'}")
    b = load_extractor(f"inception:{tmp_path / 'incep.pth'}")
    fa, fb = a.embed_images(img), b.embed_images(img)
    assert fa.shape == (2, 2048)
    assert torch.equal(fa, fb)
    assert "pil-bicubic-299" in a.id
    (tmp_path / "bad.safetensors").write_bytes(b"")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError, match="do not fit"):
        load_extractor(f"inception:{tmp_path / 'bad.safetensors'}")


def test_bundled_clip_spec_loads_a_pictoworld_clip_directory(tmp_path):
    gclip = pytest.importorskip("t2i_audit.generator.models.pictoworld_clip")
    from t2i_audit.generator.models.component_configs import ClipConfig
    from t2i_audit.generator.models.tokenizer import CompactTokenizer

    cfg = ClipConfig(embed_dim=16, vision_width=32, vision_layers=1, vision_head_width=16, text_width=32,
                     text_layers=1, text_heads=2, context_length=16)
    texts = ["a red circle", "a chef", "two blue squares"]
    tok = CompactTokenizer.build(texts, context_length=cfg.context_length)
    torch.manual_seed(0)
    model = gclip.build_open_clip(cfg)
    gclip.save_clip(model, cfg, tok, tmp_path / "clip")
    ex = load_extractor(f"bundled-clip:{tmp_path / 'clip'}")
    assert ex.id.startswith("bundled-clip:pictoworld-clip@") and "bicubic" in ex.methodology
    img = random_images(2, seed=4)
    bundle = gclip.load_clip(tmp_path / "clip")
    want = bundle.encode_images(img, normalize=False)
    assert torch.allclose(ex.embed_images(img), want, atol=1e-5)
    assert ex.embed_texts(texts).shape == (3, 16)
