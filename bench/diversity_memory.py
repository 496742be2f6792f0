"""Peak memory and wall time of the feature-space diversity metrics (precision, recall, density,
coverage, Vendi overall and per prompt) with their cluster-bootstrap intervals, on random features.

Reference R ~ N(0, I); generated F = prompt centre ~ N(0, 0.25 I) + N(0, I), prompts of equal size.
Peak memory is reported twice: tracemalloc (Python and numpy allocations; numpy reports its buffers
to it) and ru_maxrss (the process's resident peak, including the interpreter and libraries). Beside
it, the projected memory of the naive route (prdc / vendi-score): the N×N, M×M and N×M distance
matrices and the M×M Vendi kernel held at once. Target: peak RSS < 2 GB at 20,000 × 128.

    python bench/diversity_memory.py [--n-real 20000] [--n-fake 20000] [--dim 128] [--clusters 200]
                                     [--block 1024] [--reps 1000] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import numpy as np  # noqa: E402

from t2i_audit.stats.diversity_features import diversity_features  # noqa: E402

GB = 1024 ** 3


def _features(n_real: int, n_fake: int, dim: int, clusters: int, seed: int):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    ids = np.arange(n_fake) % clusters
    centres = 0.5 * rng.standard_normal((clusters, dim))
    fake = centres[ids] + rng.standard_normal((n_fake, dim))
    return real, fake, ids


def naive_bytes(n: int, m: int, itemsize: int = 8) -> int:
    """Distance matrices N×N, M×M, N×M (prdc.compute_prdc) plus the M×M kernel of vendi.score_X."""
    return (n * n + m * m + n * m + m * m) * itemsize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-real", type=int, default=20_000)
    ap.add_argument("--n-fake", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (read before numpy loads)")
    ap.add_argument("--target-gb", type=float, default=2.0)
    args = ap.parse_args()

    real, fake, ids = _features(args.n_real, args.n_fake, args.dim, args.clusters, args.seed)
    inputs = real.nbytes + fake.nbytes
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = diversity_features(real, fake, ids, block=args.block, reps=args.reps, seed=args.seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_traced = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

    print(f"features: real {args.n_real}×{args.dim}, fake {args.n_fake}×{args.dim} in {args.clusters} prompts "
          f"(float64, inputs {inputs / GB:.2f} GB); block {args.block} rows; B = {args.reps}, seed {args.seed}; "
          f"{args.threads} BLAS thread(s)")
    print(f"{'metric':<17}{'value':>9}  {'95% interval':<20}{'k':>3}  n_real  n_fake  prompts")
    for e in res.values():
        k = "-" if e.k is None else str(e.k)
        print(f"{e.metric:<17}{e.value:>9.4f}  [{e.lo:.4f}, {e.hi:.4f}]  {k:>3}  {e.n_real:>6}  {e.n_fake:>6}  "
              f"{e.n_clusters:>7}")
    naive64, naive32 = naive_bytes(args.n_real, args.n_fake, 8), naive_bytes(args.n_real, args.n_fake, 4)
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (all metrics and intervals)")
    print(f"peak memory, tracemalloc (beyond inputs): {peak_traced / GB:.3f} GB; "
          f"peak RSS (ru_maxrss, whole process): {rss / GB:.3f} GB")
    print(f"naive route (N×N, M×M, N×M distances + M×M Vendi kernel at once): {naive64 / GB:.1f} GB float64, "
          f"{naive32 / GB:.1f} GB float32")
    verdict = "PASS" if rss < args.target_gb * GB else "FAIL"
    print(f"target: peak RSS < {args.target_gb:g} GB: {verdict}")


if __name__ == "__main__":
    main()
