"""Training stages take one JSON config each, built from the preset; a resume refuses another
preset (both hashes named, exit 2) unless the change is deliberate, and then index.json records it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.generator.training.presets import get_preset
from t2i_audit.generator.training.stage_configs import STAGE_CONFIGS, stage_config

PRESETS = Path(__file__).resolve().parents[1] / "scripts" / "presets"


@pytest.mark.parametrize("preset", ["tiny", "default", *sorted(str(p) for p in PRESETS.glob("*.json"))])
def test_every_stage_config_round_trips_json_and_names_its_preset(preset):
    p = get_preset(preset)
    for stage, cls in STAGE_CONFIGS.items():
        cfg = stage_config(p, stage)
        assert cls.from_json(cfg.to_json()) == cfg
        assert cfg.preset_hash == p.hash
    assert stage_config(p, "decoder").object_weight == p.object_weight
    assert stage_config(p, "prior").data_seed == p.prior_data_seed
    assert stage_config(p, "decoder").lr == p.lr.get("decoder", 4e-4)


def _train(out: Path, preset: str, *extra: str):
    return CliRunner().invoke(main, ["train", "--preset", preset, "--out", str(out), "--no-progress",
                                     "--threads", "1", *extra])


def test_resume_with_another_preset_is_refused_unless_deliberate(tmp_path):
    out = tmp_path / "ck"
    assert _train(out, "tiny").exit_code == 0
    tiny = get_preset("tiny")
    state = json.loads((out / "train_state_decoder.json").read_text())
    assert state["preset_hash"] == tiny.hash and state["stage_config"]["steps"] == 3
    more = tiny.to_dict() | {"name": "tiny-more", "steps": {**tiny.steps, "decoder": 4}}
    (tmp_path / "more.json").write_text(json.dumps(more))
    more_hash = get_preset(str(tmp_path / "more.json")).hash

    res = _train(out, str(tmp_path / "more.json"))
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and tiny.hash in line and more_hash in line and "--allow-preset-change" in line
    assert json.loads((out / "preset.json").read_text())["name"] == "tiny"  # nothing overwritten

    res = _train(out, str(tmp_path / "more.json"), "--allow-preset-change")
    assert res.exit_code == 0, res.output
    index = json.loads((out / "index.json").read_text())
    assert index["preset"] == "tiny-more" and index["training"]["steps"]["decoder"] == 4
    assert index["training"]["preset_changes"] == [{
        "from": {"name": "tiny", "hash": tiny.hash}, "to": {"name": "tiny-more", "hash": more_hash},
        "steps": {"clip": 3, "autoencoder": 3, "prior": 3, "decoder": 3}}]
    assert json.loads((out / "train_state_decoder.json").read_text())["preset_hash"] == more_hash
    # the accepted preset resumes plainly; going back is another change
    assert _train(out, str(tmp_path / "more.json")).exit_code == 0
    back = _train(out, "tiny")
    assert back.exit_code == 2 and more_hash in back.stderr and tiny.hash in back.stderr
