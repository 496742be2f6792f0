"""Preset files stored as overrides on a named base resolve to exactly the full presets they replaced."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from t2i_audit.errors import InputError
from t2i_audit.generator.training.presets import Preset, get_preset, read_preset_json

PRESETS = Path(__file__).resolve().parents[1] / "scripts" / "presets"

# sha256 (first 16 hex) of json.dumps(full preset, sort_keys=True) of each file as it was when every
# preset was a full copy (finetune9: when it was written): the resolved override chain must give the
# same preset, byte for byte.
FULL = {
    "decoder_finetune": "168a46cab1e87329",
    "decoder_finetune2": "a35923776e6fdcd9",
    "decoder_finetune3": "c7d5f6d5619e2f41",
    "decoder_finetune4": "4c1af8b1c3d2951d",
    "decoder_finetune5": "3ae04eabcaef7573",
    "decoder_finetune6": "f8b71bfa1b42be11",
    "decoder_finetune7": "5d780078a3902b2f",
    "decoder_finetune8": "671899824d8e0fbb",
    "prior_finetune": "6b7fa8195b02c202",
    "finetune9": "3d03c45a4f2fb300",  # written as overrides from the start (whitened prior, distilled decoder)
    "finetune9_half": "bd70e9cbd5808925",
    "finetune9_lift": "6f271e13914b9564",
    "finetune9_distill": "4a47f6558f4890f0",
    "finetune10": "adf87096df9885bb",
    "finetune12": "2052f045e82370ad",  # 800 more steps of finetune9-half's prior, new scene stream
    "finetune13": "76acf682b374c0cd",  # finetune12 at lr 3e-5 for 1,500 steps, another scene stream
    "finetune11": "34514e5aeab8f5d6",  # continues finetune9-half's distillation on a pair-heavy mix
    "finetune14": "1e24747bbcc690ba",  # finetune13's prior recipe, trained --init-from finetune11 (keeps its decoder)
}


def test_every_preset_file_is_checked():
    assert sorted(p.stem for p in PRESETS.glob("*.json")) == sorted(FULL)


@pytest.mark.parametrize("name", sorted(FULL))
def test_resolved_preset_is_todays_full_preset(name):
    d = read_preset_json(PRESETS / f"{name}.json")
    assert "base" not in d
    assert hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16] == FULL[name]
    p = get_preset(str(PRESETS / f"{name}.json"))
    assert p == Preset.from_dict(d) and p.name == d["name"]


def test_overrides_are_small():
    """finetune8 states only what it changed from finetune7."""
    raw = json.loads((PRESETS / "decoder_finetune8.json").read_text())
    assert raw["base"] == "decoder_finetune7"
    assert set(raw) == {"base", "name", "decoder_data_seed", "decoder_people", "steps"}


def test_override_replaces_whole_keys_and_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"name": "a", "steps": {"decoder": 5, "clip": 1}, "save_every": 3}))
    (tmp_path / "b.json").write_text(json.dumps({"base": "a", "name": "b", "steps": {"decoder": 7}}))
    assert read_preset_json(tmp_path / "b.json") == {"name": "b", "steps": {"decoder": 7}, "save_every": 3}
    (tmp_path / "c.json").write_text(json.dumps({"base": "aa"}))
    with pytest.raises(InputError, match="base preset 'aa' not found.*did you mean 'a'"):
        read_preset_json(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"base": "e"}))
    (tmp_path / "e.json").write_text(json.dumps({"base": "d"}))
    with pytest.raises(InputError, match="loops"):
        read_preset_json(tmp_path / "d.json")
    (tmp_path / "f.json").write_text(json.dumps({"base": "a", "stpes": {}}))
    with pytest.raises(InputError, match="did you mean 'steps'"):
        Preset.load(tmp_path / "f.json")
