"""Peak memory of FD and KID over 10k and 100k feature vectors, each size in a fresh subprocess
(target: peak RSS at 100k <= 1.2x that at 10k, KID on a fixed number of subsets).

Features stream from a seeded source (row i is drawn from its own generator, so any row can be
re-read without holding the set): FD accumulates float64 running sums chunk by chunk; KID draws
its fixed subsets and reads only those rows, one subset at a time. For contrast, the "in memory"
rows hold every feature vector as one array first, the way torchmetrics keeps its feature lists.

    python bench/fd_memory.py [--dim 256] [--subsets 50] [--subset-size 1000] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


class SeededRows:
    """n rows of dimension d; row i ~ N(shift, 1) from np.random.default_rng([seed, i])."""

    def __init__(self, n: int, d: int, seed: int, shift: float = 0.0):
        self.shape = (n, d)
        self.seed, self.shift = seed, shift

    def rows(self, idx) -> np.ndarray:
        d = self.shape[1]
        return np.stack([np.random.default_rng([self.seed, int(i)]).standard_normal(d) + self.shift
                         for i in idx]) if len(idx) else np.zeros((0, d))

    def chunks(self, size: int = 4096):
        for s in range(0, self.shape[0], size):
            yield self.rows(range(s, min(s + size, self.shape[0])))


def child(n: int, d: int, subsets: int, m: int, mode: str) -> dict:
    import t2i_audit.evals.metrics.distribution as md
    gen, ref = SeededRows(n, d, 1, 0.1), SeededRows(n, d, 2)
    t = time.perf_counter()
    if mode == "stream":
        gm, rm = md.GaussianMoments(d), md.GaussianMoments(d)
        for c in gen.chunks():
            gm.update(c)
        for c in ref.chunks():
            rm.update(c)
        fd = md.frechet_distance(gm, rm)
        k = md.kid(gen, ref, subsets=subsets, subset_size=m, seed=0)
    else:
        g = np.concatenate(list(gen.chunks())).astype(np.float32)
        r = np.concatenate(list(ref.chunks())).astype(np.float32)
        fd = md.frechet_distance(g, r)
        k = md.kid(g, r, subsets=subsets, subset_size=m, seed=0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"n": n, "mode": mode, "fd": fd, "kid": k.mean, "peak_mb": peak_kb / 1024.0,
            "seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--subsets", type=int, default=50)
    ap.add_argument("--subset-size", type=int, default=1000)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--modes", default="stream,memory")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads in the children")
    ap.add_argument("--checkpoint", default=None, help="unused (features are synthetic); accepted for symmetry")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n, mode = args.child.split(":")
        print(json.dumps(child(int(n), args.dim, args.subsets, args.subset_size, mode)))
        return
    import os

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OPENBLAS_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    sizes = [int(s) for s in args.sizes.split(",")]
    res = {}
    for mode in args.modes.split(","):
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--child", f"{n}:{mode}", "--dim", str(args.dim),
                                  "--subsets", str(args.subsets), "--subset-size", str(args.subset_size)],
                                 capture_output=True, text=True, env=env, check=True)
            res[(mode, n)] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {mode} n={n}: {res[(mode, n)]['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import table

    lo, hi = sizes[0], sizes[-1]
    rows = []
    for mode in args.modes.split(","):
        for n in sizes:
            r = res[(mode, n)]
            rows.append([f"{mode} n={n}", r["peak_mb"], r["peak_mb"] / res[(mode, lo)]["peak_mb"], r["fd"], r["kid"],
                         r["seconds"]])
    print(f"features: dim {args.dim}, generated ~ N(0.1, 1) vs reference ~ N(0, 1); KID {args.subsets} subsets "
          f"of {args.subset_size}; each row a fresh subprocess (peak RSS = ru_maxrss)")
    print(table(["FD + KID", "peak RSS MB", f"x of n={lo}", "FD", "KID", "seconds"], rows))
    if ("stream", hi) in res:
        ratio = res[("stream", hi)]["peak_mb"] / res[("stream", lo)]["peak_mb"]
        print(f"acceptance: streaming peak RSS at n={hi} is {ratio:.2f}x that at n={lo} "
              f"(target <= 1.2: {'PASS' if ratio <= 1.2 else 'FAIL'})")


if __name__ == "__main__":
    main()
