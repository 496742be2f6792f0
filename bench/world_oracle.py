"""Oracle accuracy on PictoWorld renders, clean and corrupted, with 95% intervals and n.

Renders N scenes (default spec, 32x32, fixed seed) in memory, reads each with the oracle clean and
under Gaussian noise sigma=0.05, Gaussian blur radius 0.7 and JPEG quality 75, and prints per
attribute (clothing colour included): accuracy on non-abstained items with a 95% Wilson interval,
abstention rate and n,
plus the oracle's images/s on this machine. For skin and presentation it also prints the abstention
rate by true class: abstentions that fall on one class bias every share a bias audit reads.

    python bench/world_oracle.py [--n 5000] [--seed 2024] [--conditions clean,blur:1.2]

``--conditions`` replaces the default set (comma-separated, one corruption each, in the form
``corrupt.parse`` reads), e.g. heavier blur to see whether abstentions fall on one skin tone.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from tqdm import tqdm

from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.corrupt import corrupt, parse
from t2i_audit.world.dataset import iter_scenes, scene_row
from t2i_audit.world.oracle import read_image
from t2i_audit.world.oracle_check import format_table, score, tabulate, truth_from_row
from t2i_audit.world.render import render

CONDITIONS = ("clean", "noise:0.05", "blur:0.7", "jpeg:75")
BARS = {"clean": (0.995, 0.005), "corrupted": (0.97, None)}


def abstention_by_class(outcomes: list[dict], truths: list[dict]) -> str:
    parts = []
    for attr in ("skin", "presentation"):
        by: dict[str, list[int]] = {}
        for o, t in zip(outcomes, truths):
            if t["kind"] == "person":
                k = by.setdefault(t[attr], [0, 0])
                k[0] += o[attr][0] is None
                k[1] += 1
        parts.append(f"{attr} " + " ".join(f"{c} {a / n:.2%} (n {n})" for c, (a, n) in sorted(by.items())))
        worst = max(by.items(), key=lambda kv: kv[1][0] / kv[1][1])
        parts[-1] += f"; most on {worst[0]}" if worst[1][0] else ""
    return "abstention by true class: " + " | ".join(parts)


def row_failures(rows: list[dict], cond: str) -> list[str]:
    """The attributes of one condition that miss its bars. NaN < x is False, so an attribute whose every
    reading abstained (NaN accuracy) or whose abstention is NaN fails explicitly."""
    min_acc, max_abst = BARS["clean" if cond == "clean" else "corrupted"]
    out = []
    for r in rows:
        acc, abst = r["accuracy"], r["abstain_rate"]
        if not (np.isfinite(acc) and acc >= min_acc) or not np.isfinite(abst) \
                or (max_abst is not None and abst > max_abst):
            out.append(f"{cond}/{r['attribute']}" + ("" if np.isfinite(acc) else " (no answered reading)"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--conditions", default=",".join(CONDITIONS),
                    help="comma-separated: clean, noise:S, blur:R, jpeg:Q (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    spec = BiasSpec.load()
    scenes = list(iter_scenes(args.n, args.seed, spec))
    truths = [truth_from_row(scene_row(s, index=i, seed=args.seed, size=args.size, spec_hash=spec.hash))
              for i, s in scenes]
    images = [render(s, args.size) for _, s in scenes]
    print(f"{args.n} scenes, default spec {spec.hash}, {args.size}x{args.size}, seed {args.seed}")
    failures = []
    for cond in [c.strip() for c in args.conditions.split(",") if c.strip()]:
        cs = None if cond == "clean" else parse(cond)
        outcomes, t_read = [], 0.0
        for i, (img, truth) in enumerate(tqdm(list(zip(images, truths)), desc=cond, unit="img",
                                              disable=args.no_progress)):
            x = img if cs is None else corrupt(img, cs, seed=args.seed + i)
            t0 = time.thread_time()  # CPU time of this thread: the machine is shared
            r = read_image(x)
            t_read += time.thread_time() - t0
            outcomes.append(score(r, truth))
        rows = tabulate(outcomes)
        print()
        print(format_table(rows, f"{cond}  (oracle {args.n / t_read:.0f} img/s per CPU-second, one thread)"))
        print(abstention_by_class(outcomes, truths))
        failures += row_failures(rows, cond)
    print()
    print("bars: clean >= 99.5% accurate and <= 0.5% abstention; corrupted >= 97% accurate on "
          "non-abstained (abstention reported)")
    print("PASS" if not failures else "FAIL: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
