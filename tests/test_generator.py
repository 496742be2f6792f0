"""Generator: tiny preset trained for a few steps, saved, reloaded and sampled."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from t2i_audit.errors import InputError
from t2i_audit.generator.models.component_configs import DiTConfig, SamplerParams
from t2i_audit.generator.models.safetensors_io import load_state
from t2i_audit.generator.models.tokenizer import CompactTokenizer, world_vocabulary_texts
from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline, candidate_seed
from t2i_audit.generator.training.presets import get_preset
from t2i_audit.generator.training.train_all_stages import train_all

FAST = dict(steps=3, prior_steps=3)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_ckpt")
    train_all(out, get_preset("tiny"), progress=False, log=lambda *a: None)
    return out


@pytest.fixture(scope="module")
def pipe(tiny_ckpt):
    return Pipeline.load(tiny_ckpt)


def arr(img):
    return np.asarray(img)


def test_checkpoint_index_records_provenance(tiny_ckpt):
    index = json.loads((tiny_ckpt / "index.json").read_text())
    assert index["format"] == "t2i-audit-checkpoint/1"
    assert index["training"]["bias_spec"]["hash"]
    assert index["training"]["steps"] == {"clip": 3, "autoencoder": 3, "prior": 3, "decoder": 3}
    for comp in ("clip", "prior", "decoder", "autoencoder"):
        assert (tiny_ckpt / comp / "config.json").is_file()
        assert (tiny_ckpt / comp / "model.safetensors").is_file()


def test_save_load_round_trip_gives_identical_images(pipe, tmp_path):
    a = pipe(["a red circle", "a chef"], [1, 2], **FAST).images
    pipe.save(tmp_path / "copy")
    b = Pipeline.load(tmp_path / "copy")(["a red circle", "a chef"], [1, 2], **FAST).images
    assert all(np.array_equal(arr(x), arr(y)) for x, y in zip(a, b))


@pytest.mark.parametrize("sampler", ["dpm++", "ddim", "ddpm", "dpm++sde"])
def test_image_depends_on_its_seed_not_its_batch(pipe, sampler):
    """Stochastic samplers (ddpm, dpm++sde) draw fresh noise at every step, in the prior too: drawn
    from a shared generator, the image alone would differ from its copy in the batch."""
    prompts = [f"a photo of a {w}" for w in ("chef", "doctor", "firefighter", "red circle")] * 2
    seeds = list(range(10, 18))
    kw = dict(FAST, sampler=sampler, prior_sampler=sampler)
    batch = pipe(prompts, seeds, **kw).images
    alone = pipe([prompts[5]], [seeds[5]], **kw).images[0]
    assert np.array_equal(arr(batch[5]), arr(alone))
    again = pipe(prompts[:3], seeds[:3], **kw).images
    assert all(np.array_equal(arr(x), arr(y)) for x, y in zip(batch[:3], again))


def test_different_seeds_give_different_images(pipe):
    a, b = pipe(["a chef", "a chef"], [0, 1], **FAST).images
    assert not np.array_equal(arr(a), arr(b))


def test_guidance_zero_vs_positive_changes_output(tiny_ckpt):
    pipe = Pipeline.load(tiny_ckpt)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # 3 training steps leave the zero-initialised output head near zero
        for p in pipe.decoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    g0 = pipe(["a blue square"], [3], guidance=0.0, **FAST).images[0]
    g1 = pipe(["a blue square"], [3], guidance=1.0, **FAST).images[0]
    g3 = pipe(["a blue square"], [3], guidance=3.0, **FAST).images[0]
    assert not np.array_equal(arr(g0), arr(g3))
    assert not np.array_equal(arr(g1), arr(g3))


def test_decode_draws_from_given_embeddings_per_seed(tiny_ckpt):
    pipe = Pipeline.load(tiny_ckpt)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # as above: move the near-zero output head so the embedding matters
        for p in pipe.decoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    emb = torch.nn.functional.normalize(torch.randn(5, pipe.clip.config.embed_dim, generator=gen), dim=-1)
    caps = ["a red circle"] * 5
    batch = pipe.decode(caps, emb, [4] * 5, **FAST)
    alone = pipe.decode(caps[2:3], emb[2:3], [4], **FAST)[0]
    assert np.array_equal(arr(batch[2]), arr(alone))  # one image depends on its inputs, not its batch
    assert not np.array_equal(arr(batch[0]), arr(batch[1]))  # same caption and seed, other embedding
    with pytest.raises(InputError, match="one of each per image"):
        pipe.decode(caps, emb[:3], [4] * 5)


def test_prior_embeds_are_the_embeddings_the_decoder_is_given(pipe):
    prompts, seeds = ["a chef", "a blue square", "a chef"], [3, 3, 11]
    full = pipe(prompts, seeds, **FAST).image_embeds
    alone = pipe.prior_embeds(prompts, seeds, **FAST)
    assert torch.equal(full, alone)
    assert torch.allclose(alone.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.equal(alone[0], alone[2])  # same prompt, other seed: another sample
    with pytest.raises(InputError, match="one seed per prompt"):
        pipe.prior_embeds(prompts, seeds[:2])


def test_reranking_keeps_the_clip_best_candidate(pipe):
    k, prompt, seed = 4, "a green triangle", 7
    chosen = pipe([prompt], [seed], rerank=k, **FAST).images[0]
    cands = pipe([prompt] * k, [candidate_seed(seed, j) for j in range(k)], **FAST).images
    txt = pipe.clip.encode_texts([prompt])
    scores = (pipe.clip.encode_images(cands) @ txt.T).squeeze(1)
    assert np.array_equal(arr(chosen), arr(cands[int(scores.argmax())]))


def test_a_few_training_steps_lower_the_loss(tmp_path):
    from t2i_audit.generator.models.autoencoder import Autoencoder, to_pixels
    from t2i_audit.generator.models.component_configs import AutoencoderConfig
    from t2i_audit.generator.training.training_state import world_batch
    from t2i_audit.world.bias import BiasSpec

    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(channels=(8, 16))).eval()
    imgs, _, _ = world_batch(5, 0, 16, BiasSpec.load())
    x = to_pixels(imgs)
    before = ae.loss(x)[0].item()
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    for _ in range(15):
        loss, _ = ae.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ae.loss(x)[0].item() < 0.7 * before


def test_training_resumes_without_losing_progress(tmp_path):
    preset = get_preset("tiny")
    preset.steps = {"clip": 4, "autoencoder": 1, "prior": 1, "decoder": 1}
    train_all(tmp_path / "a", preset, stages=("clip",), progress=False, log=lambda *a: None)
    one_go = load_state(tmp_path / "a" / "train_state_clip.safetensors")
    preset.steps["clip"] = 2
    train_all(tmp_path / "b", preset, stages=("clip",), progress=False, log=lambda *a: None)
    preset.steps["clip"] = 4  # more steps change the recipe (the LR schedule): a deliberate change
    train_all(tmp_path / "b", preset, stages=("clip",), progress=False, log=lambda *a: None,
              allow_preset_change=True)
    resumed = load_state(tmp_path / "b" / "train_state_clip.safetensors")
    # the LR schedule depends on the total steps, so compare runs that share it
    preset.steps["clip"] = 4
    assert json.loads((tmp_path / "b" / "train_state_clip.json").read_text())["step"] == 4
    assert set(one_go) == set(resumed)


def test_config_round_trip_and_unknown_key():
    cfg = DiTConfig(width=64, layers=2)
    assert DiTConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(InputError, match="did you mean 'width'"):
        DiTConfig.from_dict({"widht": 3})
    p = SamplerParams(sampler="ddim", steps=7)
    assert SamplerParams.from_dict(json.loads(p.to_json())) == p


def test_unknown_sampler_is_a_clear_error(pipe):
    with pytest.raises(InputError, match="did you mean 'ddim'"):
        pipe(["a chef"], [0], sampler="ddin")


def test_pickle_checkpoints_are_refused_unopened(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for suffix in (".pt", ".bin", ".ckpt"):
        f = tmp_path / f"evil{suffix}"
        f.write_bytes(pickle.dumps(Evil()))
        with pytest.raises(InputError, match="pickle"):
            load_state(f)
    assert not marker.exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="index.json missing"):
        Pipeline.load(tmp_path)


def test_tokenizer_truncates_explicitly():
    tok = CompactTokenizer.build(world_vocabulary_texts(), context_length=8)
    ids = tok(["a red circle and a blue square and a green triangle on the left"])
    assert ids.shape == (1, 8) and int(ids[0, -1]) == tok.eot
    assert tok.truncated == 1
    assert "truncated to 8 tokens" in tok.methodology()


def test_decoder_configs_dispatch_on_architecture_and_round_trip():
    from t2i_audit.generator.models.unet import UNetConfig, decoder_config_from_dict

    u = UNetConfig(block_out_channels=(16, 32), norm_num_groups=8)
    assert decoder_config_from_dict(json.loads(u.to_json())) == u
    # checkpoints written before the key existed hold DiT configs without "architecture"
    old = DiTConfig(width=32).to_dict()
    old.pop("architecture")
    assert isinstance(decoder_config_from_dict(old), DiTConfig)
    with pytest.raises(InputError, match="did you mean 'unet'"):
        decoder_config_from_dict({"architecture": "unte"})


def test_a_dit_decoder_checkpoint_still_saves_and_loads(pipe, tmp_path):
    from t2i_audit.generator.models.dit import DiT

    c = pipe.clip.config
    torch.manual_seed(0)
    dit = DiT(DiTConfig(width=32, layers=1, heads=2, cond_dim=c.embed_dim, text_dim=c.text_width, cond_tokens=1),
              c.context_length)
    for p in dit.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    p2 = Pipeline(pipe.clip, pipe.prior, dit, pipe.autoencoder, pipe.prior_scheduler, pipe.decoder_scheduler,
                  pipe.defaults, pipe.index)
    p2.save(tmp_path / "dit")
    back = Pipeline.load(tmp_path / "dit")
    assert isinstance(back.decoder, DiT)
    a = p2(["a red circle"], [3], **FAST).images[0]
    b = back(["a red circle"], [3], **FAST).images[0]
    assert np.array_equal(arr(a), arr(b))


def test_object_mask_covers_exactly_the_drawn_object():
    from t2i_audit.generator.training.train_decoder import object_mask
    from t2i_audit.generator.training.training_state import world_batch
    from t2i_audit.world.bias import BiasSpec

    imgs, _, scenes = world_batch(7, 0, 6, BiasSpec.load(), 32, {"single": 1.0})
    m = object_mask(imgs, [s.background for s in scenes], 32)
    for img, s, mk in zip(imgs, scenes, m):
        differs = (img.int() - s.background).abs().amax(0) > 12
        assert torch.equal(mk[0].bool(), differs)
        assert 0.01 < mk.mean() < 0.3  # one shape covers a small part of the canvas
    assert object_mask(imgs, [s.background for s in scenes], 16).shape == (6, 1, 16, 16)


def test_skin_mask_covers_the_persons_skin_and_nothing_on_shape_scenes():
    from t2i_audit.generator.training.train_decoder import skin_mask
    from t2i_audit.generator.training.training_state import world_batch
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.vocab import SKIN_RGB

    imgs, _, scenes = world_batch(8, 0, 12, BiasSpec.load(), 32, {"person": 0.5, "count": 0.5})
    m = skin_mask(imgs, scenes, 32)
    assert {s.kind for s in scenes} == {"person", "count"}
    for img, s, mk in zip(imgs, scenes, m):
        if s.person is None:
            assert mk.sum() == 0
            continue
        exact = (img.int() == torch.tensor(SKIN_RGB[s.person.skin])[:, None, None]).all(0)
        assert torch.equal(mk[0].bool(), exact)
        # the head (a disc ~6.6 units across) is in it: its centre pixel and ~30-60 pixels
        cy, cx = round(16 + s.person.dy + s.person.scale * (11.9 - 16)), round(16 + s.person.dx)
        assert mk[0, cy, cx] == 1 and 25 < mk.sum() < 90
    assert skin_mask(imgs, scenes, 16).shape == (12, 1, 16, 16)


def test_generate_cli_passes_sampler_settings_through(tiny_ckpt, tmp_path):
    """`t2i-audit generate --prior-sampler ddpm` draws the same images as the Python API with the
    same settings, and not the images of the checkpoint's default prior sampler."""
    from click.testing import CliRunner

    from t2i_audit.cli import main

    out = tmp_path / "g.png"
    args = ["generate", "a red circle", "--n", "2", "--seed", "5", "--checkpoint", str(tiny_ckpt), "--out", str(out),
            "--steps", "3", "--prior-steps", "3"]
    res = CliRunner().invoke(main, args + ["--prior-sampler", "ddpm"])
    assert res.exit_code == 0, res.output
    assert "prior ddpm 3 steps" in res.output
    pipe = Pipeline.load(tiny_ckpt)
    want = pipe(["a red circle"] * 2, [5, 6], steps=3, prior_steps=3, prior_sampler="ddpm").images
    default = pipe(["a red circle"] * 2, [5, 6], steps=3, prior_steps=3).images
    got = [Image.open(tmp_path / "g" / f"seed{s}.png") for s in (5, 6)]
    assert all(np.array_equal(arr(a), arr(b)) for a, b in zip(got, want))
    assert not all(np.array_equal(arr(a), arr(b)) for a, b in zip(got, default))
