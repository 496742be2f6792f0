"""Generator adapters: spec parsing, python callables, image folders, t2i-audit pipelines, and a tiny
random diffusers StableDiffusionPipeline loaded offline."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import t2i_audit.evals.adapters.registry as adapters
from t2i_audit.errors import InputError
from t2i_audit.evals.adapters.registry import FolderAdapter, GeneratorSpec, PythonAdapter, load_generator
from t2i_audit.evals.runs.sampling import SampleConfig, load_run, sample
from t2i_audit.evals.suites.loader import load_suite

SUITE = """\
name: tiny
images_per_prompt: 2
seeds: {kind: range, start: 0}
slots: {color: [red, blue]}
templates:
  - template: "a {color} circle"
    category: colour
"""


# ----------------------------------------------------------------------------------- spec parser
@pytest.mark.parametrize("spec, kind, target", [
    ("bundled", "bundled", ""), ("checkpoint:/x/y", "checkpoint", "/x/y"), ("diffusers:d", "diffusers", "d"),
    ("folder:imgs", "folder", "imgs"), ("python:pkg.mod:fn", "python", "pkg.mod:fn"),
    ("python:a/b.py:fn", "python", "a/b.py:fn"),
])
def test_spec_parse_and_round_trip(spec, kind, target):
    s = GeneratorSpec.parse(spec)
    assert (s.kind, s.target) == (kind, target) and str(s) == spec
    assert GeneratorSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize("spec, pattern", [
    ("diffuser:d", "unknown kind 'diffuser'; did you mean 'diffusers'"),
    ("bundeld", "did you mean 'bundled'"),
    ("folder:", "needs a target"),
    ("python:mod", "python:module:callable"),
    ("bundled:x", "write 'bundled' alone"),
    ("checkpont:/x", "did you mean 'checkpoint'"),
])
def test_spec_errors(spec, pattern):
    with pytest.raises(InputError, match=pattern):
        GeneratorSpec.parse(spec)


def test_bare_directory_gets_a_hint(tmp_path):
    with pytest.raises(InputError, match=f"did you mean 'checkpoint:{tmp_path}'"):
        GeneratorSpec.parse(str(tmp_path))


# ----------------------------------------------------------------------------------- python
GEN = textwrap.dedent('''
    import numpy as np
    from PIL import Image

    def noise(prompts, seeds, params):
        size = int(params.get("size", 16))
        return [Image.fromarray(np.random.default_rng(s).integers(0, 256, (size, size, 3), dtype=np.uint8))
                for s in seeds]

    noise.config = lambda: {"kind": "seeded noise"}
''')


def test_python_adapter_by_module_and_by_file(tmp_path, monkeypatch):
    (tmp_path / "noisegen.py").write_text(GEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = load_generator("python:noisegen:noise")
    by_file = load_generator(f"python:{tmp_path / 'noisegen.py'}:noise")
    assert isinstance(by_module, PythonAdapter) and by_module.id == "python:noisegen:noise"
    a = by_module(["x", "y"], [3, 4], {"size": 8})
    b = by_file(["y"], [4], {"size": 8})
    assert a[0].size == (8, 8) and np.array_equal(np.asarray(a[1]), np.asarray(b[0]))
    cfg = by_module.config()
    assert cfg["callable_config"] == {"kind": "seeded noise"} and len(cfg["source_sha256"]) == 16
    with pytest.raises(InputError, match="no callable 'nose'; did you mean 'noise'"):
        load_generator("python:noisegen:nose")
    with pytest.raises(InputError, match="cannot import module 'no_such_mod_xyz'"):
        load_generator("python:no_such_mod_xyz:f")
    with pytest.raises(InputError, match="no such file"):
        load_generator(f"python:{tmp_path / 'missing.py'}:f")


def test_bad_generator_output_is_a_clear_error(tmp_path):
    (tmp_path / "bad.py").write_text("def f(prompts, seeds, params):\n    return [None] * len(prompts)\n"
                                     "def g(prompts, seeds, params):\n    return []\n")
    (tmp_path / "s.yaml").write_text(SUITE)
    for fn, pattern in (("f", "expected PIL images"), ("g", "returned 0 images for 4 prompts")):
        with pytest.raises(InputError, match=pattern):
            sample(SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(tmp_path / fn),
                                generator=f"python:{tmp_path / 'bad.py'}:{fn}", batch_size=4, progress=False))


# ----------------------------------------------------------------------------------- folder
def _folder(tmp_path, rows, header=("prompt", "seed", "path")):
    d = tmp_path / "closed"
    (d / "img").mkdir(parents=True, exist_ok=True)
    with open(d / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, row in enumerate(rows):
            px = np.full((12, 10, 3), 20 * i, dtype=np.uint8)
            Image.fromarray(px).save(d / "img" / f"{i}.png")
            w.writerow([*row, f"img/{i}.png"])
    return d


def test_folder_adapter_matches_by_prompt_and_seed(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    rows = [("a red circle", 0), ("a red circle", 1), ("a blue circle", 1), ("a blue circle", 0),
            ("a green circle", 0)]
    d = _folder(tmp_path, rows)
    out = tmp_path / "run"
    r = sample(SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(out), generator=f"folder:{d}", progress=False))
    assert r.n_images == 4 and r.n_missing == 0
    meta, df = load_run(out)
    assert meta["generator"]["kind"] == "folder" and meta["generator"]["config"]["matched_by"] == "prompt+seed"
    for _, row in df.iterrows():
        i = rows.index((row.text, row.seed))
        assert np.array_equal(np.asarray(Image.open(out / row.path)), np.full((12, 10, 3), 20 * i, np.uint8))


def test_folder_adapter_by_order_missing_and_skip(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    d = _folder(tmp_path, [("a red circle",), ("a red circle",), ("a blue circle",)], header=("prompt", "path"))
    cfg = SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(tmp_path / "run"), generator=f"folder:{d}",
                       progress=False)
    with pytest.raises(InputError, match="no image for 1 of 4 planned.*'a blue circle' seed 1.*--skip-missing"):
        sample(cfg)
    cfg.skip_missing = True
    r = sample(cfg)
    meta, df = load_run(tmp_path / "run")
    assert (r.n_images, r.n_missing, meta["n_missing"]) == (3, 1, 1)
    assert list(zip(df.text, df.seed)) == [("a red circle", 0), ("a red circle", 1), ("a blue circle", 0)]
    # the k-th row of a prompt serves its k-th seed
    assert np.asarray(Image.open(tmp_path / "run" / df.path[1]))[0, 0, 0] == 20


def test_folder_adapter_errors(tmp_path):
    d = _folder(tmp_path, [("a red circle",)], header=("promt", "path"))
    with pytest.raises(InputError, match="unknown column 'promt'; did you mean 'prompt'"):
        FolderAdapter(str(d))
    with pytest.raises(InputError, match="no such folder"):
        FolderAdapter(str(tmp_path / "nope"))
    d = _folder(tmp_path, [("a red circle",)], header=("prompt", "path"))
    (d / "img" / "0.png").unlink()
    with pytest.raises(InputError, match="does not exist"):
        FolderAdapter(str(d)).prepare([("a red circle", 0)])


# ----------------------------------------------------------------------------------- t2i-audit pipeline
class _FakePipe:
    """Stands in for t2i_audit.generator.Pipeline to check the adapter's contract."""

    loaded: list = []

    def __init__(self, path):
        self.index = {"id": "fake", "weights_hash": "abc"}

    @classmethod
    def load(cls, path):
        cls.loaded.append(str(path))
        return cls(path)

    def __call__(self, prompts, seeds, **params):
        class Out:
            images = [Image.new("RGB", (8, 8), (int(s) % 256, len(p), params.get("steps", 0)))
                      for p, s in zip(prompts, seeds)]
        return Out()


