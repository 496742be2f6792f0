"""The typo delta recovers a planted skill drop that happens only on misspelt object words.

Item-level simulation of a ``python:`` generator on the default ``pictoworld-audit`` suite with
``--perturb typo:RATE`` (the real perturbation, a new ``--perturb-seed`` per repeat, so which
prompts are misspelt varies like the prompts themselves). Each source prompt gets its own skill p (prompt-level variation: logit-normal around the
base, sd 0.5); each (prompt, seed) draws one uniform u shared by the source image and its perturbed
twin (the same seed), so the source image passes when u < p and the perturbed one when
u < p - drop if the perturbation misspelt an object word (a shape or a profession), else u < p.
The truth is the expected paired difference over the changed prompts' images,
-E[min(p, drop)] x E[share of changed images whose object word is misspelt], by Monte Carlo
(100 typo seeds apart from the repeats').
Each repeat runs :func:`t2i_audit.reports.robustness.compute_deltas` (the paired cluster bootstrap over
source prompts) on the skills metric of the skills categories.

Pass: |mean estimate - truth| <= 2 pp and 95% interval coverage of the truth in [0.90, 0.98],
over >= 200 repeats.

    python bench/robustness_planted.py --repeats 200
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import pandas as pd

OBJECT_WORDS = {"circle", "circles", "square", "squares", "triangle", "triangles", "firefighter", "chef",
                "police", "officer", "construction", "worker", "doctor"}


def design(rate: float, s, seed: int):
    """(plan: list of (source id, seed, category), table of the perturbation, {source id: object word
    misspelt}, changed source ids) for one typo seed."""
    from t2i_audit.evals.suites.perturb_suite import perturb_suite

    d = perturb_suite(s, [f"typo:{rate:g}"], seed=seed)
    table = pd.DataFrame(d.records)
    hit = {}
    for r in d.records:
        words = [c.split("→")[0].strip(" ,").lower() for c in json.loads(r["changes"])]
        hit[r["source_prompt_id"]] = r["changed"] and any(w in OBJECT_WORDS for w in words)
    changed = set(table[table["changed"]]["source_prompt_id"])
    plan = [(p.prompt_id, seed, p.category) for p, seed in s.plan() if "objects" in (p.expect or {})
            or p.category == "people"]
    return plan, table, hit, changed


def hit_share(plan, hit, changed) -> float:
    rows = [pid for pid, _, _ in plan if pid in changed]
    return sum(hit[x] for x in rows) / len(rows)


def truth(rate: float, s, base: float, sd: float, drop: float, n_seeds: int = 100) -> tuple[float, float]:
    """(expected paired difference, expected share of changed images with a misspelt object word):
    over prompt-level variation (Monte Carlo) and over typo seeds 10000.. (not the repeats' seeds)."""
    z = np.random.default_rng(12345).standard_normal(2_000_000)
    p = 1 / (1 + np.exp(-(math.log(base / (1 - base)) + sd * z)))
    loss = float(np.minimum(p, drop).mean())
    shares = []
    for i in range(n_seeds):
        plan, _, hit, changed = design(rate, s, 10_000 + i)
        shares.append(hit_share(plan, hit, changed))
    share = float(np.mean(shares))
    return -loss * share, share


def one(plan, table, hit, args, rng):
    from t2i_audit.reports.robustness import compute_deltas

    logit = math.log(args.base / (1 - args.base))
    pids = sorted({pid for pid, _, _ in plan})
    p_of = dict(zip(pids, 1 / (1 + np.exp(-(logit + args.sd * rng.standard_normal(len(pids)))))))
    src = np.array([pid for pid, _, _ in plan])
    p = np.array([p_of[x] for x in src])
    u = rng.random(len(plan))
    lowered = p - args.drop * np.array([hit[x] for x in src])
    base = {"seed": [s for _, s, _ in plan], "category": [c for _, _, c in plan], "metric": "skills"}
    a = pd.DataFrame({"prompt_id": src, **base, "value": (u < p).astype(float)})
    link = table.set_index("source_prompt_id")["prompt_id"]
    b = pd.DataFrame({"prompt_id": link.loc[src].to_numpy(), **base, "value": (u < lowered).astype(float)})
    d = compute_deltas(a, b, table, n_boot=args.reps, seed=int(rng.integers(1 << 30)))
    return d[(d.metric == "skills") & (d.group == "all")].iloc[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.05, help="typo rate per letter")
    ap.add_argument("--drop", type=float, default=0.3, help="skill drop when an object word is misspelt")
    ap.add_argument("--base", type=float, default=0.85)
    ap.add_argument("--sd", type=float, default=0.5, help="prompt-level sd on the logit scale")
    ap.add_argument("--suite", default="pictoworld-audit")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.repeats < 200:
        print(f"FAIL: --repeats {args.repeats} < 200")
        return 1
    t0 = time.perf_counter()
    from t2i_audit.evals.suites.loader import load_suite

    s = load_suite(args.suite)
    t, share = truth(args.rate, s, args.base, args.sd, args.drop)
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.repeats):  # a new typo realisation and new prompt-level skills per repeat
        plan, table, hit, changed = design(args.rate, s, args.seed + i)
        rows.append(one(plan, table, hit, args, rng))
    est = np.array([r.delta for r in rows])
    cover = np.mean([r.ci_low <= t <= r.ci_high for r in rows])
    width = np.mean([r.ci_high - r.ci_low for r in rows])
    r0 = rows[0]
    print(f"suite {args.suite}, typo:{args.rate:g}, a new typo seed per repeat: ~{r0.n_prompts} changed source "
          f"prompts, ~{r0.n} image pairs; an object word misspelt in {100 * share:.1f}% of the changed images "
          f"(expected); planted drop {args.drop} on those; skill {args.base} with prompt sd {args.sd} (logit)")
    print(f"truth {100 * t:+.2f} pp; mean estimate {100 * est.mean():+.2f} pp (sd {100 * est.std():.2f}); "
          f"bias {100 * (est.mean() - t):+.2f} pp; 95% CI coverage {cover:.3f}; mean width {100 * width:.2f} pp "
          f"({args.repeats} repeats, B={args.reps})")
    ok = (all(math.isfinite(v) for v in (t, est.mean(), cover)) and abs(est.mean() - t) <= 0.02
          and 0.90 <= cover <= 0.98)
    print(f"bias within 2 pp and coverage in [0.90, 0.98] -> {'PASS' if ok else 'FAIL'} ({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
