"""Determinism: same checkpoint, prompt, seed and settings give byte-identical PNGs on CPU across runs
and batch sizes (through `t2i-audit sample`), and `t2i-audit reproduce RUN IMAGE_ID` regenerates any
image from what the run recorded and checks its sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from t2i_audit.cli import main
from test_bad_inputs import _random_clip

SUITE = """\
name: det
version: "1"
images_per_prompt: 2
seeds: {kind: range, start: 5}
slots:
  color: [red, blue]
  shape: [circle, square, triangle]
templates:
  - template: "a drawing of a {color} {shape}"
    category: colour
"""
PARAMS = ["--param", "steps=2", "--param", "prior_steps=2"]


def random_checkpoint(d: Path) -> Path:
    """A loadable t2i-audit checkpoint with random (untrained) tiny-preset weights: the real format,
    without the cost of training."""
    from t2i_audit.generator.models.autoencoder import Autoencoder
    from t2i_audit.generator.models.component_configs import SamplerParams, SchedulerConfig
    from t2i_audit.generator.models.pictoworld_clip import load_clip
    from t2i_audit.generator.models.prior import Prior
    from t2i_audit.generator.models.unet import build_decoder
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline
    from t2i_audit.generator.training.presets import get_preset

    preset = get_preset("tiny")
    clip = load_clip(_random_clip(d / "_clip"))
    torch.manual_seed(1)
    prior = Prior(preset.prior_config())
    decoder = build_decoder(preset.decoder_config(), clip.config.context_length)
    for p in decoder.parameters():  # break zero-initialised output layers, so images depend on weights
        p.data.add_(torch.randn_like(p) * 0.02)
    ae = Autoencoder(preset.autoencoder_config())
    Pipeline(clip, prior, decoder, ae, SchedulerConfig(), SchedulerConfig(), SamplerParams(),
             {"id": "random-tiny"}).save(d / "ck")
    return d / "ck"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("det"))


def invoke(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r


def sample_run(tmp: Path, ckpt: Path, out: str, batch: int) -> pd.DataFrame:
    (tmp / "det.yaml").write_text(SUITE)
    r = invoke(["sample", "--suite", tmp / "det.yaml", "--out", tmp / out, "--generator", f"checkpoint:{ckpt}",
                "--batch-size", batch, "--no-progress", *PARAMS])
    assert r.exit_code == 0, r.output
    return pd.read_parquet(tmp / out / "manifest.parquet")


def test_same_seed_same_bytes_across_runs_and_batch_sizes(ckpt, tmp_path):
    a = sample_run(tmp_path, ckpt, "b1", 1)
    b = sample_run(tmp_path, ckpt, "b5", 5)
    c = sample_run(tmp_path, ckpt, "b12", 12)
    again = sample_run(tmp_path, ckpt, "b5-again", 5)
    assert len(a) == 12 and a["sha256"].nunique() == 12  # every (prompt, seed) a different image
    for other in (b, c, again):
        assert other["image_id"].tolist() == a["image_id"].tolist()
        assert other["sha256"].tolist() == a["sha256"].tolist()
    # the hash is of the PNG file bytes themselves
    for run in ("b1", "b12"):
        for row in a.itertuples():
            assert hashlib.sha256((tmp_path / run / row.path).read_bytes()).hexdigest() == row.sha256


def test_run_json_records_what_reproduction_needs(ckpt, tmp_path):
    sample_run(tmp_path, ckpt, "run", 4)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["generator"]["id"] == f"checkpoint:{ckpt}" and len(meta["generator"]["config_hash"]) >= 12
    assert meta["generator"]["config"]["fingerprint"]
    assert meta["params"] == {"steps": 2, "prior_steps": 2}
    assert meta["seed_policy"]["kind"] == "range" and meta["suite"]["hash"]
    env = meta["environment"]
    assert env["package"] == meta["package_version"] and env["torch"] == torch.__version__
    assert env["threads"] == torch.get_num_threads() and env["python"]


def test_reproduce_matches_and_detects_a_changed_checkpoint(ckpt, tmp_path):
    df = sample_run(tmp_path, ckpt, "run", 3)
    row = df.iloc[7]
    out = tmp_path / "again.png"
    r = invoke(["reproduce", tmp_path / "run", row.image_id, "--out", out])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"match: {row.image_id}") and row.sha256 in r.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == row.sha256

    # The same file sizes, other weights: reproduction fails, and says the generator changed.
    from safetensors.torch import load_file, save_file

    w = ckpt.parent / "ck2"
    import shutil

    shutil.copytree(ckpt, w)
    sd = load_file(str(w / "decoder" / "model.safetensors"))
    sd = {k: v + 0.05 if v.is_floating_point() else v for k, v in sd.items()}
    save_file(sd, str(w / "decoder" / "model.safetensors"))
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    shutil.copytree(tmp_path / "run", tmp_path / "moved")
    meta["generator"]["id"] = f"checkpoint:{w}"
    (tmp_path / "moved" / "run.json").write_text(json.dumps(meta))
    r = invoke(["reproduce", tmp_path / "moved", row.image_id])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("mismatch:") and "generator config hash" in r.output


def test_reproduce_errors_are_one_line(ckpt, tmp_path):
    df = sample_run(tmp_path, ckpt, "run", 6)
    typo = df.image_id.iloc[0][:-1] + "9"
    r = invoke(["reproduce", tmp_path / "run", typo])
    assert r.exit_code == 2 and "did you mean" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = invoke(["reproduce", tmp_path / "nope", "x"])
    assert r.exit_code == 2 and "not a run directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bundled_default_is_batch_independent():
    """The shipped default (whitened prior, guidance-distilled decoder, its sampler.json): an image's
    bytes depend on its prompt and seed, not on the batch it was drawn in."""
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

    torch.set_num_threads(1)
    pipe = Pipeline.load("bundled")
    prompts = ["a drawing of a chef", "two red squares", "a doctor", "a blue circle on the left", "a police officer"]
    seeds = [101, 102, 103, 104, 105]
    together = pipe(prompts, seeds).images
    again = pipe(prompts, seeds).images
    alone = [pipe([p], [s]).images[0] for p, s in zip(prompts[:3], seeds[:3])]
    assert [a.tobytes() for a in together] == [b.tobytes() for b in again]
    assert [a.tobytes() for a in together[:3]] == [b.tobytes() for b in alone]
    assert len({a.tobytes() for a in together}) == 5


def test_prior_chunk_keeps_images_batch_independent(ckpt):
    """The prior runs on fixed chunks of prior_micro_batch rows and the decoder on micro_batch rows:
    an image drawn alone equals the same (prompt, seed) drawn across chunk boundaries of both."""
    from t2i_audit.errors import InputError
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

    torch.set_num_threads(1)
    pipe = Pipeline.load(ckpt)
    kw = dict(steps=2, prior_steps=2, micro_batch=2, prior_micro_batch=5)
    prompts = [f"a drawing of a {c} {s}" for c in ("red", "blue") for s in ("circle", "square", "triangle")] * 2
    seeds = list(range(40, 52))
    out = pipe(prompts, seeds, **kw)
    alone = [pipe([p], [s], **kw) for p, s in zip(prompts[4:8], seeds[4:8])]
    assert [a.tobytes() for a in out.images[4:8]] == [o.images[0].tobytes() for o in alone]
    assert torch.equal(out.image_embeds[4:8], torch.cat([o.image_embeds for o in alone]))
    assert torch.equal(pipe.prior_embeds(prompts, seeds, **kw), out.image_embeds)  # the embeddings decoded
    assert len({a.tobytes() for a in out.images}) == 12
    with pytest.raises(InputError, match="prior_micro_batch"):
        pipe.resolve_params(prior_micro_batch=0)


def test_sampling_batches_follow_the_generators_chunk(ckpt, tmp_path):
    """`sample` without --batch-size draws as many prompts per call as the generator's largest fixed
    chunk (its batch_hint) when that exceeds the device default, and the images stay those of a
    one-prompt-per-call run."""
    extra = ["--param", "prior_micro_batch=20"]
    (tmp_path / "det.yaml").write_text(SUITE)
    runs = {}
    for name, batch in (("auto", []), ("one", ["--batch-size", 1])):
        r = invoke(["sample", "--suite", tmp_path / "det.yaml", "--out", tmp_path / name, "--generator",
                    f"checkpoint:{ckpt}", "--no-progress", *batch, *PARAMS, *extra])
        assert r.exit_code == 0, r.output
        runs[name] = pd.read_parquet(tmp_path / name / "manifest.parquet")
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["batch_size"] == 20
    assert json.loads((tmp_path / "one" / "run.json").read_text())["batch_size"] == 1
    assert runs["auto"]["sha256"].tolist() == runs["one"]["sha256"].tolist()
