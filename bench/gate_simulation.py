"""Gate false alarms and power for the bias gate, by simulation on PictoWorld renders (no generator).

    python bench/gate_simulation.py [--repeats 100] [--images-per-prompt N] [--pool 200] [--seed 0]

Each simulated run audits the neutral prompts of pictoworld-bias: per profession, (neutral paraphrases)
× (images per prompt) images whose presentation is drawn from the default bias spec, each image's
presentation read back from pixels by the PictoWorld oracle (``world.oracle.read_image``; abstentions
are dropped). To keep 100 repeats cheap, images are resampled from pools of oracle-read renders per
(profession, true presentation), so the oracle's own errors and abstentions are part of the
simulation. A run's share of women per profession gets a 95% Wilson interval (PictoWorld images are
independent given the prompt, so no design effect), and is written as the bias table a run would
hold; then the real gate (``t2i_audit.reports.gate.evaluate``) judges it against a baseline run with

    bias.presentation.share[*:woman] same as baseline      (5 professions, Bonferroni: 99% intervals)
    bias.presentation.share[<P>:woman] same as baseline    (one profession, 95% interval)

Scenarios: both runs from the spec (false alarm: the gate must pass ≥ 95%), and the candidate's share
of women for one profession moved by ±10 pp (power: the gate must fail ≥ 80%).
"""

from __future__ import annotations

import argparse
import random
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from t2i_audit.reports.gate import evaluate
from t2i_audit.reports.gate_rules import parse_rule
from t2i_audit.reports.results import RunResults
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.oracle import read_image
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_background, sample_person
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS


def suite_defaults() -> tuple[int, int, str]:
    """(images per prompt, neutral paraphrases per profession, source) of the pictoworld-bias suite."""
    try:
        text = resources.files("t2i_audit.evals").joinpath("suites/pictoworld-bias.yaml").read_text()
        suite = yaml.safe_load(text)
        neutral = [t for t in suite["templates"] if t.get("category") == "neutral"]
        ipp = int(neutral[0].get("images_per_prompt", suite["images_per_prompt"]))
        return ipp, len(neutral), "pictoworld-bias.yaml"
    except (FileNotFoundError, KeyError, IndexError, ModuleNotFoundError):
        return 8, 3, "assumed (suite not found): 3 neutral paraphrases × 8 images per prompt"


def oracle_pools(spec: BiasSpec, pool: int, seed: int) -> dict[tuple[str, str], np.ndarray]:
    """Per (profession, true presentation): the oracle's readings ('man'/'woman'/'unknown') of `pool` renders."""
    rng = random.Random(seed)
    pools = {}
    for prof in PROFESSIONS:
        for pres in PRESENTATIONS:
            reads = []
            while len(reads) < pool:
                s = sample_person(rng, sample_background(rng), spec, profession=prof, mode="presentation")
                if s.person.presentation != pres:
                    continue
                reads.append(read_image(render(s, 32)).presentation or "unknown")
            pools[(prof, pres)] = np.array(reads)
    return pools


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def simulate_run(rng: np.random.Generator, pools, p_woman: dict[str, float], n_per: int, n_prompts: int,
                 name: str) -> RunResults:
    rows = []
    for prof in PROFESSIONS:
        truth = np.where(rng.random(n_per) < p_woman[prof], "woman", "man")
        reads = np.empty(n_per, dtype=object)
        for pres in PRESENTATIONS:
            idx = np.flatnonzero(truth == pres)
            pool = pools[(prof, pres)]
            reads[idx] = pool[rng.integers(0, len(pool), size=len(idx))]
        answered = reads[reads != "unknown"]
        n = len(answered)
        for cls in PRESENTATIONS:
            k = int(np.sum(answered == cls))
            lo, hi = wilson(k, n)
            share = k / n if n else float("nan")
            rows.append({"attribute": "presentation", "group": prof, "cls": cls, "raw": share, "raw_ci_low": lo,
                         "raw_ci_high": hi, "corrected": share, "corr_ci_low": lo, "corr_ci_high": hi,
                         "reference": float("nan"), "n_images": n, "n_prompts": n_prompts,
                         "abstain_rate": 1 - n / n_per, "probe": "pictoworld-oracle"})
    return RunResults(root=Path(name), run={"schema": "t2i-audit/run/1", "run_id": name,
                                             "suite": {"hash": "sim"}}, bias=pd.DataFrame(rows))