def test_pipeline_adapter_contract(tmp_path, monkeypatch):
    class Module:
        Pipeline = _FakePipe

        @staticmethod
        def bundled_dir():
            return tmp_path

    (tmp_path / "index.json").write_text("{}")
    monkeypatch.setattr(adapters, "_pipeline_module", lambda: Module)
    g = load_generator(f"checkpoint:{tmp_path}")
    assert g.kind == "checkpoint" and g.id == f"checkpoint:{tmp_path}"
    imgs = g(["ab", "abc"], [7, 9], {"steps": 5})
    assert [im.getpixel((0, 0)) for im in imgs] == [(7, 2, 5), (9, 3, 5)]
    cfg = g.config()
    assert cfg["index"]["weights_hash"] == "abc" and len(cfg["fingerprint"]) == 16
    b = load_generator("bundled")
    assert b.kind == "bundled" and b.config()["fingerprint"] == cfg["fingerprint"]
    assert _FakePipe.loaded[-2:] == [str(tmp_path), "bundled"]
    with pytest.raises(InputError, match="no such directory"):
        load_generator(f"checkpoint:{tmp_path / 'nope'}")


# ----------------------------------------------------------------------------------- diffusers
def build_tiny_sd(path):
    """A tiny random StableDiffusionPipeline in the real on-disk format (no download)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4, sample_size=16)
    words = ["a", "red", "blue", "circle", "square"]
    chars = sorted(set("".join(words)))
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    merges = []
    for w in words:  # merge each word left to right so that it becomes one token
        cur = w[0]
        for j, c in enumerate(w[1:], start=1):
            nxt = c + ("</w>" if j == len(w) - 1 else "")
            merges.append((cur, nxt))
            cur = cur + nxt
            vocab.setdefault(cur, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"]))
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)
    return tok


def test_diffusers_adapter_offline_seed_determinism(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = build_tiny_sd(tmp_path / "sd")
    assert len(tok("a red circle").input_ids) == 5  # BOS + 3 words + EOS: the tiny BPE works
    g = load_generator(f"diffusers:{tmp_path / 'sd'}")
    cfg = g.config()
    assert cfg["class"] == "StableDiffusionPipeline" and len(cfg["fingerprint"]) == 16
    params = {"num_inference_steps": 2, "guidance_scale": 2.0, "height": 16, "width": 16, "device": "cpu"}
    batch = g(["a red circle", "a blue square", "a red circle"], [1, 2, 3], params)
    alone = g(["a blue square"], [2], params)
    assert batch[0].size == (16, 16)
    # An image depends on its seed only: drawn alone or in a batch, it is the same.
    assert np.array_equal(np.asarray(batch[1]), np.asarray(alone[0]))
    assert not np.array_equal(np.asarray(batch[0]), np.asarray(batch[2]))  # another seed, another image
    # ... and the run machinery drives it end to end.
    (tmp_path / "s.yaml").write_text(SUITE.replace("images_per_prompt: 2", "images_per_prompt: 1"))
    r = sample(SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(tmp_path / "run"),
                            generator=f"diffusers:{tmp_path / 'sd'}", params=params, progress=False), generator=g)
    meta, df = load_run(tmp_path / "run")
    assert r.n_images == 2 and meta["generator"]["config"]["class"] == "StableDiffusionPipeline"
    assert meta["params"]["num_inference_steps"] == 2 and set(df.width) == {16}


def test_diffusers_adapter_errors(tmp_path):
    with pytest.raises(InputError, match="no model_index.json"):
        load_generator(f"diffusers:{tmp_path}")
    with pytest.raises(InputError, match="no such directory"):
        load_generator(f"diffusers:{tmp_path / 'nope'}")


def test_suite_prompts_reach_the_generator_verbatim(tmp_path):
    (tmp_path / "rec.py").write_text(
        "from PIL import Image\nSEEN = []\n"
        "def f(prompts, seeds, params):\n    SEEN.extend(zip(prompts, seeds))\n"
        "    return [Image.new('RGB', (4, 4)) for _ in prompts]\n")
    (tmp_path / "s.yaml").write_text(SUITE)
    g = load_generator(f"python:{tmp_path / 'rec.py'}:f")
    sample(SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(tmp_path / "run"), progress=False), generator=g)
    suite = load_suite(str(tmp_path / "s.yaml"))
    assert g.module.SEEN == [(p.text, s) for p, s in suite.plan()]


def test_suites_plan_csv_round_trips_through_the_folder_adapter(tmp_path):
    from click.testing import CliRunner

    from t2i_audit.cli import main

    (tmp_path / "s.yaml").write_text(SUITE)
    d = tmp_path / "closed"
    d.mkdir()
    r = CliRunner().invoke(main, ["suites", "plan", str(tmp_path / "s.yaml"), "--out", str(d / "manifest.csv")])
    assert r.exit_code == 0, r.output
    (d / "images").mkdir()
    with open(d / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):  # "render elsewhere": a distinct flat colour per planned image
        Image.new("RGB", (6, 6), (i * 40, 0, 0)).save(d / row["path"])
    out = tmp_path / "run"
    sample(SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(out), generator=f"folder:{d}", progress=False))
    _, df = load_run(out)
    assert list(df.image_id) == [Path(r["path"]).stem for r in rows]
    assert [Image.open(out / p).getpixel((0, 0))[0] for p in df.path] == [i * 40 for i in range(len(rows))]


@pytest.mark.slow
def test_checkpoint_adapter_on_a_real_tiny_pipeline(tmp_path):
    """The adapter drives the real t2i_audit.generator.Pipeline (tiny preset, a few training steps)."""
    from t2i_audit.generator.training.presets import get_preset
    from t2i_audit.generator.training.train_all_stages import train_all

    ckpt = tmp_path / "ckpt"
    train_all(ckpt, get_preset("tiny"), progress=False, log=lambda *a: None)
    g = load_generator(f"checkpoint:{ckpt}")
    params = {"steps": 3, "prior_steps": 3}
    batch = g(["a chef", "a red circle"], [1, 2], params)
    alone = g(["a red circle"], [2], params)
    assert np.array_equal(np.asarray(batch[1]), np.asarray(alone[0]))
    cfg = g.config()
    assert cfg["index"]["format"].startswith("t2i-audit-checkpoint") and "sampler_defaults" in cfg
    (tmp_path / "s.yaml").write_text(SUITE.replace("images_per_prompt: 2", "images_per_prompt: 1"))
    sample(SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(tmp_path / "run"), params=params,
                        progress=False), generator=g)
    meta, df = load_run(tmp_path / "run")
    assert len(df) == 2 and meta["generator"]["kind"] == "checkpoint"
