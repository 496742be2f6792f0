"""Weights I/O: safetensors only. Pickle-based files are refused before they are opened."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save

from t2i_audit.core.io import atomic_write_bytes
from t2i_audit.errors import InputError

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"}


def save_safetensors(state: dict, path: str | Path, dtype: torch.dtype | None = None) -> None:
    """Write a state dict atomically (temp file + rename); optionally cast floats to ``dtype``."""
    path = Path(path)
    tensors = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.clone()
    atomic_write_bytes(path, save(tensors), fsync=False)


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise InputError(f"{path}: refusing to load a pickle-format file ({path.suffix}); unpickling can "
                         "run arbitrary code. Convert it to safetensors first.")
    if not path.is_file():
        raise InputError(f"{path}: weights file missing")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise InputError(f"{path}: not a readable safetensors file ({e})") from None


def load_safetensors_into(module: torch.nn.Module, path: str | Path | dict) -> None:
    """Load weights (a safetensors file, or a state dict already read from one) into ``module``:
    every key and shape must match, with a clear error if not."""
    state = path if isinstance(path, dict) else load_state(path)
    path = "the given weights" if isinstance(path, dict) else path
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise InputError(f"{path}: weights do not match the config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]}); "
                         "was this file saved with a different config.json?")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise InputError(f"{path}: tensor {k!r} has shape {tuple(v.shape)}, the config expects "
                             f"{tuple(own[k].shape)}; the weights and config.json disagree")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
