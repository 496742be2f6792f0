"""Validity of the CLIP-based metrics on real PictoWorld renders (no generator involved).

1. Caption ranking: for N renders, does CLIP score the true caption above a caption with exactly
   one attribute swapped (colour, shape, position, relation, count, profession, presentation,
   skin)? Target: >= 95% overall. Printed per attribute with Wilson 95% intervals.
2. Monotonicity: FD, KID and CMMD of a corrupted render set against a clean reference set (other
   scenes of the same distribution) at 5 increasing levels of Gaussian noise, Gaussian blur and
   attribute shift (share of scenes whose shape colours are all recoloured red and whose
   clothing is recoloured purple). Prints each series and whether it rises strictly.

    python bench/clip_validity.py --clip bundled-clip:CLIP_DIR [--n 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

import numpy as np

from t2i_audit.core.threads import set_threads
from t2i_audit.evals.features.extractors import load_extractor
from t2i_audit.evals.metrics.clip import cosine
from t2i_audit.evals.metrics.distribution import cmmd, frechet_distance, kid
from t2i_audit.stats.resampling import wilson_interval
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.captions import bare_caption
from t2i_audit.world.corrupt import gaussian_blur, gaussian_noise
from t2i_audit.world.dataset import iter_scenes
from t2i_audit.world.render import render
from t2i_audit.world.scene import RELATIONS
from t2i_audit.world.vocab import COLORS, POSITIONS, PRESENTATIONS, PROFESSIONS, SHAPES, SKINS

NOISE = (0.02, 0.05, 0.1, 0.15, 0.2)
BLUR = (0.3, 0.6, 1.0, 1.5, 2.0)
SHIFT = (0.1, 0.25, 0.5, 0.75, 1.0)


def _other(rng: random.Random, values, current):
    return rng.choice([v for v in values if v != current])


def full_caption_scene(scene):
    """Person scenes state presentation and skin, so every attribute can be swapped."""
    if scene.kind == "person":
        return dataclasses.replace(scene, said=("presentation", "skin"))
    return scene


def swap_one(scene, rng: random.Random):
    """(attribute, scene with one attribute changed) such that its caption changes."""
    if scene.kind == "person":
        p = scene.person
        attr = rng.choice(("profession", "presentation", "skin"))
        vals = {"profession": PROFESSIONS, "presentation": PRESENTATIONS, "skin": SKINS}[attr]
        return attr, dataclasses.replace(scene, person=dataclasses.replace(p, **{attr: _other(rng, vals, getattr(p, attr))}))
    shapes = list(scene.shapes)
    options = ["color", "shape"]
    if scene.kind == "single" and scene.said_position:
        options.append("position")
    if scene.kind == "pair":
        options.append("relation")
    if scene.kind == "count":
        options = ["count", "color", "shape"]
    attr = rng.choice(options)
    if attr == "relation":
        return attr, dataclasses.replace(scene, relation=_other(rng, tuple(RELATIONS), scene.relation))
    if attr == "count":
        n = len(shapes)
        new_n = _other(rng, range(1, 5), n)
        shapes = (shapes * 4)[:new_n]
        return attr, dataclasses.replace(scene, shapes=tuple(shapes))
    i = rng.randrange(len(shapes)) if scene.kind in ("pair", "multi") else 0
    vals = {"color": COLORS, "shape": SHAPES, "position": POSITIONS}[attr]
    if scene.kind == "count":  # all objects share colour and shape
        new = _other(rng, vals, getattr(shapes[0], attr))
        shapes = [dataclasses.replace(s, **{attr: new}) for s in shapes]
    else:
        taken = {(s.shape, s.color) for j, s in enumerate(shapes) if j != i}
        for _ in range(20):
            cand = dataclasses.replace(shapes[i], **{attr: _other(rng, vals, getattr(shapes[i], attr))})
            if (cand.shape, cand.color) not in taken:
                break
        shapes[i] = cand
    return attr, dataclasses.replace(scene, shapes=tuple(shapes))


def caption_ranking(ex, n: int, seed: int) -> None:
    spec = BiasSpec.load()
    rng = random.Random(seed)
    scenes = [full_caption_scene(s) for _, s in iter_scenes(n, seed + 1000, spec)]
    attrs, true_caps, swapped = [], [], []
    for s in scenes:
        for _ in range(10):
            a, t = swap_one(s, rng)
            if bare_caption(t) != bare_caption(s):
                break
        attrs.append(a)
        true_caps.append(bare_caption(s))
        swapped.append(bare_caption(t))
    img = ex.embed_images([render(s) for s in scenes]).numpy()
    wins = cosine(img, ex.embed_texts(true_caps).numpy()) > cosine(img, ex.embed_texts(swapped).numpy())
    print(f"\n1. caption ranking: true caption above a one-attribute-swapped caption ({n} renders, seed {seed})")
    print(f"{'attribute':<14}{'n':>6}{'share':>9}   95% CI (Wilson)")
    attrs = np.array(attrs)
    for a in sorted(set(attrs.tolist())) + ["overall"]:
        m = np.ones(n, bool) if a == "overall" else attrs == a
        k, m_n = int(wins[m].sum()), int(m.sum())
        lo, hi = wilson_interval(k, m_n)
        print(f"{a:<14}{m_n:>6}{k / m_n:>9.3f}   [{lo:.3f}, {hi:.3f}]")
    share = float(wins.mean())
    print(f"overall {share:.3f} -> target >= 0.95: {'PASS' if share >= 0.95 else 'FAIL'}")
    for i in np.flatnonzero(~wins)[:5]:
        print(f"   miss: {true_caps[i]!r} vs {swapped[i]!r}")


def shifted(scene, p: float, rng: random.Random):
    if rng.random() >= p:
        return scene
    if scene.person is not None:
        return dataclasses.replace(scene, person=dataclasses.replace(scene.person, clothing="purple"))
    return dataclasses.replace(scene, shapes=tuple(dataclasses.replace(s, color="red") for s in scene.shapes))


def monotonicity(ex, n_ref: int, n_gen: int, seed: int, kid_subsets: int, kid_size: int,
                 levels: dict[str, tuple[float, ...]]) -> None:
    spec = BiasSpec.load()
    ref_scenes = [s for _, s in iter_scenes(n_ref, seed, spec)]
    gen_scenes = [s for _, s in iter_scenes(n_gen, seed + 1, spec)]
    ref = ex.embed_images([render(s) for s in ref_scenes]).numpy()
    clean = [render(s) for s in gen_scenes]

    def metrics(images):
        g = ex.embed_images(images).numpy()
        return (frechet_distance(g, ref), kid(g, ref, subsets=kid_subsets, subset_size=kid_size, seed=seed).mean,
                cmmd(g, ref))

    base = metrics(clean)
    series = {
        "noise σ": (levels["noise"], lambda lv: [gaussian_noise(im, lv, seed=seed + i) for i, im in enumerate(clean)]),
        "blur radius": (levels["blur"], lambda lv: [gaussian_blur(im, lv) for im in clean]),
        "colour shift": (levels["shift"], lambda lv: [render(shifted(s, lv, random.Random(seed * 7919 + i)))
                                            for i, s in enumerate(gen_scenes)]),
    }
    print(f"\n2. FD / KID / CMMD vs a clean reference ({n_ref} renders, seed {seed}); corrupted sets of {n_gen} other "
          f"renders (seed {seed + 1}); KID {kid_subsets} subsets of {kid_size}")
    print(f"   level 0 (clean): FD {base[0]:.4g}  KID {base[1]:.4g}  CMMD {base[2]:.4g}")
    for name, (lvls, make) in series.items():
        if not lvls:
            continue
        vals = np.array([metrics(make(lv)) for lv in lvls])
        print(f"   {name}: levels {lvls}", flush=True)
        for j, m in enumerate(("FD", "KID", "CMMD")):
            v = vals[:, j]
            strict = bool(np.all(np.diff(v) > 0))
            above = bool(v[0] > base[j])
            print(f"     {m:<5}" + " ".join(f"{x:>10.4g}" for x in v)
                  + f"   rises strictly: {'YES' if strict else 'NO'}; level 1 above clean: {'YES' if above else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="bundled-clip", help="feature spec of the CLIP to validate")
    ap.add_argument("--n", type=int, default=1000, help="renders for the caption ranking")
    ap.add_argument("--n-ref", type=int, default=1000)
    ap.add_argument("--n-gen", type=int, default=1000)
    ap.add_argument("--kid-subsets", type=int, default=50)
    ap.add_argument("--kid-subset-size", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--noise", default=",".join(map(str, NOISE)), help="noise sigmas ('' skips the series)")
    ap.add_argument("--blur", default=",".join(map(str, BLUR)), help="blur radii in pixels ('' skips)")
    ap.add_argument("--shift", default=",".join(map(str, SHIFT)), help="shares of recoloured scenes ('' skips)")
    ap.add_argument("--skip-ranking", action="store_true")
    ap.add_argument("--skip-monotonicity", action="store_true")
    a = ap.parse_args()
    set_threads(a.threads)
    t = time.perf_counter()
    ex = load_extractor(a.clip)
    print(f"evaluator: {ex.id}\n{ex.methodology}")
    if not a.skip_ranking:
        caption_ranking(ex, a.n, a.seed)
    if not a.skip_monotonicity:
        levels = {k: tuple(float(x) for x in getattr(a, k).split(",") if x.strip()) for k in ("noise", "blur", "shift")}
        monotonicity(ex, a.n_ref, a.n_gen, a.seed, a.kid_subsets, a.kid_subset_size, levels)
    print(f"\nwall time {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
