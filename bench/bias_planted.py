"""Bias intervals keep their promise when the wording matters (issue 35, acceptance 1).

Item-level simulation, no torch, no renders: each simulated audit group has P prompts (4, 10, 20)
with a fixed budget of 160 images (40, 16, 8 per prompt). Prompt i's true man-share is
expit(logit(p0) + sd * z_i), z_i ~ N(0, 1) -- a paraphrase effect with logit SD 0, 0.3, 0.6, 1.0 --
for planted shares p0 = 0.5, 0.8 and 0.95. A probe with planted errors (P(read man | man) = 0.9,
P(read woman | woman) = 0.85) reads every image; a fresh 300-per-class calibration set measures its
confusion; the audit's corrected share (EM through the measured confusion) gets an interval from
``stats.correction.estimate_group`` for both estimands.

Truths: *prompts as a sample* -- the expected share over paraphrases, E[expit(logit p0 + sd z)];
*these prompts* -- the mean of the P drawn prompts' own shares. Printed per setting: coverage of
the new intervals, and beside them the old figures: the plain percentile cluster bootstrap
(prompts resampled) and the old within-prompt percentile bootstrap (what groups with fewer than 5
prompts silently got), both scored against the prompts-as-sample truth.

PASS: prompts-as-sample coverage 90-98% at every setting with P >= MIN_PROMPTS (5), every P = 4
interval "not estimable" (NaN with a reason); these-prompts coverage of the conditional truth
90-98% everywhere; no NaN where an interval is given.

    python bench/bias_planted.py --repeats 200
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.special import expit, logit

from t2i_audit.stats.clusters import MIN_PROMPTS
from t2i_audit.stats.correction import GroupSample, estimate_group

CONFUSION = np.array([[0.90, 0.10], [0.15, 0.85]])  # rows: true man, woman; columns: read man, woman
SHAPES = ((4, 40), (10, 16), (20, 8))
SDS = (0.0, 0.3, 0.6, 1.0)
SHARES = (0.5, 0.8, 0.95)
CAL_PER_CLASS = 300
LOW, HIGH = 0.90, 0.98


def expected_share(p0: float, sd: float) -> float:
    z = np.random.default_rng(12345).standard_normal(400_000)
    return float(expit(logit(p0) + sd * z).mean())


def calibration_counts(rng) -> np.ndarray:
    """(2, 4) outcome counts per true class: read man, read woman, unsure, no person."""
    reads = np.stack([rng.multinomial(CAL_PER_CLASS, CONFUSION[j]) for j in range(2)])
    return np.concatenate([reads, np.zeros((2, 2), np.int64)], 1)


def one_group(rng, P: int, m: int, p0: float, sd: float):
    """Probe readings (0 man, 1 woman), prompt ids and the conditional truth of one group."""
    p_i = expit(logit(p0) + sd * rng.standard_normal(P))
    prompts = np.repeat(np.arange(P), m)
    man = rng.random(P * m) < p_i[prompts]
    read_man = np.where(man, rng.random(P * m) < CONFUSION[0, 0], rng.random(P * m) < CONFUSION[1, 0])
    return np.where(read_man, 0, 1), prompts, float(p_i.mean())


def pct(reps: np.ndarray) -> tuple[float, float]:
    r = reps[np.isfinite(reps)]
    return (float(np.quantile(r, 0.025)), float(np.quantile(r, 0.975))) if r.size else (np.nan, np.nan)


def setting(P: int, m: int, sd: float, repeats: int, B: int, rng) -> dict:
    """Coverage counts of one (P, sd) setting over ``repeats`` x ``SHARES`` cells."""
    c = {k: 0 for k in ("prompts", "these", "old_cluster", "old_within", "not_estimable", "nan", "cells")}
    width = {"prompts": [], "these": [], "old_cluster": []}
    for p0 in SHARES:
        truth = expected_share(p0, sd)
        for _ in range(repeats):
            reads, prompts, cond = one_group(rng, P, m, p0, sd)
            cal = calibration_counts(rng)
            s = GroupSample.from_labels(reads, prompts, 2)
            c["cells"] += 1
            e = estimate_group(s, ("man", "woman"), cal, B=B, rng=rng, estimand="prompts")
            lo, hi, _, _, note = e.interval(e.corrected, e.corr_reps)
            if note:
                c["not_estimable"] += 1
            elif not (np.isfinite(lo[0]) and np.isfinite(hi[0])):
                c["nan"] += 1
            else:
                c["prompts"] += lo[0] <= truth <= hi[0]
                width["prompts"].append(hi[0] - lo[0])
            olo, ohi = pct(e.corr_reps[:, 0])
            c["old_cluster"] += olo <= truth <= ohi
            width["old_cluster"].append(ohi - olo)
            t = estimate_group(s, ("man", "woman"), cal, B=B, rng=rng, estimand="these-prompts")
            tlo, thi, _, _, tnote = t.interval(t.corrected, t.corr_reps)
            if tnote or not np.isfinite(tlo[0]):
                c["nan"] += 1
            else:
                c["these"] += tlo[0] <= cond <= thi[0]
                width["these"].append(thi[0] - tlo[0])
            wlo, whi = pct(t.corr_reps[:, 0])
            c["old_within"] += wlo <= truth <= whi
    return {**c, **{f"w_{k}": float(np.mean(v)) if v else np.nan for k, v in width.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200, help="repeats per (P, sd, share) cell (>= 200 to claim)")
    ap.add_argument("--bootstrap", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    ok = True
    print(f"corrected man-share, 160 images per group, shares {SHARES}, {args.repeats} repeats per share, "
          f"B={args.bootstrap}; minimum prompts for prompts-as-sample: {MIN_PROMPTS}")
    print(f"{'P':>3} {'m':>3} {'sd':>4} | {'prompts-as-sample':>22} | {'these prompts':>16} | "
          f"{'old cluster pct':>16} | {'old within pct':>14}")
    for P, m in SHAPES:
        for sd in SDS:
            r = setting(P, m, sd, args.repeats, args.bootstrap, rng)
            n = r["cells"]
            if P < MIN_PROMPTS:
                cov = "not estimable" if r["not_estimable"] == n else f"{r['not_estimable']}/{n} NE"
                ok &= r["not_estimable"] == n
            else:
                given = n - r["not_estimable"] - r["nan"]
                cv = r["prompts"] / max(given, 1)
                cov = f"{cv:.3f} (w {r['w_prompts']:.3f})"
                ok &= r["not_estimable"] == 0 and LOW <= cv <= HIGH
            tc = r["these"] / n
            ok &= LOW <= tc <= HIGH and r["nan"] == 0
            print(f"{P:>3} {m:>3} {sd:>4.1f} | {cov:>22} | {tc:.3f} (w {r['w_these']:.3f}) | "
                  f"{r['old_cluster'] / n:.3f} (w {r['w_old_cluster']:.3f}) | {r['old_within'] / n:>14.3f}",
                  flush=True)
            if r["nan"]:
                print(f"  FAIL: {r['nan']} NaN intervals where an interval is given")
    print(f"{time.perf_counter() - t0:.0f} s")
    print("PASS" if ok else "FAIL", "(prompts-as-sample and these-prompts coverage in "
          f"[{LOW:.2f}, {HIGH:.2f}], P < {MIN_PROMPTS} not estimable, no NaN)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
