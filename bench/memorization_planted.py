"""Memorization audit on planted near-copies among 2,000 other images.

A training set of PictoWorld renders, 2,000 other renders standing in for generated images (a
disjoint seed), and planted copies of training images (exact, mild Gaussian noise, small centre
crop). The memorization audit must find the planted copies with recall >= 95% while flagging
<= 1% of the others. Scenes are two-to-four-object compositions (pair and multi kinds): single
shapes, counted groups and person pictograms have so few distinct looks that independent draws
reproduce each other pixel for pixel, which would be real duplicates, not false positives.

    python bench/memorization_planted.py [--n-train 2000] [--n-other 2000] [--n-planted 90]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from t2i_audit.audits.memorization.memorization_audit import (
    MemorizationConfig,
    audit_memorization,
    make_copies,
)
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng

KINDS = {"pair": 0.5, "multi": 0.5}


def renders(n: int, seed: int, size: int):
    spec = BiasSpec.load()
    return [render(sample_scene(scene_rng(seed, i), spec, kind_weights=KINDS), size) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-other", type=int, default=2000)
    ap.add_argument("--n-planted", type=int, default=90)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    train = renders(a.n_train, 101, a.size)
    other = renders(a.n_other, 202, a.size)
    rng = np.random.default_rng(a.seed + 7)
    src = rng.choice(a.n_train, a.n_planted, replace=False)
    planted, kinds = make_copies([train[i] for i in src], rng, sigma=0.03, crop_max=0.06)
    gen = other + planted
    ids = [f"other-{i}" for i in range(a.n_other)] + [f"planted-{k}-{i}" for i, k in enumerate(kinds)]
    pairs, summ = audit_memorization(gen, train, MemorizationConfig(seed=a.seed), generated_ids=ids,
                                     train_ids=[f"train-{i}" for i in range(a.n_train)])
    flag = dict(zip(pairs.image_id, pairs.near_copy))
    match = dict(zip(pairs.image_id, pairs.pixel_train_id))
    print(f"train {a.n_train}, other generated {a.n_other}, planted {a.n_planted} "
          f"(noise sigma 0.03, crop <= 6%), size {a.size}px, wall {time.time() - t0:.1f}s")
    t = summ["threshold"]
    print(f"threshold (pixel cosine) {t['value']:.4f}: calibration recall {t['recall']:.3f}, "
          f"FPR {t['fpr']:.4f} (n_pos {t['n_pos']}, n_neg {t['n_neg']})")
    print(f"{'set':<16}{'n':>6}{'flagged':>9}{'rate':>8}{'right source':>14}")
    for k in ("exact", "noise", "crop"):
        sel = [i for i, kk in enumerate(kinds) if kk == k]
        f = sum(flag[f"planted-{k}-{i}"] for i in sel)
        right = sum(match[f"planted-{k}-{i}"] == f"train-{src[i]}" for i in sel)
        print(f"{'planted ' + k:<16}{len(sel):>6}{f:>9}{f / len(sel):>8.3f}{right / len(sel):>14.3f}")
    rec = np.mean([flag[i] for i in ids[a.n_other:]])
    fp = np.mean([flag[i] for i in ids[:a.n_other]])
    print(f"{'planted (all)':<16}{a.n_planted:>6}{int(rec * a.n_planted):>9}{rec:>8.3f}")
    print(f"{'other':<16}{a.n_other:>6}{int(round(fp * a.n_other)):>9}{fp:>8.4f}")
    print(f"recall {rec:.3f} (target >= 0.95): {'PASS' if rec >= 0.95 else 'FAIL'}; "
          f"false positives {fp:.4f} (target <= 0.01): {'PASS' if fp <= 0.01 else 'FAIL'}")
    print(f"near-copy rate of the whole generated set: {summ['rate']:.4f} "
          f"[{summ['rate_ci_low']:.4f}, {summ['rate_ci_high']:.4f}] (n={summ['n_generated']})")


if __name__ == "__main__":
    main()
