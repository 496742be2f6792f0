"""Rendering speed of PictoWorld: scene sampling + rendering to a uint8 array, one core
(target: >= 1,000 images/s at 32x32). Also prints 64 and 128 and PNG encoding.
Rates are per CPU-second of the one thread doing the work (time.thread_time), so a busy shared
machine does not distort them.

    python bench/world_render_speed.py [--n 5000]
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np

from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng


def rate(n: int, size: int, spec, png: bool = False) -> float:
    """Images per CPU-second of this thread (wall time is meaningless on a shared machine)."""
    t0 = time.thread_time()
    for i in range(n):
        img = render(sample_scene(scene_rng(0, i), spec), size)
        if png:
            img.save(io.BytesIO(), format="PNG", compress_level=6)
        else:
            np.asarray(img)
    return n / (time.thread_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    spec = BiasSpec.load()
    rate(200, 32, spec)  # warm-up
    r32 = rate(args.n, 32, spec)
    print(f"sample+render 32x32 : {r32:9.0f} images/s (target >= 1000: {'PASS' if r32 >= 1000 else 'FAIL'})")
    print(f"sample+render 64x64 : {rate(args.n // 2, 64, spec):9.0f} images/s")
    print(f"sample+render 128   : {rate(args.n // 4, 128, spec):9.0f} images/s")
    print(f"... + PNG encode 32 : {rate(args.n // 2, 32, spec, png=True):9.0f} images/s")


if __name__ == "__main__":
    main()
