"""`audit plan` answers confirmed by simulation.

For a grid of designs (gap, base, power, clustering, probe accuracy, abstention, groups) the planned
sample size is simulated with the audit's test; the simulated power must be within +/-10% (relative)
of the stated power.

    python bench/plan_check.py [--reps 2000]
"""

from __future__ import annotations

import argparse
import time

from t2i_audit.stats.power import PlanConfig, plan, simulate_power

CASES = [
    dict(gap=0.1),
    dict(gap=0.1, base=0.3),
    dict(gap=0.05, power=0.9),
    dict(gap=0.2, base=0.15, power=0.7),
    dict(gap=0.1, design="two-sample"),
    dict(gap=0.1, icc=0.05, images_per_prompt=8),
    dict(gap=0.15, icc=0.1, prompts_per_group=20),
    dict(gap=0.1, accuracy=0.9, abstain=0.1),
    dict(gap=0.1, groups=5),
    dict(gap=0.1, design="two-sample", icc=0.05, images_per_prompt=10),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    a = ap.parse_args()
    t0 = time.time()
    print(f"{'design':<62}{'n/group':>8}{'m x P':>10}{'stated':>8}{'simulated':>11}{'rel. err':>10}")
    ok = True
    for i, kw in enumerate(CASES):
        pl = plan(PlanConfig(**kw))
        sim = simulate_power(pl, a.reps, seed=i)
        rel = (sim - pl.config.power) / pl.config.power
        ok &= abs(rel) <= 0.10
        mp = f"{pl.images_per_prompt}x{pl.prompts_per_group}" if pl.images_per_prompt else "-"
        desc = ", ".join(f"{k}={v}" for k, v in kw.items())
        print(f"{desc:<62}{pl.images_per_group:>8}{mp:>10}{pl.config.power:>8.2f}{sim:>11.3f}{100 * rel:>9.1f}%")
    print(f"all within +/-10% of the stated power: {'PASS' if ok else 'FAIL'} "
          f"({a.reps} simulated audits per design, {time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
