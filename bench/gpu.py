"""GPU figures in one short run (< 10 minutes): the sampling and scoring benchmarks on CUDA.

Runs, each in its own process with a time budget: bench/sampling_speed.py (default sampler vs
DDPM-1000, DDIM-50, DPM-Solver++-20 and the plain loop, bf16/fp16 autocast), bench/clip_throughput.py
(CLIP images/s vs measured matmul throughput, fp32 and autocast) and bench/score_vs_torchmetrics.py.
Without a CUDA device it prints a message and exits 0: nothing else in the project needs a GPU.

    python bench/gpu.py [--checkpoint DIR] [--n 128] [--budget 540]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=4, help="CPU threads (data loading, schedulers)")
    ap.add_argument("--n", type=int, default=128, help="prompt/seed pairs in the sampling benchmark")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for all benchmarks together")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device visible; nothing to measure (the CPU benchmarks are the other "
              "bench/ scripts)")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    common = ["--device", "cuda", "--threads", str(args.threads)]
    if args.checkpoint:
        common += ["--checkpoint", args.checkpoint]
    jobs = [("sampling", [str(HERE / "sampling_speed.py"), "--n", str(args.n), *common], 0.5),
            ("CLIP throughput", [str(HERE / "clip_throughput.py"), "--seconds", "2", *common], 0.15),
            ("score vs torchmetrics", [str(HERE / "score_vs_torchmetrics.py"), "--n", "512", "--ref-n", "2000",
                                       *common], 0.35)]
    t0 = time.perf_counter()
    status = 0
    for name, cmd, share in jobs:
        left = args.budget - (time.perf_counter() - t0)
        limit = max(30.0, min(left, args.budget * share + max(0.0, left - args.budget * share) / 2))
        print(f"\n== {name} (budget {limit:.0f} s) ==", flush=True)
        try:
            p = subprocess.run([sys.executable, *cmd], timeout=limit)
            status |= p.returncode != 0
        except subprocess.TimeoutExpired:
            print(f"{name}: over its {limit:.0f} s budget; rerun it alone with a smaller --n", flush=True)
            status = 1
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
