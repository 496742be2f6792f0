"""Shared pieces of the speed benchmarks: checkpoint resolution, threads, timing, tables.

Import this module before numpy/torch: it sizes the BLAS/OpenMP pools from ``--threads``.
Timings are taken as both wall time and process CPU time. On a shared machine the CPU time of the
process (all its threads) is the steadier measure of work done, so ratios are computed from it
when ``--clock cpu`` (the default on CPU); on CUDA, wall time (with synchronisation) is used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _early_threads() -> str:
    """BLAS/OpenMP thread pools read their size when numpy/torch load, so ``--threads`` is applied
    to them here, before those imports (import this module first). Unlimited BLAS threads on a
    busy machine spin and can make a 0.1 s eigendecomposition take seconds."""
    argv = sys.argv[1:]
    n = "1"
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)
    return n


_early_threads()


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--checkpoint", default=None,
                    help="generator checkpoint dir (default: the bundled one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu.py passes cuda)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default=None,
                    help="time base of the ratios (default: cpu on CPU, wall on CUDA)")


def resolve_checkpoint(arg: str | None) -> str:
    from t2i_audit.errors import InputError
    from t2i_audit.generator.models.pictoworld_clip import bundled_dir

    if arg and arg != "bundled":
        if not (Path(arg) / "index.json").is_file():
            raise InputError(f"--checkpoint {arg}: no index.json there; pass a directory written by `t2i-audit train`")
        return str(Path(arg).resolve())
    if (bundled_dir() / "index.json").is_file():
        return str(bundled_dir())
    raise InputError("no checkpoint: the bundled one is not installed; pass --checkpoint DIR "
                     "(e.g. from `t2i-audit train --preset tiny --out DIR`)")


def setup(args) -> None:

    from t2i_audit.core.threads import set_threads

    set_threads(max(1, int(args.threads)))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.clock is None:
        args.clock = "wall" if str(args.device).startswith("cuda") else "cpu"


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0

    def get(self, clock: str) -> float:
        return self.cpu if clock == "cpu" else self.wall


@contextmanager
def timed(device: str = "cpu"):
    """``with timed() as t: ...`` fills ``t.wall`` and ``t.cpu`` (process CPU seconds)."""
    import torch

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    t = Timing()
    sync()
    w0, c0 = time.perf_counter(), time.process_time()
    yield t
    sync()
    t.wall, t.cpu = time.perf_counter() - w0, time.process_time() - c0


def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else _fmt(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in cells]
    lines.insert(1, "  ".join("-" * x for x in w))
    return ((title + "\n") if title else "") + "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def machine_line(args) -> str:
    import platform

    import torch

    dev = torch.cuda.get_device_name(0) if str(args.device).startswith("cuda") else platform.processor() or "cpu"
    return (f"machine: {dev}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
            f"threads {args.threads}, clock {args.clock}")


def oracle_accuracy(images, expects) -> tuple[float, float, float]:
    """PictoWorld oracle pass rate of ``images`` against their expectations, with a 95% Wilson interval."""
    from t2i_audit.evals.metrics.skills import judge_images
    from t2i_audit.stats.resampling import wilson_interval

    ok = sum(p for p, _ in judge_images(images, expects))
    lo, hi = wilson_interval(ok, len(images))
    return ok / len(images), lo, hi


def load_pipeline(args):
    """The generator pipeline of ``--checkpoint`` on ``--device`` (benches share this step)."""
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

    pipe = Pipeline.load(resolve_checkpoint(args.checkpoint))
    if args.device != "cpu":
        pipe.to(args.device)
    return pipe
