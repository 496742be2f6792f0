"""Build a checkpoint chain from the bundled generator with one planted regression (for `t2i-audit track`).

    python scripts/make_track_demo.py OUT [--steps 1000,2000,3000,4000] [--bad 3000]
        [--blend 0.6] [--jitter 0.002] [--seed 0]

Writes OUT/step-N, each a full checkpoint directory (a copy of the bundled one). The prior's
weights differ per step:
- the planted step (``--bad``): every floating-point prior tensor is blended ``--blend`` of the way
  toward a freshly initialised prior (same config, ``torch.manual_seed(seed)``):
  w' = (1 - blend) * w + blend * w_init. The CLIP, decoder and autoencoder are untouched.
- the first step: the bundled weights unchanged;
- the other steps: harmless jitter, w' = w + jitter * std(w) * N(0, 1) per tensor (seeded by step).
index.json records the step, the change and the bundled id it came from.

Then sample and score each with one suite and run `t2i-audit track OUT/runs/step-* --x name`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from t2i_audit.generator.models.component_configs import PriorConfig
from t2i_audit.generator.models.prior import Prior
from t2i_audit.generator.models.safetensors_io import load_state, save_safetensors
from t2i_audit.generator.pipeline.unclip_pipeline import checkpoint_dir


def _prior_weights(state: dict, how: str, amount: float, seed: int, config: Path) -> dict:
    if how == "same":
        return state
    g = torch.Generator().manual_seed(seed)
    if how == "blend":
        torch.manual_seed(seed)
        fresh = Prior(PriorConfig.load(config)).state_dict()
    out = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v
            continue
        w = v.float()
        if how == "blend":
            w = (1 - amount) * w + amount * fresh[k].float()
        else:
            w = w + amount * w.std(unbiased=False).nan_to_num(0.0) * torch.randn(w.shape, generator=g)
        out[k] = w.to(v.dtype)
    return out


def build(out: Path, steps: list[int], bad: int, blend: float, jitter: float, seed: int) -> list[Path]:
    src = checkpoint_dir("bundled")
    base = json.loads((src / "index.json").read_text())
    dirs = []
    for i, step in enumerate(steps):
        d = out / f"step-{step}"
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(src, d)
        how, amount = ("blend", blend) if step == bad else ("same", 0.0) if i == 0 else ("jitter", jitter)
        state = load_state(d / "prior/model.safetensors")
        state = _prior_weights(state, how, amount, seed if how == "blend" else seed + step, d / "prior/config.json")
        save_safetensors(state, d / "prior/model.safetensors")
        idx = {**base, "id": f"{base.get('id', 'bundled')}+track-demo-step{step}", "step": step,
               "track_demo": {"from": base.get("id"), "prior": how, "amount": amount, "seed": seed}}
        (d / "index.json").write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n")
        dirs.append(d)
        print(f"{d}: prior {how} {amount:g}")
    return dirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", default="1000,2000,3000,4000")
    ap.add_argument("--bad", type=int, default=3000, help="the step whose prior is degraded")
    ap.add_argument("--blend", type=float, default=0.6, help="fraction toward a re-initialised prior")
    ap.add_argument("--jitter", type=float, default=0.002, help="noise on other steps, in each tensor's std")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    if len(steps) < 2 or a.bad not in steps:
        ap.error("--steps needs at least 2 steps and must include --bad")
    build(a.out, steps, a.bad, a.blend, a.jitter, a.seed)


if __name__ == "__main__":
    main()
