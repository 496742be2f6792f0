"""Diversity audit against planted collapses: PictoWorld renders whose clothing colour is restricted
to k of the 4 training colours (k = 4, 3, 2, 1), and whose background is narrowed to k of the 3
training thirds (k = 3, 2, 1). Each repeat draws ``--images`` images per group (``--prompts``
prompts, images of a prompt share nothing but their cluster id) from pools rendered, read by the
oracle and embedded by the CLIP once; the attribute audit (engine estimate + flag rule) and the
feature metrics (precision/recall, density/coverage against reference renders of the full world,
Vendi) are computed on each draw.

Prints, per attribute and k: mean of each statistic, the share of repeats where Spearman's rho
between k and the statistic is +-1 (strictly monotone over the k levels), the flag rate (power
where modes are dropped, false-flag rate for the full world).

    python bench/diversity_planted.py [--repeats 100] [--images 400] [--clip bundled-clip]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
from scipy.stats import spearmanr

from t2i_audit.audits.diversity.diversity_audit import (
    DiversityAuditConfig,
    probe_findings,
    training_distribution,
)
from t2i_audit.audits.engine.bias_tables import group_tables
from t2i_audit.audits.engine.share_estimates import estimate_groups
from t2i_audit.audits.probes.attribute_probes import BACKGROUND_BINS, OracleProbe
from t2i_audit.stats.diversity_features import diversity_features
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng
from t2i_audit.world.vocab import BACKGROUND_RANGE, CLOTHING

FEATURES = ("precision", "recall", "density", "coverage", "vendi")
ATTR_STATS = ("missing_modes", "entropy_ratio", "tv_to_training")
FEATURE_REPS = 20  # the feature metrics' intervals are not used here: keeps repeats cheap


def scenes(seed: int, n: int, clothing=None, background_bin=None):
    spec, out, i = BiasSpec.load(), [], 0
    lo, hi = BACKGROUND_RANGE
    while len(out) < n:
        sc = sample_scene(scene_rng(seed, i), spec, kind="person", profession="chef", mode="neutral")
        i += 1
        if background_bin is not None and min(2, (sc.background - lo) * 3 // (hi - lo + 1)) != background_bin:
            continue
        if clothing is not None:
            sc = replace(sc, person=replace(sc.person, clothing=clothing))
        out.append(sc)
    return out


def pool(attr: str, cls_index: int, n: int, ext):
    """Renders with one class of ``attr`` fixed: oracle readings and CLIP features."""
    kw = {"clothing": CLOTHING[cls_index]} if attr == "clothing" else {"background_bin": cls_index}
    imgs = [render(s) for s in scenes(100 + 10 * cls_index + (attr == "background"), n, **kw)]
    return OracleProbe(attr).predict(imgs).labels, ext.embed_images(imgs).float().numpy().astype(np.float64)


class Probe:
    def __init__(self, attr, classes):
        self.name, self.attribute, self.classes = f"oracle-{attr}", attr, tuple(classes)


def one_draw(rng, pools, k: int, a):
    """Images per group from the first k classes' pools, classes drawn uniformly per image."""
    cls = rng.integers(0, k, a.images)
    idx = [rng.integers(0, len(pools[c][0])) for c in cls]
    labels = np.array([pools[c][0][j] for c, j in zip(cls, idx)])
    feats = np.stack([pools[c][1][j] for c, j in zip(cls, idx)])
    return labels, feats


def audit_draw(probe, labels, feats, ref, prompts, cfg, rng):
    masks = {("open", "chef"): np.ones(len(labels), dtype=bool)}
    ests, samples = estimate_groups(labels, prompts, masks, probe.classes, None, cfg, rng)
    r = training_distribution(probe.attribute, probe.classes)
    _, stats = group_tables(probe, ests, samples, None, {(probe.attribute, "*"): dict(zip(probe.classes, r))},
                            None, cfg)
    import pandas as pd

    f = pd.DataFrame(probe_findings(probe, ests, pd.DataFrame(stats), r, cfg)).set_index("statistic")
    out = {s: float(f.loc[s, "value"]) for s in ATTR_STATS}
    out["flagged"] = bool(f["flagged"].iloc[0])
    fe = diversity_features(ref[rng.choice(len(ref), len(feats), replace=False)], feats, prompts,
                            reps=FEATURE_REPS, seed=int(rng.integers(1 << 30)))
    out.update({s: fe[s].value for s in FEATURES})
    return out


def run_attribute(attr, classes, ext, ref, a, cfg):
    pools = [pool(attr, c, a.pool, ext) for c in range(len(classes))]
    probe = Probe(attr, classes)
    prompts = np.repeat(np.arange(a.prompts), a.images // a.prompts + 1)[:a.images]
    rng = np.random.default_rng(a.seed)
    levels = list(range(len(classes), 0, -1))
    res = {k: [] for k in levels}
    for _ in range(a.repeats):
        for k in levels:
            labels, feats = one_draw(rng, pools, k, a)
            res[k].append(audit_draw(probe, labels, feats, ref, prompts, cfg, rng))
    return levels, res


def summarise(attr, levels, res, repeats) -> dict:
    out = {"attribute": attr, "levels": levels, "mean": {}, "monotone": {}, "flag_rate": {}}
    for s in ATTR_STATS + FEATURES:
        out["mean"][s] = {k: float(np.mean([r[s] for r in res[k]])) for k in levels}
        rho = [spearmanr(levels, [res[k][i][s] for k in levels])[0] for i in range(repeats)]
        out["monotone"][s] = float(np.mean(np.abs(np.nan_to_num(rho)) >= 1 - 1e-9))
    out["flag_rate"] = {k: float(np.mean([r["flagged"] for r in res[k]])) for k in levels}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--images", type=int, default=400, help="images per group")
    ap.add_argument("--prompts", type=int, default=50, help="prompts per group")
    ap.add_argument("--pool", type=int, default=500, help="renders per class pool")
    ap.add_argument("--clip", default="bundled-clip")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    from t2i_audit.core.threads import set_threads
    from t2i_audit.evals.features.extractors import load_extractor

    set_threads(1)

    t0 = time.time()
    ext = load_extractor(a.clip)
    ref_imgs = [render(s) for s in scenes(7, 2 * a.images)]
    ref = ext.embed_images(ref_imgs).float().numpy().astype(np.float64)
    cfg = DiversityAuditConfig(bootstrap=a.bootstrap, seed=a.seed)
    results = []
    for attr, classes in (("clothing", CLOTHING), ("background", BACKGROUND_BINS)):
        levels, res = run_attribute(attr, classes, ext, ref, a, cfg)
        results.append(summarise(attr, levels, res, a.repeats))
    print(f"diversity_planted: {a.repeats} repeats, {a.images} images per group in {a.prompts} prompts, "
          f"pools of {a.pool} renders per class, evaluator {ext.id}, {time.time() - t0:.0f} s")
    for r in results:
        print(f"\n{r['attribute']} restricted to k of {max(r['levels'])} classes (k = {r['levels']})")
        print(f"  {'statistic':<16}" + "".join(f"{'k=' + str(k):>10}" for k in r["levels"]) + f"{'|rho|=1':>10}")
        for s in ATTR_STATS + FEATURES:
            print(f"  {s:<16}" + "".join(f"{r['mean'][s][k]:>10.3f}" for k in r["levels"])
                  + f"{r['monotone'][s]:>10.2f}")
        print(f"  {'flagged':<16}" + "".join(f"{r['flag_rate'][k]:>10.2f}" for k in r["levels"]))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
