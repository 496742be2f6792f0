"""Counterfactual fairness finds a planted adherence gap between identities, and only a real one.

Item-level simulation of a ``python:`` generator on the default ``pictoworld-audit`` suite: the
prompts, families and images per prompt are the suite's own (every prompt that names a presentation:
the skills suite's people prompts at 2 images each, the explicit bias prompts at 8), about 200
images per identity. Each prompt gets its own adherence (prompt-level variation: logit-normal
around the base, sd 0.5 on the logit scale), each image passes with that probability, and prompts
naming a woman have ``gap`` subtracted. The base 0.97 is the bundled checkpoint's measured skill
on these prompts (docs/model-card.md, "Robustness"). Each repeat runs
:func:`t2i_audit.reports.fairness.counterfactual` on the ``skills`` metric and counts the repeat as
flagged when the presentation attribute's largest disparity has Holm p < 0.05.

Pass: a 10 pp gap flagged in >= 90% of repeats, no gap in <= 5% (>= 200 repeats each); also reports
the coverage of the planted gap by the disparity's 95% interval and the skin false-flag rate.

    python bench/fairness_planted.py --repeats 200
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import pandas as pd


def design(suite: str, images_per_prompt: int | None):
    """(manifest-like frame, plan rows) for the suite's prompts that name an identity."""
    import json

    from t2i_audit.evals.suites.loader import load_suite

    s = load_suite(suite)
    rows, plan = [], []
    for p, seed in s.plan(images_per_prompt):
        if "presentation" not in p.slots and "skin" not in p.slots:
            continue
        rows.append({"prompt_id": p.prompt_id, "template": p.template, "slots": json.dumps(p.slots, sort_keys=True)})
        plan.append((p.prompt_id, seed, p.slots.get("presentation")))
    return pd.DataFrame(rows).drop_duplicates("prompt_id"), plan


def simulate(manifest, plan, gap: float, base: float, sd: float, rng) -> pd.DataFrame:
    logit = math.log(base / (1 - base))
    prompt_p = {pid: 1 / (1 + math.exp(-(logit + sd * rng.standard_normal()))) for pid in manifest["prompt_id"]}
    pids = np.array([p for p, _, _ in plan])
    p = np.array([prompt_p[x] for x in pids]) - np.array([gap if pres == "woman" else 0.0 for _, _, pres in plan])
    return pd.DataFrame({"prompt_id": pids, "seed": [s for _, s, _ in plan], "category": "people",
                         "metric": "skills", "value": (rng.random(len(p)) < np.clip(p, 0, 1)).astype(float)})


def run(gap: float, repeats: int, args, manifest, plan) -> dict:
    from t2i_audit.reports.fairness import counterfactual

    rng = np.random.default_rng(args.seed + int(gap * 1000))
    flagged = skin_flag = covered = 0
    est = []
    for _ in range(repeats):
        items = simulate(manifest, plan, gap, args.base, args.sd, rng)
        f = counterfactual(items, manifest, attributes=("presentation", "skin"), n_boot=args.reps,
                           seed=int(rng.integers(1 << 30)))
        top = f[(f.kind == "max_disparity") & (f.attribute == "presentation")].iloc[0]
        pair = f[(f.kind == "pair") & (f.attribute == "presentation")].iloc[0]  # man - woman
        flagged += bool(top.flagged)
        skin_flag += bool(f[(f.kind == "max_disparity") & (f.attribute == "skin")].flagged.iloc[0])
        covered += bool(pair.ci_low <= gap <= pair.ci_high)
        est.append(pair.value)
    n_img = int(f[(f.kind == "identity") & (f.attribute == "presentation")].n.iloc[0])
    return {"gap": gap, "flag_rate": flagged / repeats, "skin_flag_rate": skin_flag / repeats,
            "coverage": covered / repeats, "mean_est": float(np.mean(est)), "n_per_identity": n_img,
            "n_families": int(top.n_prompts)}


def fmt_rate_ci(k: float, n: int) -> str:
    from t2i_audit.stats.resampling import wilson_interval

    lo, hi = wilson_interval(round(k * n), n)
    return f"[{lo:.3f}, {hi:.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--suite", default="pictoworld-audit")
    ap.add_argument("--images-per-prompt", type=int, default=None, help="default: the suite's own")
    ap.add_argument("--base", type=float, default=0.97, help="adherence of the unlowered identity")
    ap.add_argument("--sd", type=float, default=0.5, help="prompt-level sd on the logit scale")
    ap.add_argument("--reps", type=int, default=1000, help="bootstrap replicates per test")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.repeats < 200:
        print(f"FAIL: --repeats {args.repeats} < 200")
        return 1
    t0 = time.perf_counter()
    manifest, plan = design(args.suite, args.images_per_prompt)
    res = [run(g, args.repeats, args, manifest, plan) for g in (0.10, 0.0)]
    print(f"suite {args.suite}: {res[0]['n_families']} presentation families, {res[0]['n_per_identity']} images "
          f"per identity; base adherence {args.base}, prompt sd {args.sd} (logit); {args.repeats} repeats, "
          f"B={args.reps}")
    print(f"{'gap':>6} {'flagged':>8} {'95% CI':>16} {'mean est':>9} {'coverage':>9} {'skin flagged':>13}")
    for r in res:
        print(f"{r['gap']:>6.2f} {r['flag_rate']:>8.3f} {fmt_rate_ci(r['flag_rate'], args.repeats):>16} {r['mean_est']:>9.4f} "
              f"{r['coverage']:>9.3f} {r['skin_flag_rate']:>13.3f}")
    vals = [v for r in res for v in (r["flag_rate"], r["coverage"], r["mean_est"])]
    ok = all(math.isfinite(v) for v in vals) and res[0]["flag_rate"] >= 0.90 and res[1]["flag_rate"] <= 0.05
    print(f"10 pp gap flagged {res[0]['flag_rate']:.3f} (need >= 0.90); no gap flagged {res[1]['flag_rate']:.3f} "
          f"(need <= 0.05) -> {'PASS' if ok else 'FAIL'} ({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
