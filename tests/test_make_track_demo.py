"""scripts/make_track_demo.py: loadable checkpoints; only the planted step's prior moves far."""

import importlib.util
from pathlib import Path

import torch

from t2i_audit.generator.models.safetensors_io import load_state
from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline, checkpoint_dir

SCRIPT = Path(__file__).parents[1] / "scripts/make_track_demo.py"


def _rel_change(a: dict, b: dict) -> float:
    num = sum(float((a[k].float() - b[k].float()).norm() ** 2) for k in a if a[k].is_floating_point())
    den = sum(float(a[k].float().norm() ** 2) for k in a if a[k].is_floating_point())
    return (num / den) ** 0.5


def test_chain(tmp_path):
    spec = importlib.util.spec_from_file_location("make_track_demo", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dirs = mod.build(tmp_path, [1000, 2000, 3000], bad=3000, blend=0.6, jitter=0.002, seed=0)
    src = checkpoint_dir("bundled")
    base = load_state(src / "prior/model.safetensors")
    same, jit, bad = (_rel_change(base, load_state(d / "prior/model.safetensors")) for d in dirs)
    assert same == 0 and 0 < jit < 0.01 and bad > 0.2
    for d in dirs:
        assert (d / "decoder/model.safetensors").read_bytes() == (src / "decoder/model.safetensors").read_bytes()
    pipe = Pipeline.load(dirs[2])
    assert pipe.index["step"] == 3000 and pipe.index["track_demo"]["prior"] == "blend"
    assert all(torch.isfinite(p).all() for p in pipe.prior.parameters())