def fail_rate(rng, pools, base_p, cand_p, n_per, n_prompts, rule_text, repeats) -> float:
    rule = parse_rule(rule_text)
    fails = 0
    for r in range(repeats):
        base = simulate_run(rng, pools, base_p, n_per, n_prompts, f"base{r}")
        cand = simulate_run(rng, pools, cand_p, n_per, n_prompts, f"cand{r}")
        fails += not evaluate(cand, [rule], base, confidence=0.95).passed
    return fails / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--images-per-prompt", type=int, default=None, help="default: the suite's")
    ap.add_argument("--extra-ipp", default="64,96", help="also report power at these images per prompt")
    ap.add_argument("--pool", type=int, default=200, help="oracle-read renders per (profession, presentation)")
    ap.add_argument("--shift", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ipp, n_prompts, source = suite_defaults()
    ipp = args.images_per_prompt or ipp
    spec = BiasSpec.load()
    t0 = time.perf_counter()
    pools = oracle_pools(spec, args.pool, args.seed)
    reads = np.concatenate([v for v in pools.values()])
    wrong = sum(int(np.sum((v != pres) & (v != "unknown"))) for (_, pres), v in pools.items())
    print(f"oracle pools: {len(reads)} renders in {time.perf_counter() - t0:.0f} s; presentation abstained "
          f"{np.mean(reads == 'unknown'):.2%}, wrong {wrong / len(reads):.2%}")
    print(f"suite: {source}; {n_prompts} neutral prompts per profession × {ipp} images per prompt "
          f"= {n_prompts * ipp} images per profession per run; {args.repeats} repeats per row\n")
    base_p = {p: spec.marginal(p, "presentation")["woman"] for p in PROFESSIONS}
    rng = np.random.default_rng(args.seed)
    all_rule = "bias.presentation.share[*:woman] same as baseline"
    header = f"{'scenario':<44} {'rule':<34} {'ipp':>4} {'n/prof':>6} {'gate fails':>10} {'target':>10}"
    print(header)
    print("-" * len(header))
    ipps = [ipp] + [int(x) for x in args.extra_ipp.split(",") if x.strip() and int(x) != ipp]
    for k in ipps:
        n_per = n_prompts * k
        tag = "" if k == ipp else " (more images)"
        fa = fail_rate(rng, pools, base_p, base_p, n_per, n_prompts, all_rule, args.repeats)
        print(f"{'same distribution' + tag:<44} {'share[*:woman], 5 groups':<34} {k:>4} {n_per:>6} {fa:>10.0%} "
              f"{'≤ 5%':>10}")
        for prof, sign in (("firefighter", +1), ("firefighter", -1), ("chef", +1)):
            cand = dict(base_p)
            cand[prof] = base_p[prof] + sign * args.shift
            label = f"{prof} women {base_p[prof]:.2f} → {cand[prof]:.2f}{tag}"
            for rule_text, rname in ((all_rule, "share[*:woman], 5 groups"),
                                     (f"bias.presentation.share[{prof}:woman] same as baseline",
                                      f"share[{prof}:woman] only")):
                pw = fail_rate(rng, pools, base_p, cand, n_per, n_prompts, rule_text, args.repeats)
                print(f"{label:<44} {rname:<34} {k:>4} {n_per:>6} {pw:>10.0%} {'≥ 80%':>10}")
        fa1 = fail_rate(rng, pools, base_p, base_p, n_per, n_prompts,
                        "bias.presentation.share[firefighter:woman] same as baseline", args.repeats)
        print(f"{'same distribution' + tag:<44} {'share[firefighter:woman] only':<34} {k:>4} {n_per:>6} "
              f"{fa1:>10.0%} {'≤ 5%':>10}")
    z = stats.norm.ppf
    for p0, label in ((base_p["firefighter"], "firefighter"), (base_p["chef"], "chef")):
        var = p0 * (1 - p0) + (p0 + args.shift) * (1 - p0 - args.shift)
        need5 = (z(1 - 0.05 / 10) + z(0.8)) ** 2 * var / args.shift ** 2
        need1 = (z(0.975) + z(0.8)) ** 2 * var / args.shift ** 2
        print(f"\nnormal approximation, {label} +{args.shift:.0%}: 80% power needs ≈ {need5:.0f} images per "
              f"profession per run with the 5-group rule, ≈ {need1:.0f} with a one-profession rule")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
