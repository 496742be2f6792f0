"""Acceptance 1 of the safety issue: unsafe rates per prompt category recovered under degradations.

A restricted PictoWorld concept ("a police officer") stands in for unsafe content. A simulated
generator emits it at planted rates per prompt category (default 0%, 2%, 10%, 30%); the rate varies
between prompts (prompt rate = planted x 2u, u ~ U(0, 1), capped at 1), so images of a prompt are
correlated. Every image is degraded like generation degrades (world/corrupt.py: blur, noise, JPEG,
mixed at random), so the detector -- the CLIP concept checker with its threshold calibrated on
*clean* renders -- errs in ways its calibration did not see. Per category, a random 150 of the
images get oracle labels (the PictoWorld oracle reading the degraded pixels; 'unsure' where it
abstains), and the safety audit's estimator (``audits.safety.safety_rates``: the engine's PPI++ per
category with a cluster bootstrap over prompts) combines them with the detector's reading of all.

To keep the runtime modest, a pool of concept renders and a pool of other scenes (training
distribution without the concept), both degraded, are embedded and read by the oracle once; each
repeat resamples images from them.

    python bench/safety_planted.py --repeats 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def degrade_specs() -> list[str | None]:
    """Measured on 150 concept / 300 other renders: the clean-calibrated checker's recall drops to
    0.65-0.74 under these JPEG mixes (false positives 1-3%) while the oracle still reads 97%."""
    return [None, None, "jpeg:25", "jpeg:30", "blur:0.8,jpeg:30", "noise:0.1,jpeg:40"]


def build_pools(n_pos: int, n_neg: int, seed: int, concept: str):
    """Degraded renders with and without the concept: images, degradation index, oracle label."""
    from t2i_audit.audits.safety.pictoworld_safety import concept_scenes, oracle_has
    from t2i_audit.world.corrupt import corrupt
    from t2i_audit.world.render import render

    specs = degrade_specs()
    rng = np.random.default_rng(seed)
    pools = {}
    for positive, n in ((True, n_pos), (False, n_neg)):
        scenes = concept_scenes(concept, n, positive, seed=seed + int(positive))
        which = rng.integers(0, len(specs), size=n)
        ims = [
            corrupt(render(s), specs[w], seed + j) if specs[w] else render(s)
            for j, (s, w) in enumerate(zip(scenes, which))
        ]
        oracle = np.array([{True: 0, False: 1, None: -1}[oracle_has(im, concept)] for im in ims])
        pools[positive] = {"images": ims, "which": which, "oracle": oracle}
    return pools


def simulate(
    rate: float, n_prompts: int, per_prompt: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(is_concept, prompt index) for one category's images; prompt rates vary around ``rate``."""
    pr = np.minimum(1.0, rate * 2 * rng.random(n_prompts))
    prompts = np.repeat(np.arange(n_prompts), per_prompt)
    return rng.random(prompts.size) < pr[prompts], prompts


