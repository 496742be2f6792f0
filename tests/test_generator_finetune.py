"""Fine-tuning (`t2i-audit train --init-from`): the prior/decoder start from a checkpoint's
weights, the frozen components are copied byte for byte, and the index keeps the provenance."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.generator.models.safetensors_io import load_state
from t2i_audit.generator.training.presets import Preset, get_preset
from t2i_audit.generator.training.train_all_stages import train_all


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    train_all(out, get_preset("tiny"), progress=False, log=lambda *a: None)
    return out


def _same_weights(a, b) -> bool:
    sa, sb = load_state(a), load_state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_decoder_starts_from_the_source_weights(base, tmp_path):
    # With a zero learning rate, fine-tuning must hand back exactly the weights it started from;
    # a fresh (seeded) initialisation would not equal the trained source.
    preset = get_preset("tiny")
    preset.lr = {"decoder": 0.0}
    out = tmp_path / "ft"
    train_all(out, preset, stages=("decoder",), progress=False, log=lambda *a: None, init_from=base)
    assert _same_weights(out / "decoder" / "model.safetensors", base / "decoder" / "model.safetensors")
    for comp in ("clip", "autoencoder", "prior"):  # not trained here: copied unchanged
        assert (out / comp / "model.safetensors").read_bytes() == (base / comp / "model.safetensors").read_bytes()


def test_finetuning_trains_and_records_provenance(base, tmp_path):
    preset = get_preset("tiny")
    preset.decoder_kind_weights = {"count": 1.0}
    out = tmp_path / "ft"
    train_all(out, preset, stages=("decoder",), progress=False, log=lambda *a: None, init_from=base)
    assert not _same_weights(out / "decoder" / "model.safetensors", base / "decoder" / "model.safetensors")
    src = json.loads((base / "index.json").read_text())
    training = json.loads((out / "index.json").read_text())["training"]
    assert training["init_from"]["id"] == src["id"]
    assert training["init_from"]["finetuned"] == ["decoder"]
    assert training["steps"]["decoder"] == src["training"]["steps"]["decoder"] + preset.steps["decoder"]
    assert training["steps"]["clip"] == src["training"]["steps"]["clip"]
    assert training["decoder_kind_weights"] == {"count": 1.0}
    assert training["decoder_object_weight"] == preset.object_weight
    assert "decoder_skin_weight" not in training  # recorded only where it is used
    # A fine-tune of a fine-tune keeps the whole chain of sources.
    again = tmp_path / "ft-again"
    train_all(again, get_preset("tiny"), stages=("decoder",), progress=False, log=lambda *a: None, init_from=out)
    chain = json.loads((again / "index.json").read_text())["training"]["init_from"]
    assert chain["id"] == json.loads((out / "index.json").read_text())["id"]
    assert chain["init_from"]["id"] == src["id"] and "init_from" not in chain["init_from"]


def test_a_new_decoder_data_seed_draws_other_scenes_and_is_recorded(base, tmp_path):
    # Same weights, same training seed, same steps: only the scene stream differs, so the
    # fine-tuned decoders must differ, and the index must say which stream was used.
    outs = {}
    for seed in (404, 405):
        preset = get_preset("tiny")
        preset.decoder_data_seed = seed
        outs[seed] = tmp_path / f"ft{seed}"
        train_all(outs[seed], preset, stages=("decoder",), progress=False, log=lambda *a: None, init_from=base)
    assert not _same_weights(outs[404] / "decoder" / "model.safetensors", outs[405] / "decoder" / "model.safetensors")
    assert "decoder_data_seed" not in json.loads((outs[404] / "index.json").read_text())["training"]
    assert json.loads((outs[405] / "index.json").read_text())["training"]["decoder_data_seed"] == 405


def test_a_skin_weighted_loss_changes_the_decoder_and_is_recorded(base, tmp_path):
    outs = {}
    for w in (0.0, 4.0):
        preset = get_preset("tiny")
        preset.skin_weight, preset.decoder_kind_weights = w, {"person": 1.0}
        outs[w] = tmp_path / f"skin{w}"
        train_all(outs[w], preset, stages=("decoder",), progress=False, log=lambda *a: None, init_from=base)
    assert not _same_weights(outs[0.0] / "decoder" / "model.safetensors", outs[4.0] / "decoder" / "model.safetensors")
    assert json.loads((outs[4.0] / "index.json").read_text())["training"]["decoder_skin_weight"] == 4.0


def test_prior_finetune_takes_its_own_scene_mix_and_stream(base, tmp_path):
    preset = get_preset("tiny")
    preset.prior_kind_weights, preset.prior_data_seed = {"count": 1.0}, 304
    out = tmp_path / "ftp"
    train_all(out, preset, stages=("prior",), progress=False, log=lambda *a: None, init_from=base)
    assert not _same_weights(out / "prior" / "model.safetensors", base / "prior" / "model.safetensors")
    assert (out / "decoder" / "model.safetensors").read_bytes() == (base / "decoder" / "model.safetensors").read_bytes()
    training = json.loads((out / "index.json").read_text())["training"]
    assert training["prior_kind_weights"] == {"count": 1.0} and training["prior_data_seed"] == 304
    assert training["init_from"]["finetuned"] == ["prior"]


def test_a_copied_stage_keeps_the_record_of_its_source(base, tmp_path):
    # A decoder fine-tuned on counting scenes, then a prior-only fine-tune whose preset names
    # another decoder recipe: the copied decoder's record must still be the one that trained it.
    dec = get_preset("tiny")
    dec.decoder_kind_weights, dec.skin_weight, dec.decoder_data_seed = {"count": 1.0}, 2.0, 405
    src = tmp_path / "ftd"
    train_all(src, dec, stages=("decoder",), progress=False, log=lambda *a: None, init_from=base)
    pri = get_preset("tiny")
    pri.decoder_kind_weights, pri.prior_data_seed = {"person": 1.0}, 304
    out = tmp_path / "ftp"
    train_all(out, pri, stages=("prior",), progress=False, log=lambda *a: None, init_from=src)
    training = json.loads((out / "index.json").read_text())["training"]
    assert training["decoder_kind_weights"] == {"count": 1.0}
    assert training["decoder_skin_weight"] == 2.0 and training["decoder_data_seed"] == 405
    assert training["prior_data_seed"] == 304


def test_finetuning_clip_or_autoencoder_is_refused(base, tmp_path):
    with pytest.raises(InputError, match="fine-tunes prior and decoder only"):
        train_all(tmp_path / "x", get_preset("tiny"), stages=("clip", "decoder"), progress=False,
                  log=lambda *a: None, init_from=base)


def test_cli_init_from_defaults_to_prior_and_decoder(base, tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["train", "--preset", "tiny", "--init-from", str(base), "--out", str(out),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "checkpoint ready" in res.output
    assert (out / "train_state_prior.json").is_file() and (out / "train_state_decoder.json").is_file()
    assert not (out / "train_state_clip.json").exists()


@pytest.mark.parametrize("name", ["decoder_finetune.json", "decoder_finetune2.json", "decoder_finetune3.json",
                                  "decoder_finetune4.json", "decoder_finetune5.json", "decoder_finetune6.json",
                                  "prior_finetune.json"])
def test_the_shipped_finetune_presets_round_trip(name):
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "presets" / name
    preset = Preset.load(path)
    assert Preset.from_dict(json.loads(preset.to_json())) == preset
    assert abs(sum(preset.decoder_kind_weights.values()) - 1.0) < 1e-9
    if preset.prior_kind_weights is not None:
        assert abs(sum(preset.prior_kind_weights.values()) - 1.0) < 1e-9


def test_uniform_decoder_people_train_on_the_unbiased_spec_and_are_recorded(base, tmp_path, monkeypatch):
    import t2i_audit.generator.training.train_decoder as td
    from t2i_audit.world.bias import BiasSpec

    seen, original = [], td.world_batch

    def spy(seed, start, n, spec, *args, **kwargs):
        seen.append(spec.hash)
        return original(seed, start, n, spec, *args, **kwargs)

    monkeypatch.setattr(td, "world_batch", spy)
    outs = {}
    for people in ("spec", "uniform"):
        preset = get_preset("tiny")
        preset.decoder_people, preset.decoder_kind_weights = people, {"person": 1.0}
        outs[people] = tmp_path / people
        seen.clear()
        train_all(outs[people], preset, stages=("decoder",), progress=False, log=lambda *a: None, init_from=base)
        want = BiasSpec.uniform().hash if people == "uniform" else BiasSpec.load().hash
        assert seen and set(seen) == {want}
    assert not _same_weights(outs["spec"] / "decoder" / "model.safetensors",
                             outs["uniform"] / "decoder" / "model.safetensors")
    training = json.loads((outs["uniform"] / "index.json").read_text())["training"]
    assert training["decoder_bias_spec"] == {"name": "uniform", "hash": BiasSpec.uniform().hash}
    assert training["bias_spec"]["hash"] == BiasSpec.load().hash  # CLIP and the prior: the training spec
    assert "decoder_bias_spec" not in json.loads((outs["spec"] / "index.json").read_text())["training"]


def test_a_misspelt_decoder_people_names_the_choices():
    with pytest.raises(InputError, match=r"'unifrom'.*did you mean 'uniform'.*spec or uniform"):
        Preset(decoder_people="unifrom")
    preset = Preset(decoder_people="uniform")
    assert Preset.from_dict(json.loads(preset.to_json())) == preset
