"""Hub ids through an offline Hugging Face cache the test builds in the hub's layout: diffusers:ORG/NAME,
hf-clip:ORG/NAME and open_clip:ARCH:PRETRAINED_TAG load the cached tiny random models, record the
resolved commit, honour HF_HOME/HF_HUB_OFFLINE, and refuse pickle-only weights with one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from evals_fixtures import random_images, tiny_hf_clip
from hub_cache import add_to_cache
from t2i_audit.errors import InputError
from t2i_audit.evals import hub
from t2i_audit.evals.adapters.registry import load_generator
from t2i_audit.evals.features.extractors import load_extractor
from t2i_audit.evals.runs.rundir import run_identity
from t2i_audit.evals.suites.loader import parse_suite
from test_adapters import build_tiny_sd


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty hub cache under $HF_HOME/hub, offline."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf" / "hub"


def test_diffusers_hub_id_resolves_offline_and_pins_the_commit(tmp_path, cache):
    torch.manual_seed(0)
    build_tiny_sd(tmp_path / "sd")
    commit = add_to_cache(cache, "tiny-org/tiny-sd", tmp_path / "sd")
    params = {"num_inference_steps": 2, "guidance_scale": 2.0, "height": 16, "width": 16, "device": "cpu"}
    g = load_generator("diffusers:tiny-org/tiny-sd")
    assert g.id == f"diffusers:tiny-org/tiny-sd@{commit}"
    assert g.config()["hub"] == {"repo_id": "tiny-org/tiny-sd", "revision": "main", "commit": commit}
    local = load_generator(f"diffusers:{tmp_path / 'sd'}")
    a, b = g(["a red circle"], [3], params)[0], local(["a red circle"], [3], params)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))  # the cached snapshot is the same pipeline
    assert load_generator(f"diffusers:tiny-org/tiny-sd@{commit}").id == g.id  # a commit as the revision
    ident = run_identity(
        parse_suite("name: s\ntemplates: [{template: a red circle}]\n"), g, params, None, None
    )
    assert (
        ident["generator"]["id"].endswith(commit) and ident["generator"]["config"]["hub"]["commit"] == commit
    )


def test_hf_clip_hub_id_matches_the_local_folder(tmp_path, cache):
    tiny_hf_clip(tmp_path / "clip", seed=1)
    commit = add_to_cache(cache, "tiny-org/tiny-clip", tmp_path / "clip", revision="v1")
    ex = load_extractor("hf-clip:tiny-org/tiny-clip@v1")
    assert ex.id.startswith(f"hf-clip:tiny-org/tiny-clip@{commit}:")
    imgs = random_images(3, seed=4)
    want = load_extractor(f"hf-clip:{tmp_path / 'clip'}").embed_images(imgs)
    assert torch.allclose(ex.embed_images(imgs), want, atol=1e-6)
    with pytest.raises(
        InputError, match=r"not in the Hugging Face cache .*hf download tiny-org/tiny-clip --revision"
    ):
        load_extractor("hf-clip:tiny-org/tiny-clip")  # no refs/main: only v1 was cached


def test_open_clip_pretrained_tag_reads_the_tag_repo(tmp_path, cache, monkeypatch):
    import open_clip
    from open_clip import pretrained as registry
    from safetensors.torch import save_file

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "tiny-hub-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(tmp_path / "tiny-hub-clip.json"))
    monkeypatch.setitem(
        registry._PRETRAINED, "tiny-hub-clip", {"tinytag": registry._pcfg(hf_hub="tiny-org/tiny-open-clip/")}
    )
    torch.manual_seed(2)
    model = open_clip.create_model("tiny-hub-clip", pretrained=None).eval()
    (tmp_path / "oc").mkdir()
    save_file(model.state_dict(), str(tmp_path / "oc" / "open_clip_model.safetensors"))
    commit = add_to_cache(cache, "tiny-org/tiny-open-clip", tmp_path / "oc")
    ex = load_extractor("open_clip:tiny-hub-clip:tinytag")
    assert f"tinytag@tiny-org/tiny-open-clip@{commit}" in ex.id
    imgs = random_images(2, seed=5)
    with torch.no_grad():
        want = model.encode_image(torch.stack([ex.preprocess(i) for i in imgs]))
    assert torch.allclose(ex.embed_images(imgs), want, atol=1e-6)
    with pytest.raises(InputError, match="did you mean 'tinytag'"):
        load_extractor("open_clip:tiny-hub-clip:tinytog")


def test_pickle_only_snapshots_are_refused(tmp_path, cache):
    tiny_hf_clip(tmp_path / "clip")
    build_tiny_sd(tmp_path / "sd")
    for d in (tmp_path / "clip", tmp_path / "sd" / "unet"):
        st = next(d.glob("*.safetensors"))
        shutil.move(st, st.with_suffix(".bin"))
    add_to_cache(cache, "evil-org/clip", tmp_path / "clip")
    add_to_cache(cache, "evil-org/sd", tmp_path / "sd")
    with pytest.raises(InputError, match="no .safetensors weights"):
        load_extractor("hf-clip:evil-org/clip")
    with pytest.raises(InputError, match=r"unet/diffusion_pytorch_model.bin is a pickle .* refused"):
        load_generator("diffusers:evil-org/sd")


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert hub.cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="HF_HUB_OFFLINE is set"):
        hub.resolve("nobody/nothing", "diffusers:")
    assert hub.looks_like_hub_id("org/name@v1.0") and not hub.looks_like_hub_id("org/name:x")
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not hub.looks_like_hub_id("org/name")  # an existing local folder wins
