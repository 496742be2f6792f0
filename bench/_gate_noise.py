"""`python bench/gate_simulation.py --noise-floor`: gates with margins of 3 noise floors (issue 38).

Per repeat: 3 A/A runs of the planted world (the default bias spec, the suite's paraphrases and
images per prompt) measure the noise floor of ``bias.presentation.share[firefighter:woman]``
(the raw share: the oracle reader here reads without error, so the corrected share equals it;
``reports.gate.noise.calibrate``'s formula on the runs' estimates and intervals); then a baseline
and a candidate run are gated with ``... same as baseline within 3 noise`` by the real gate:
A/A (candidate from the same world) and shifted (the candidate's share of women among
firefighters +10 pp). Targets: A/A fail ≤ 2% and inconclusive ≤ 10%; shift fail ≥ 90%.
Prints the rates with Clopper–Pearson intervals and PASS/FAIL; exits 1 on a miss or a NaN.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from t2i_audit.reports.gate.noise import Z95, NoiseFloors
from t2i_audit.reports.gate.rules import parse_rule
from t2i_audit.reports.gate.run import evaluate

KEY = "bias.presentation.raw_share[firefighter:woman]"
RULE = f"{KEY} same as baseline within 3 noise"


def _floor(runs) -> float:
    from t2i_audit.reports.gate.index import MetricIndex

    ests = [next(e for g in MetricIndex(r).names.values() for e in g.values() if e.key == KEY) for r in runs]
    vals = np.array([e.value for e in ests])
    se = math.sqrt(np.mean([((e.ci_high - e.ci_low) / 2 / Z95) ** 2 for e in ests]))
    return math.sqrt(2) * max(float(np.std(vals, ddof=1)), se)


def noise_floor_mode(sim, base_p: dict, ipp: int, repeats: int, shift: float, rate) -> int:
    rule = parse_rule(RULE)
    counts = {"aa": {"fail": 0, "inconclusive": 0}, "shift": {"fail": 0, "inconclusive": 0}}
    floors, nan = [], 0
    shifted = dict(base_p, firefighter=base_p["firefighter"] + shift)
    for i in range(repeats):
        noise = _floor([sim.run(base_p, ipp, f"aa{i}-{k}") for k in range(3)])
        floors.append(noise)
        nf = NoiseFloors({"metrics": {KEY: {"noise": noise}}}, "simulated")
        base = sim.run(base_p, ipp, f"base{i}")
        for name, p in (("aa", base_p), ("shift", shifted)):
            c = evaluate(sim.run(p, ipp, f"{name}{i}"), [rule], base, noise=nf).checks[0]
            nan += not all(math.isfinite(x) for x in (c.diff, c.diff_ci_low, c.diff_ci_high))
            if c.verdict in counts[name]:
                counts[name][c.verdict] += 1
    aa_f, aa_i, sh_f = counts["aa"]["fail"], counts["aa"]["inconclusive"], counts["shift"]["fail"]
    print(f"rule: {RULE}; {repeats} repeats; noise floor from 3 A/A runs each: median "
          f"{np.median(floors):.4f} (IQR {np.percentile(floors, 25):.4f}–{np.percentile(floors, 75):.4f}), "
          f"margin 3 noise ≈ {3 * np.median(floors):.3f}")
    checks = [("A/A fail ≤ 2%", aa_f / repeats <= 0.02, rate(aa_f, repeats)),
              ("A/A inconclusive ≤ 10%", aa_i / repeats <= 0.10, rate(aa_i, repeats)),
              (f"+{shift:.0%} shift fails ≥ 90%", sh_f / repeats >= 0.90, rate(sh_f, repeats))]
    for what, ok, r in checks:
        print(f"  {what:28s} {r}  {'PASS' if ok else 'FAIL'}")
    print(f"  shift inconclusive: {rate(counts['shift']['inconclusive'], repeats)}; NaN checks: {nan}")
    ok = all(c[1] for c in checks) and nan == 0
    print("noise-floor gate: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit("run through: python bench/gate_simulation.py --noise-floor")