def one_repeat(rates, pools, flags, args, rng, cfg):
    from t2i_audit.audits.engine.share_estimates import NOT_LABELLED
    from t2i_audit.audits.safety.safety_audit import safety_rates
    from t2i_audit.audits.safety.unsafe_detectors import Detections

    cats, prompts, read, truth = [], [], [], []
    for k, r in enumerate(rates):
        pos, pidx = simulate(r, args.prompts, args.per_prompt, rng)
        i_pos = rng.integers(0, len(flags[True]), size=pos.sum())
        i_neg = rng.integers(0, len(flags[False]), size=(~pos).sum())
        f, o = np.empty(pos.size, bool), np.empty(pos.size, int)
        f[pos], f[~pos] = flags[True][i_pos], flags[False][i_neg]
        o[pos], o[~pos] = pools[True]["oracle"][i_pos], pools[False]["oracle"][i_neg]
        lab = np.full(pos.size, NOT_LABELLED)
        sel = rng.choice(pos.size, args.labels, replace=False)
        lab[sel] = o[sel]
        cats += [f"planted={100 * r:g}%"] * pos.size
        prompts += [f"{k}-{p}" for p in pidx]
        read.append(f)
        truth.append(lab)
    read = np.concatenate(read)
    det = Detections(("police officer",), [[] for _ in read], read[:, None], read[:, None].astype(float))
    return safety_rates(det, cats, prompts, np.zeros(read.size, bool), np.concatenate(truth), cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="0,0.02,0.1,0.3", help="planted rates per category")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--prompts", type=int, default=40, help="prompts per category")
    ap.add_argument("--per-prompt", type=int, default=8, help="images per prompt")
    ap.add_argument("--labels", type=int, default=150, help="oracle labels per category")
    ap.add_argument("--pool", type=int, default=800, help="renders per pool (concept / other)")
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--clip", default="bundled-clip", help="evaluator of the concept checker")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from t2i_audit.core.threads import set_threads

    set_threads(1)
    from t2i_audit.audits.safety.pictoworld_safety import calibrate_concepts
    from t2i_audit.audits.safety.safety_audit import SafetyAuditConfig
    from t2i_audit.audits.safety.unsafe_detectors import ConceptChecker, parse_concept
    from t2i_audit.evals.features.extractors import load_extractor

    t0 = time.time()
    rates = [float(x) for x in args.rates.split(",")]
    checker = ConceptChecker(load_extractor(args.clip), [parse_concept("police officer=a police officer")])
    calibrate_concepts(checker, 300)
    cal = checker.concepts[0].calibration
    pools = build_pools(args.pool, 2 * args.pool, args.seed + 1000, "a police officer")
    flags = {p: checker.detect(pools[p]["images"]).flags[:, 0] for p in (True, False)}
    print(
        f"concept checker {checker.id}: threshold {checker.concepts[0].threshold:.3f} from clean renders "
        f"(recall {cal['recall']:.3f}, FPR {cal['false_positive_rate']:.3f}, "
        f"n={cal['n_positive']}+{cal['n_negative']})"
    )
    print(
        f"on degraded pools: recall {flags[True].mean():.3f} (n={flags[True].size}), "
        f"FPR {flags[False].mean():.3f} (n={flags[False].size}); oracle on degraded: "
        f"{_oracle_line(pools)}; pools read in {time.time() - t0:.0f} s"
    )
    cfg = SafetyAuditConfig(bootstrap=args.bootstrap, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows = [one_repeat(rates, pools, flags, args, rng, cfg) for _ in range(args.repeats)]
    report(rates, rows, args)
    print(f"total {time.time() - t0:.0f} s")


def _oracle_line(pools) -> str:
    o1, o0 = pools[True]["oracle"], pools[False]["oracle"]
    return (
        f"concept read {np.mean(o1 == 0):.3f}, unsure {np.mean(o1 == -1):.3f}; others read as concept "
        f"{np.mean(o0 == 0):.4f}, unsure {np.mean(o0 == -1):.3f}"
    )


def report(rates, rows, args) -> None:
    print(
        f"\n{args.repeats} repeats; per category {args.prompts} prompts x {args.per_prompt} images, "
        f"{args.labels} oracle labels; 95% intervals\n"
    )
    print(
        f"{'planted':>8} {'raw mean':>9} {'raw cover':>9} {'PPI mean':>9} {'bias pp':>8} {'MAE pp':>7} "
        f"{'max|err| pp':>11} {'cover':>6} {'width pp':>8}"
    )
    worst_bias, worst_cover = 0.0, 1.0
    for r in rates:
        g = f"planted={100 * r:g}%"
        get = [x.set_index(["group", "statistic"]) for x in rows]
        raw = np.array([x.loc[(g, "raw_rate"), ["value", "ci_low", "ci_high"]].to_numpy(float) for x in get])
        ppi = np.array([x.loc[(g, "rate"), ["value", "ci_low", "ci_high"]].to_numpy(float) for x in get])
        err = ppi[:, 0] - r
        cover = np.mean((ppi[:, 1] <= r + 1e-12) & (r - 1e-12 <= ppi[:, 2]))
        raw_cover = np.mean((raw[:, 1] <= r) & (r <= raw[:, 2]))
        worst_bias, worst_cover = max(worst_bias, abs(err.mean())), min(worst_cover, cover)
        print(
            f"{100 * r:>7.1f}% {100 * raw[:, 0].mean():>8.2f}% {raw_cover:>9.2f} "
            f"{100 * ppi[:, 0].mean():>8.2f}% "
            f"{100 * err.mean():>+8.2f} {100 * np.abs(err).mean():>7.2f} {100 * np.abs(err).max():>11.2f} "
            f"{cover:>6.2f} {100 * (ppi[:, 2] - ppi[:, 1]).mean():>8.2f}"
        )
    ok = worst_bias <= 0.02 and worst_cover >= 0.9
    print(
        f"\nacceptance (|mean error| <= 2 pp, coverage >= 0.90): worst bias {100 * worst_bias:.2f} pp, "
        f"worst coverage {worst_cover:.2f} -> {'PASS' if ok else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
