"""Memorization audit on planted near-copies whose corruptions the threshold never saw.

The near-copy threshold is calibrated inside ``audit_memorization`` on copies of training images
made by ``make_copies``: exact, Gaussian noise (sigma 0.03) and small centre crops (1 px .. 6%),
against leave-one-out nearest neighbours of other training images. Testing on those same kinds
of copy would measure the calibration set, not the detector. Here the planted copies use
corruptions absent from the calibration:

- ``jpeg``    JPEG recompression at quality 50-80;
- ``jitter``  colour jitter: brightness x U(0.85, 1.15), contrast x U(0.85, 1.15), per-channel gain
              x U(0.93, 1.07);
- ``shift``   translation by 1-2 px in x and y (edge pixels replicated), no rescaling;
- ``combo``   all three, in that order (JPEG last, as a re-upload would).

The planted sources are training images outside the audit's calibration sample (re-derived from
its seed), so no planted copy shares a source with a calibration copy. A training set of PictoWorld
renders, other renders standing in for generated images (a disjoint seed): two-to-four-object
compositions (pair and multi kinds; single shapes and person pictograms repeat pixel for pixel
across independent draws, which would be real duplicates).

Figures: detection rate per corruption and over all planted copies with a 95% Wilson interval
(each copy has its own source image: independent), whether the matched training image is the
source, and the false-copy rate among the other images (Wilson). PASS: detection >= 0.90 overall
and >= 0.80 for every corruption, false-copy rate <= 0.01 (the audit's target FPR). Exits 1 on
FAIL or NaN.

    python bench/memorization_planted.py [--n-train 1000] [--n-other 1000] [--n-planted 160]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from PIL import Image

from t2i_audit.audits.memorization.memorization_audit import MemorizationConfig, audit_memorization
from t2i_audit.stats.resampling import wilson_interval
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.corrupt import jpeg
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng

KINDS = {"pair": 0.5, "multi": 0.5}
UNSEEN = ("jpeg", "jitter", "shift", "combo")
BARS = {"overall": 0.90, "per_kind": 0.80, "false_copy": 0.01}


def renders(n: int, seed: int, size: int):
    spec = BiasSpec.load()
    return [render(sample_scene(scene_rng(seed, i), spec, kind_weights=KINDS), size) for i in range(n)]


def jitter(im: Image.Image, rng) -> Image.Image:
    a = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    a = a * rng.uniform(0.85, 1.15)  # brightness
    m = a.mean()
    a = m + (a - m) * rng.uniform(0.85, 1.15)  # contrast
    a = a * rng.uniform(0.93, 1.07, size=3)  # per-channel gain
    return Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))


def shift(im: Image.Image, rng) -> Image.Image:
    a = np.asarray(im.convert("RGB"))
    dy, dx = (int(rng.integers(1, 3)) * int(rng.choice([-1, 1])) for _ in range(2))
    h, w = a.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return Image.fromarray(a[ys][:, xs])


def unseen_copy(im: Image.Image, kind: str, rng) -> Image.Image:
    q = int(rng.integers(50, 81))
    if kind == "jpeg":
        return jpeg(im, q)
    if kind == "jitter":
        return jitter(im, rng)
    if kind == "shift":
        return shift(im, rng)
    return jpeg(shift(jitter(im, rng), rng), q)


def calibration_sources(n_train: int, cfg: MemorizationConfig) -> set[int]:
    """The training images whose copies ``audit_memorization`` calibrates on (its first draw)."""
    rng = np.random.default_rng(cfg.seed)
    return set(rng.choice(n_train, min(cfg.n_calibration, n_train), replace=False).tolist())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-other", type=int, default=1000)
    ap.add_argument("--n-planted", type=int, default=160, help="split evenly over the unseen corruptions")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    cfg = MemorizationConfig(seed=a.seed)
    train = renders(a.n_train, 101, a.size)
    other = renders(a.n_other, 202, a.size)
    rng = np.random.default_rng(a.seed + 7)
    free = np.array(sorted(set(range(a.n_train)) - calibration_sources(a.n_train, cfg)))
    src = rng.choice(free, a.n_planted, replace=False)
    kinds = [UNSEEN[i % len(UNSEEN)] for i in range(a.n_planted)]
    planted = [unseen_copy(train[s], k, rng) for s, k in zip(src, kinds)]
    ids = [f"other-{i}" for i in range(a.n_other)] + [f"planted-{k}-{i}" for i, k in enumerate(kinds)]
    pairs, summ = audit_memorization(other + planted, train, cfg, generated_ids=ids,
                                     train_ids=[f"train-{i}" for i in range(a.n_train)])
    flag = dict(zip(pairs.image_id, pairs.near_copy))
    match = dict(zip(pairs.image_id, pairs.pixel_train_id))
    print(f"train {a.n_train}, other generated {a.n_other}, planted {a.n_planted} copies with corruptions "
          f"the calibration never saw ({', '.join(UNSEEN)}; calibration: exact, noise sigma "
          f"{cfg.noise_sigma}, centre crop <= 6%), size {a.size}px; planted sources outside the "
          f"{cfg.n_calibration} calibration sources")
    t = summ["threshold"]
    print(f"threshold (pixel cosine) {t['value']:.4f}: calibration recall {t['recall']:.3f}, "
          f"FPR {t['fpr']:.4f} (n_pos {t['n_pos']}, n_neg {t['n_neg']})")
    print(f"{'set':<16}{'n':>6}{'flagged':>9}{'rate':>8}{'95% Wilson':>18}{'right source':>14}")
    ok = True
    for k in UNSEEN:
        sel = [i for i, kk in enumerate(kinds) if kk == k]
        f = sum(bool(flag[f"planted-{k}-{i}"]) for i in sel)
        right = sum(match[f"planted-{k}-{i}"] == f"train-{src[i]}" for i in sel)
        lo, hi = wilson_interval(f, len(sel), nan_if_empty=True)
        rate = f / len(sel) if sel else math.nan
        ok &= rate >= BARS["per_kind"]
        print(f"{'planted ' + k:<16}{len(sel):>6}{f:>9}{rate:>8.3f}{f'[{lo:.3f}, {hi:.3f}]':>18}"
              f"{right / max(len(sel), 1):>14.3f}")
    k_all = sum(bool(flag[i]) for i in ids[a.n_other:])
    k_fp = sum(bool(flag[i]) for i in ids[:a.n_other])
    rec, fp = k_all / a.n_planted, k_fp / a.n_other
    (rlo, rhi), (flo, fhi) = wilson_interval(k_all, a.n_planted), wilson_interval(k_fp, a.n_other)
    print(f"{'planted (all)':<16}{a.n_planted:>6}{k_all:>9}{rec:>8.3f}{f'[{rlo:.3f}, {rhi:.3f}]':>18}")
    print(f"{'other (false)':<16}{a.n_other:>6}{k_fp:>9}{fp:>8.4f}{f'[{flo:.4f}, {fhi:.4f}]':>18}")
    finite = all(math.isfinite(x) for x in (rec, fp, rlo, rhi, flo, fhi, t["value"]))
    ok &= finite and rec >= BARS["overall"] and fp <= BARS["false_copy"]
    print(f"detection {rec:.3f} [{rlo:.3f}, {rhi:.3f}] (bar >= {BARS['overall']:.2f} overall, >= "
          f"{BARS['per_kind']:.2f} per corruption); false-copy rate {fp:.4f} [{flo:.4f}, {fhi:.4f}] "
          f"(bar <= {BARS['false_copy']}){'' if finite else '; NaN in the figures'}: {'PASS' if ok else 'FAIL'}")
    print(f"wall {time.time() - t0:.1f}s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
