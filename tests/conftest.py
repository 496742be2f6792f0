"""Shared test settings: one torch thread and flushed denormals keep tests fast and deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
except ImportError:  # pragma: no cover
    pass
