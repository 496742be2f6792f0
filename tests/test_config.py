"""core.config.ConfigBase: every config class round-trips JSON and refuses unknown keys by name."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from t2i_audit.audits.bias.bias_audit import BiasAuditConfig
from t2i_audit.audits.diversity.diversity_audit import DiversityAuditConfig
from t2i_audit.audits.memorization.memorization_audit import MemorizationConfig
from t2i_audit.audits.safety.safety_audit import SafetyAuditConfig
from t2i_audit.core.config import ConfigBase
from t2i_audit.errors import InputError
from t2i_audit.evals.judges.openai_judge import OpenAIJudgeConfig
from t2i_audit.evals.runs.sampling import SampleConfig
from t2i_audit.evals.scoring.score import ScoreConfig
from t2i_audit.generator.models.component_configs import (
    AutoencoderConfig,
    ClipConfig,
    DiTConfig,
    PriorConfig,
    SamplerParams,
    SchedulerConfig,
)
from t2i_audit.generator.models.tokenizer import TokenizerConfig
from t2i_audit.generator.models.unet import UNetConfig
from t2i_audit.generator.training.presets import Preset
from t2i_audit.generator.training.stage_configs import STAGE_CONFIGS, stage_config
from t2i_audit.job import JobConfig
from t2i_audit.reports.report import ReportConfig
from t2i_audit.stats.power import PlanConfig
from t2i_audit.world.oracle import OracleConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "t2i_audit"

# One instance per class, each with non-default values (tuples, None, dicts) where it has them.
INSTANCES = [
    PlanConfig(gap=0.1, design_effect=1.5, groups=3),
    OracleConfig(fg_min=25.0),
    TokenizerConfig(context_length=16, bpe_ids=[5, 3, 9]),
    BiasAuditConfig(probes=["oracle"], group_slots=("profession",), reference=None, labels="labels.csv"),
    DiversityAuditConfig(probes=["oracle-clothing"], group_slots=("profession",), features="none"),
    SafetyAuditConfig(detector="concepts", concepts=["police=a police officer@0.6"], labels="labels.csv"),
    MemorizationConfig(crop_fractions=(0.05,), space="clip"),
    ScoreConfig(metrics=("clip_score", "fd"), reference="world", cache_dir=None),
    SampleConfig(suite="pictoworld-skills", out="runs/a", params={"steps": 5}, limit=3),
    JobConfig(metrics=("skills",), params={"guidance": 1.5}, threads=1, rules="r.yaml"),
    ReportConfig(formats=("md", "csv"), max_prompts=5),
    ClipConfig(mean=(0.4, 0.5, 0.6)),
    AutoencoderConfig(channels=(8, 16)),
    DiTConfig(width=64),
    PriorConfig(layers=2),
    SchedulerConfig(num_train_timesteps=100),
    SamplerParams(steps=7),
    UNetConfig(block_out_channels=(16, 32)),
    Preset(name="p", save_every=7, decoder_kind_weights={"person": 0.5}),
    *(stage_config(Preset(name="p", save_every=7, decoder_kind_weights={"person": 0.5}), s) for s in STAGE_CONFIGS),
    OpenAIJudgeConfig(base_url="http://127.0.0.1:8000/v1", model="vlm", concurrency=3, revision="r1"),
]


def _id(obj) -> str:
    return type(obj).__name__


def test_every_config_class_uses_the_base_and_is_listed():
    """Every dataclass named *Config (or SamplerParams, Preset) derives from ConfigBase and is tested here."""
    listed = {type(o).__name__ for o in INSTANCES}
    found = set()
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config") and any(
                    getattr(d, "id", getattr(getattr(d, "func", None), "id", "")) == "dataclass"
                    for d in node.decorator_list):
                found.add(node.name)
    assert found <= listed, f"config classes missing from this test: {sorted(found - listed)}"
    assert all(isinstance(o, ConfigBase) for o in INSTANCES)


@pytest.mark.parametrize("obj", INSTANCES, ids=_id)
def test_json_round_trip(obj, tmp_path):
    cls = type(obj)
    back = cls.from_json(obj.to_json())
    assert back == obj and back.to_json() == obj.to_json()
    json.loads(obj.to_json())  # plain JSON
    obj.save(tmp_path / "c.json")
    assert cls.load(tmp_path / "c.json") == obj
    for f in dataclasses.fields(obj):  # tuples stay tuples
        assert type(getattr(back, f.name)) is type(getattr(obj, f.name)), f.name


@pytest.mark.parametrize("obj", INSTANCES, ids=_id)
def test_unknown_key_names_the_fix(obj):
    cls = type(obj)
    d = obj.to_dict()
    key = sorted(d)[0]
    d[key + "x"] = d.pop(key)
    with pytest.raises(InputError) as e:
        cls.from_dict(d, "cfg.json")
    msg = str(e.value)
    assert f"unknown key {key + 'x'!r}" in msg and f"did you mean {key!r}" in msg
    assert "valid keys: " + ", ".join(sorted(obj.to_dict())) in msg and "\n" not in msg


def test_missing_required_key_and_bad_json():
    with pytest.raises(InputError, match="needs the key 'suite'"):
        SampleConfig.from_dict({"out": "x"})
    with pytest.raises(InputError, match="not valid JSON"):
        JobConfig.from_json("{")
    with pytest.raises(InputError, match="expected a mapping"):
        ReportConfig.from_dict(["md"])
