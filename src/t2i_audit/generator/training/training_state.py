"""Shared training machinery: resumable state (safetensors + JSON), EMA, CSV loss logs, data stream.

Every stage draws its data from the PictoWorld stream by scene index (step * batch + i) and its
noise from a generator seeded by the step, so a run resumed from a checkpoint continues exactly
where it stopped: no progress is lost and nothing is drawn twice.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from t2i_audit.core.io import atomic_write_text
from t2i_audit.generator.models.safetensors_io import load_state, save_safetensors
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.captions import caption
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up, as in common EMA schedules
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def world_batch(seed: int, start: int, n: int, spec: BiasSpec, size: int = 32,
                kind_weights: dict | None = None, person_modes: dict | None = None):
    """Scenes ``start..start+n-1`` of stream ``seed``: uint8 images (N,3,S,S), captions, scenes."""
    scenes = [sample_scene(scene_rng(seed, i), spec, kind_weights, person_modes=person_modes)
              for i in range(start, start + n)]
    imgs = np.stack([np.asarray(render(s, size)) for s in scenes])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), [caption(s) for s in scenes], scenes


def stage_meta_path(directory: str | Path, name: str) -> Path:
    """The JSON that records how far stage ``name`` in ``directory`` has trained (absent: not begun)."""
    return Path(directory) / f"train_state_{name}.json"


class Stage:
    """Checkpointing, logging and resume for one training stage in ``directory``."""

    def __init__(self, directory: str | Path, name: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.state_path = self.dir / f"train_state_{name}.safetensors"
        self.meta_path = stage_meta_path(self.dir, name)
        self.log_path = self.dir / f"loss_{name}.csv"
        self.t0 = time.time()

    def resume(self, model, ema: EMA | None, opt) -> int:
        """Load the last saved state if there is one; return the next step to run."""
        if not self.meta_path.is_file():
            return 0
        meta = json.loads(self.meta_path.read_text())
        self.t0 = time.time() - float(meta.get("elapsed_s", 0.0))  # wall time accumulates across resumes
        state = load_state(self.state_path)
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        if ema is not None:
            ema.model.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("ema.")})
        osd = opt.state_dict()
        osd["param_groups"] = meta["param_groups"]
        osd["state"] = {}
        for k, v in state.items():
            if k.startswith("opt."):
                _, idx, name = k.split(".", 2)
                osd["state"].setdefault(int(idx), {})[name] = v
        opt.load_state_dict(osd)
        return int(meta["step"])

    def save(self, model, ema: EMA | None, opt, step: int, extra: dict | None = None) -> None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        if ema is not None:
            tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
        osd = opt.state_dict()
        for idx, st in osd["state"].items():
            for name, v in st.items():
                tensors[f"opt.{idx}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
        save_safetensors(tensors, self.state_path)
        meta = {"step": step, "param_groups": osd["param_groups"], "stage": self.name,
                "elapsed_s": round(time.time() - self.t0, 1), **(extra or {})}
        atomic_write_text(self.meta_path, json.dumps(meta, indent=2), fsync=False)

    def log(self, step: int, **values: float) -> None:
        new = not self.log_path.exists()
        with self.log_path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "elapsed_s", *values])
            w.writerow([step, round(time.time() - self.t0, 2), *(f"{v:.6g}" for v in values.values())])


def run_stage(name: str, out, model: torch.nn.Module, step_fn, *, steps: int, lr: float,
              weight_decay: float = 0.0, warmup: int = 100, ema_decay: float = 0.999,
              save_every: int = 200, on_save=None, progress: bool = True, betas=(0.9, 0.999),
              params=None, init_weights: str | Path | dict | None = None, config=None) -> EMA:
    """Train ``model`` for ``steps`` with AdamW, linear warm-up then linear decay, gradient
    clipping, EMA, a CSV loss log and resumable checkpoints every ``save_every`` steps.

    ``step_fn(step) -> (loss, {name: value})`` computes the loss of one step from data that
    depends on ``step`` only. ``on_save(ema_model, step)`` exports the EMA weights.
    ``init_weights`` (a safetensors file) starts a fresh stage from those weights, model and EMA
    alike (fine-tuning); a stage that already has saved state resumes from that instead.
    ``config`` (a stage config, stage_configs.py) is written into the train state with the hash of
    the preset it came from; a resumed stage runs at its base learning rate ``lr``.
    """
    stage = Stage(out, name)
    if init_weights is not None and not stage.meta_path.is_file():
        from t2i_audit.generator.models.safetensors_io import load_safetensors_into

        load_safetensors_into(model, init_weights)
    params = list(params if params is not None else model.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    ema = EMA(model, ema_decay)
    start = stage.resume(model, ema, opt)
    for group in opt.param_groups:  # a resumed stage's base rate is this run's (the same for one preset)
        group["initial_lr"] = group["lr"] = lr
    record = None if config is None else {"preset_hash": config.preset_hash, "stage_config": config.to_dict()}
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / max(steps, 1)))
    for _ in range(start):
        sched.step()
    model.train()
    from tqdm import tqdm

    bar = tqdm(range(start, steps), initial=start, total=steps, desc=name, disable=not progress)
    for step in bar:
        loss, logs = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update(model, step)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % 10 == 0:
            stage.log(step, loss=loss.item(), **logs)
        if (step + 1) % save_every == 0 or step + 1 == steps:
            stage.save(model, ema, opt, step + 1, record)
            if on_save is not None:
                on_save(ema.model, step + 1)
    if start >= steps and on_save is not None:
        on_save(ema.model, steps)
    return ema
