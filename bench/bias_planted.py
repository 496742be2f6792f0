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

from t2i_audit.stats.clusters import MIN_PROMPTS, cluster_draw_matrix, share_interval, within_cluster_draws
from t2i_audit.stats.correction import conditional_from_counts, correct

CONFUSION = np.array([[0.90, 0.10], [0.15, 0.85]])  # rows: true man, woman; columns: read man, woman
SHAPES = ((4, 40), (10, 16), (20, 8))
SDS = (0.0, 0.3, 0.6, 1.0)
SHARES = (0.5, 0.8, 0.95)
CAL_PER_CLASS = 300
LOW, HIGH = 0.90, 0.98


def expected_share(p0: float, sd: float) -> float:
    z = np.random.default_rng(12345).standard_normal(400_000)
    return float(expit(logit(p0) + sd * z).mean())


def groups(rng, R: int, P: int, m: int, p0: float, sd: float):
    """``R`` simulated groups at once: per-prompt read counts ``(R, P, 4)`` (read man, read woman,
    unsure, no person) and the conditional truths ``(R,)``."""
    p_i = expit(logit(p0) + sd * rng.standard_normal((R, P)))
    men = rng.binomial(m, p_i)
    read_man = rng.binomial(men, CONFUSION[0, 0]) + rng.binomial(m - men, CONFUSION[1, 0])
    counts = np.zeros((R, P, 4), np.int64)
    counts[..., 0], counts[..., 1] = read_man, m - read_man
    return counts, p_i.mean(1)


def calibrations(rng, R: int) -> np.ndarray:
    """``(R, 2, 4)`` fresh calibration counts per repeat (rows: true man, woman)."""
    cal = np.zeros((R, 2, 4), np.int64)
    for j in range(2):
        cal[:, j, 0] = rng.binomial(CAL_PER_CLASS, CONFUSION[j, 0], R)
        cal[:, j, 1] = CAL_PER_CLASS - cal[:, j, 0]
    return cal


def corrected_man(totals: np.ndarray, cal: np.ndarray) -> np.ndarray:
    """Corrected man-share of read totals ``(..., 4)`` through calibration counts ``(..., 2, 4)``:
    for two classes the EM maximum likelihood of ``stats.correction.correct`` is the inverse clipped
    to [0, 1] (the likelihood is monotone in the share; checked against EM by :func:`check_closed_form`)."""
    A, a = conditional_from_counts(cal)
    return np.clip(correct(totals[..., :2], A, a, "inverse")[..., 0], 0.0, 1.0)


def check_closed_form(rng) -> float:
    """Largest gap between the closed form and the library's EM on 400 random groups."""
    counts, _ = groups(rng, 400, 10, 16, 0.9, 1.0)
    cal = calibrations(rng, 400)
    A, a = conditional_from_counts(cal)
    em = correct(counts.sum(1)[:, :2], A, a, "em")[:, 0]
    return float(np.max(np.abs(em - corrected_man(counts.sum(1), cal))))


def replicates(counts: np.ndarray, cal: np.ndarray, B: int, rng, estimand: str) -> np.ndarray:
    """``(B, R)`` corrected man-share replicates, calibration resampled with the audit sample
    (draws from ``stats.clusters``: prompts with replacement, or images within each prompt)."""
    R, P, C = counts.shape
    if estimand == "prompts":
        draws = cluster_draw_matrix(P, B * R, rng).reshape(B, R, P)
        tot = np.einsum("brp,rpc->brc", draws, counts)
    else:
        tot = within_cluster_draws(counts.reshape(R * P, C), B, rng).reshape(B, R, P, C).sum(2)
    cal_b = within_cluster_draws(cal.reshape(R * 2, 4), B, rng).reshape(B, R, 2, 4)
    return corrected_man(tot, cal_b)


def pct(reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Old plain percentile interval per column of ``(B, R)``."""
    return np.quantile(reps, 0.025, axis=0), np.quantile(reps, 0.975, axis=0)


def setting(P: int, m: int, sd: float, repeats: int, B: int, B_old: int, rng) -> dict:
    """Coverage counts of one (P, sd) setting over ``repeats`` x ``SHARES`` cells."""
    c = {k: 0 for k in ("prompts", "these", "old_cluster", "old_within", "not_estimable", "nan", "cells")}
    width = {"prompts": [], "these": [], "old_cluster": []}
    for p0 in SHARES:
        truth = expected_share(p0, sd)
        counts, cond = groups(rng, repeats, P, m, p0, sd)
        cal = calibrations(rng, repeats)
        point = corrected_man(counts.sum(1), cal)
        c["cells"] += repeats
        n = float(P * m)
        for est, key, target in (("prompts", "prompts", truth), ("these-prompts", "these", cond)):
            reps = replicates(counts, cal, B, rng, est)
            lo, hi, _, _, note = share_interval(point, reps, n, P, est)
            if note:
                c["not_estimable"] += repeats
            else:
                fin = np.isfinite(lo) & np.isfinite(hi)
                c["nan"] += int((~fin).sum())
                c[key] += int(((lo <= target) & (target <= hi) & fin).sum())
                width[key].extend((hi - lo)[fin])
            olo, ohi = pct(reps[:B_old])
            old = "old_cluster" if est == "prompts" else "old_within"
            c[old] += int(((olo <= truth) & (truth <= ohi)).sum())
            if est == "prompts":
                width["old_cluster"].extend(ohi - olo)
    return {**c, **{f"w_{k}": float(np.mean(v)) if v else np.nan for k, v in width.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200, help="repeats per (P, sd, share) cell (>= 200 to claim)")
    ap.add_argument("--bootstrap", type=int, default=400, help="replicates for the new intervals")
    ap.add_argument("--old-bootstrap", type=int, default=200,
                    help="replicates for the old percentile intervals (the first of the same draws)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    gap = check_closed_form(np.random.default_rng(args.seed + 1))
    ok = gap < 1e-4
    print(f"closed-form correction vs library EM: max gap {gap:.1e} ({'ok' if ok else 'FAIL'})")
    print(f"corrected man-share, 160 images per group, shares {SHARES}, {args.repeats} repeats per share, "
          f"B={args.bootstrap} (old percentile intervals: the first {args.old_bootstrap}); "
          f"minimum prompts for prompts-as-sample: {MIN_PROMPTS}")
    print(f"{'P':>3} {'m':>3} {'sd':>4} | {'prompts-as-sample':>22} | {'these prompts':>16} | "
          f"{'old cluster pct':>16} | {'old within pct':>14}")
    for P, m in SHAPES:
        for sd in SDS:
            r = setting(P, m, sd, args.repeats, args.bootstrap, args.old_bootstrap, rng)
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
