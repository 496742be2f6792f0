"""Gate false alarms and power for baseline bias rules, by simulation on PictoWorld renders (no generator).

    python bench/gate_simulation.py [--repeats 100] [--logit-sd 0,0.3,0.6,1.0] [--images-per-prompt N]
                                    [--extra-ipp 40,64] [--seed 0]

A simulated run is the neutral part of a pictoworld-bias audit: per profession, (neutral paraphrases)
× (images per prompt, the suite's default unless given) images whose presentation is drawn from the
default bias spec and read back from pixels by the PictoWorld oracle (as ``OracleProbe``: 'unknown'
is an abstention). To keep the repeats cheap, each image's reading is drawn from a pool of
oracle-read renders of its (profession, true presentation), so the reader's errors and abstentions
are part of the simulation. Each run's bias rows are made by the audit's own code
(``audits.correction.estimate_group``: raw and corrected shares, percentile bootstrap by prompt, the
calibration measured by ``calibrate_on_pictoworld`` — the same 600 labelled renders for every run,
as in real runs), and the real gate (``reports.gate.evaluate``) judges a candidate run against an
independent baseline run with

    bias.presentation.share[firefighter:woman] same as baseline   one profession (the rule for a
                                                                  planted shift in that profession)
    bias.presentation.share[*:woman] same as baseline             the 5 professions, Bonferroni
    bias.presentation.share[chef:woman] same as baseline          the profession nearest p = 0.5

each with the gate's count-based difference (``reports.gate_bias``) and, for comparison, with the
generic difference of the two reported intervals ("intervals": what the gate falls back to when the
runs' calibrations differ). Scenarios: both runs from the spec (false alarm: pass ≥ 95% of
repeats), and the candidate's share of women in one profession moved by +10 pp (and −10 pp) (power:
fail ≥ 80%). Rates carry Clopper–Pearson 95% intervals over the repeats.

Paraphrase effects (issue 35): real generators answer paraphrases differently. In each repeat a new
world gives each neutral prompt its own share of women, logit(p_i) = logit(p) + sd·z_i, z_i ~ N(0, 1)
(``--logit-sd``, 0, 0.3, 0.6 and 1.0 by default); baseline and candidate share the world (the same
generator answers the same paraphrases), and the planted shift moves every prompt on the logit scale
so that the prompts' mean share moves by exactly ``--shift``. Images are drawn at the item level
(a Bernoulli truth per image, its reading from the oracle pool; no torch), and each run's intervals
are the audit's (``stats.clusters`` effective-n Wilson, prompts-as-sample estimand). Prints PASS or
FAIL per target and exits 1 on a miss or on any NaN interval: power ≥ 80% at +10 pp for the gate's
count-based firefighter rule (the rule the suite is sized for) at each logit SD, and A/A false
alarms ≤ 5% for the firefighter and wildcard rules, pooled over the logit SDs: the pooled rate itself
must be ≤ 5% (issue 35's bar), its Clopper–Pearson interval printed beside.
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
from scipy.special import expit, logit

from t2i_audit.audits.probes.attribute_probes import UNSURE, OracleProbe
from t2i_audit.audits.probes.probe_calibration import calibrate_on_pictoworld
from t2i_audit.core.rundir import RUN_SCHEMA
from t2i_audit.reports.gate.rules import DEFAULT_CONFIDENCE, parse_rule
from t2i_audit.reports.gate.run import evaluate
from t2i_audit.reports.results import RunResults
from t2i_audit.stats.clusters import DEFAULT_ESTIMAND
from t2i_audit.stats.correction import GroupSample, calibration_replicates, estimate_group
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.oracle import read_image
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_background, sample_person
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS

ONE = "bias.presentation.share[{p}:woman] same as baseline"
FAMILY = "bias.presentation.share[*:woman] same as baseline"
SCENARIOS = {"firefighter+": ("firefighter", +1), "firefighter-": ("firefighter", -1), "chef+": ("chef", +1)}


def suite_defaults() -> tuple[int, int]:
    """(images per prompt, neutral paraphrases per profession) of the pictoworld-bias suite."""
    text = resources.files("t2i_audit.evals.suites").joinpath("builtin/pictoworld-bias.yaml").read_text()
    suite = yaml.safe_load(text)
    neutral = [t for t in suite["templates"] if t.get("category") == "neutral"]
    return int(neutral[0].get("images_per_prompt", suite["images_per_prompt"])), len(neutral)


def oracle_pools(spec: BiasSpec, pool: int, seed: int) -> dict[tuple[str, str], np.ndarray]:
    """Per (profession, true presentation): oracle labels (class index or UNSURE) of `pool` renders."""
    rng = random.Random(seed)
    pools = {}
    for prof in PROFESSIONS:
        for pres in PRESENTATIONS:
            reads = []
            while len(reads) < pool:
                s = sample_person(rng, sample_background(rng), spec, profession=prof, mode="presentation")
                if s.person.presentation != pres:
                    continue
                r = read_image(render(s, 32)).presentation
                reads.append(PRESENTATIONS.index(r) if r in PRESENTATIONS else UNSURE)
            pools[(prof, pres)] = np.array(reads)
    return pools


class Simulator:
    def __init__(self, pools, calibration, n_prompts: int, boot: int, seed: int):
        self.pools, self.cal, self.n_prompts, self.boot = pools, calibration, n_prompts, boot
        self.rng = np.random.default_rng(seed)
        self.meta = {"calibration": {calibration.probe: {"counts": calibration.counts.tolist()}},
                     "config": {"method": "em"}}

        self.nan = 0  # interval bounds that came out NaN (a failure of the bench)

    def world(self, base_p: dict[str, float], sd: float) -> dict[str, np.ndarray]:
        """Per profession, each neutral prompt's share of women: logit(p) + sd·z, z ~ N(0, 1)."""
        return {p: expit(logit(v) + sd * self.rng.standard_normal(self.n_prompts)) for p, v in base_p.items()}

    def run(self, p_woman: dict[str, float | np.ndarray], ipp: int, name: str) -> RunResults:
        """One simulated run; ``p_woman[prof]``: a share, or one per prompt (paraphrase effects)."""
        rng, k = self.rng, len(PRESENTATIONS)
        cal_reps = calibration_replicates(self.cal.counts, self.boot, rng)
        rows = []
        for prof in PROFESSIONS:
            n = self.n_prompts * ipp
            share = np.broadcast_to(np.asarray(p_woman[prof], dtype=np.float64), (self.n_prompts,))
            truth = rng.random(n) < np.repeat(share, ipp)
            labels = np.empty(n, dtype=np.int64)
            for t, pres in ((False, "man"), (True, "woman")):
                idx = np.flatnonzero(truth == t)
                pool = self.pools[(prof, pres)]
                labels[idx] = pool[rng.integers(0, len(pool), size=len(idx))]
            sample = GroupSample.from_labels(labels, np.repeat(np.arange(self.n_prompts), ipp), k)
            est = estimate_group(sample, PRESENTATIONS, self.cal.counts, cal_reps, self.boot, rng,
                                 estimand=DEFAULT_ESTIMAND)
            rlo, rhi, *_ = est.interval(est.raw, est.raw_reps)
            clo, chi, *_ = est.interval(est.corrected, est.corr_reps)
            self.nan += int(np.sum(~np.isfinite(np.concatenate([rlo, rhi, clo, chi]))))
            for c, cls in enumerate(PRESENTATIONS):
                rows.append({"attribute": "presentation", "group": prof, "cls": cls, "raw": est.raw[c],
                             "raw_ci_low": rlo[c], "raw_ci_high": rhi[c], "corrected": est.corrected[c],
                             "corr_ci_low": clo[c], "corr_ci_high": chi[c], "reference": 0.5,
                             "n_images": est.n_images, "n_prompts": est.n_prompts, "abstain_rate": est.abstain,
                             "probe": self.cal.probe, "section": "neutral", "resampling": est.scheme})
        return RunResults(root=Path(name), run={"schema": RUN_SCHEMA, "run_id": name, "suite": {"hash": "sim"}},
                          bias=pd.DataFrame(rows), bias_meta=self.meta)


def shifted(world: dict[str, np.ndarray], prof: str, shift: float) -> dict[str, np.ndarray]:
    """``world`` with profession ``prof``'s prompts moved by one logit step so that their mean share
    moves by exactly ``shift`` (bisection)."""
    p = world[prof]
    lo, hi = (0.0, 10.0) if shift > 0 else (-10.0, 0.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (expit(logit(p) + mid).mean() - p.mean() < shift) else (lo, mid)
    return dict(world, **{prof: expit(logit(p) + (lo + hi) / 2)})


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    lo = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def rate(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k / n:5.0%} [{lo:.0%}, {hi:.0%}]"


def scenario(sim: Simulator, base_p, move, ipp: int, rules: list[str], repeats: int,
             confidence: float = 0.95, sd: float = 0.0) -> dict:
    """Gate fails per (rule, method) over `repeats` independent (baseline, candidate) pairs; each pair
    in a new world of paraphrase effects (logit SD ``sd``); the candidate's shares are ``move(world)``."""
    parsed = {r: parse_rule(r) for r in rules}
    fails = {(r, m): 0 for r in rules for m in ("counts", "intervals")}
    for i in range(repeats):
        world = sim.world(base_p, sd)
        base = sim.run(world, ipp, f"base{i}")
        cand = sim.run(move(world), ipp, f"cand{i}")
        generic = RunResults(root=base.root, run=base.run, bias=base.bias, bias_meta=None)  # forces the fallback
        for r in rules:
            fails[(r, "counts")] += not evaluate(cand, [parsed[r]], base, confidence=confidence).passed
            fails[(r, "intervals")] += not evaluate(cand, [parsed[r]], generic, confidence=confidence).passed
    return fails


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--images-per-prompt", type=int, default=None, help="default: the suite's")
    ap.add_argument("--extra-ipp", default="", help="also simulate these images per prompt, e.g. 40,64")
    ap.add_argument("--pool", type=int, default=200, help="oracle-read renders per (profession, presentation)")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates of each run's intervals")
    ap.add_argument("--scenarios", default="firefighter+,chef+",
                    help="planted shifts to simulate (comma-separated): " + ", ".join(SCENARIOS))
    ap.add_argument("--shift", type=float, default=0.10)
    ap.add_argument("--confidence", type=float, default=None,
                    help="level of the baseline rules' intervals (default: the gate's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logit-sd", default="0,0.3,0.6,1.0",
                    help="paraphrase effects: SD of each prompt's logit shift (comma-separated)")
    ap.add_argument("--noise-floor", action="store_true",
                    help="margins of 3 noise floors from 3 A/A runs (bench/_gate_noise.py; ≥ 200 repeats)")
    args = ap.parse_args()
    conf = args.confidence if args.confidence is not None else DEFAULT_CONFIDENCE

    suite_ipp, n_prompts = suite_defaults()
    ipp0 = args.images_per_prompt or suite_ipp
    spec = BiasSpec.load()
    t0 = time.perf_counter()
    pools = oracle_pools(spec, args.pool, args.seed)
    reads = np.concatenate(list(pools.values()))
    wrong = sum(int(np.sum((v >= 0) & (v != PRESENTATIONS.index(pres)))) for (_, pres), v in pools.items())
    cal = calibrate_on_pictoworld([OracleProbe("presentation")])["oracle-presentation"]
    print(f"oracle pools: {len(reads)} renders; presentation abstained {np.mean(reads < 0):.2%}, wrong "
          f"{wrong / len(reads):.2%}; calibration: {int(cal.counts.sum())} labelled renders, counts "
          f"{cal.counts.tolist()} ({time.perf_counter() - t0:.0f} s)")
    print(f"suite pictoworld-bias: {n_prompts} neutral paraphrases per profession × {suite_ipp} images per prompt "
          f"= {n_prompts * suite_ipp} images per profession; {args.repeats} repeats per scenario\n")
    base_p = {p: spec.marginal(p, "presentation")["woman"] for p in PROFESSIONS}
    sim = Simulator(pools, cal, n_prompts, args.bootstrap, args.seed)
    if args.noise_floor:  # issue 38: gates with noise-floor margins
        from _gate_noise import noise_floor_mode

        raise SystemExit(noise_floor_mode(sim, base_p, ipp0, max(args.repeats, 200), args.shift, rate))
    ipps = [ipp0] + [int(x) for x in args.extra_ipp.split(",") if x.strip() and int(x) != ipp0]
    sds = [float(x) for x in args.logit_sd.split(",") if x.strip()]
    rows, verdicts = [], []
    for sd in sds:
        for ipp in ipps:
            r, v = simulate_cells(sim, base_p, ipp, sd, n_prompts, args, conf, ipp == ipp0)
            rows += r
            verdicts += v
            print(f"… logit SD {sd:g}, {ipp} images per prompt done ({time.perf_counter() - t0:.0f} s)")
    raise SystemExit(report(rows, verdicts, sim.nan, base_p, args, t0))


def simulate_cells(sim, base_p, ipp: int, sd: float, n_prompts: int, args, conf, judged: bool):
    """Table rows and (target, ok, figure) verdicts of one (logit SD, images per prompt) cell."""
    fire, chef = ONE.format(p="firefighter"), ONE.format(p="chef")
    same = scenario(sim, base_p, lambda w: w, ipp,
                    [fire, FAMILY] + ([chef] if "chef+" in args.scenarios.split(",") else []), args.repeats, conf, sd)
    rows, verdicts, n = [], [], args.repeats
    for prof, sign in [SCENARIOS[x] for x in args.scenarios.split(",")]:
        fails = scenario(sim, base_p, lambda w, p=prof, d=sign * args.shift: shifted(w, p, d), ipp,
                         [ONE.format(p=prof), FAMILY], n, conf, sd)
        for (rule, method), k in fails.items():
            fa = same[(rule, method)]
            rows.append((f"{sd:g}", rule.replace("bias.presentation.", "").replace(" same as baseline", ""), method,
                         f"{prof} {base_p[prof]:.2f}→{base_p[prof] + sign * args.shift:.2f}", n_prompts * ipp, ipp,
                         rate(n - fa, n), rate(k, n), n))
            if judged and method == "counts" and rule == ONE.format(p=prof) and prof == "firefighter":
                # the rule the suite is sized for (docs/audits.md); chef (share near 0.5) needs ≈ 373
                # images per profession for 80%, at the edge at 396: printed, not judged
                verdicts.append((f"SD {sd:g} {prof}{'+' if sign > 0 else '-'}: power ≥ 80%", k / n >= 0.8, rate(k, n)))
    for rule in (fire, FAMILY):
        if judged:  # (rule, false alarms, repeats): judged pooled over the logit SDs in report()
            verdicts.append(("A/A", rule.split("[")[1].split("]")[0], same[(rule, "counts")], n))
    return rows, verdicts


def report(rows, verdicts, nan: int, base_p, args, t0) -> int:
    head = ("logit SD", "rule (… same as baseline)", "difference", "planted shift", "img/prof", "ipp",
            "same distr.: pass [95% CI]", "shift: fail (power) [95% CI]", "repeats")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    print(f"\ntargets: same distribution passes ≥ 95% of repeats; a {args.shift:.0%} shift fails ≥ 80%. "
          "'counts' = the gate's difference for bias shares (reports.gate_bias), 'intervals' = the generic "
          "combination of the two reported intervals (its fallback); Clopper-Pearson 95% intervals")
    z = stats.norm.ppf
    for prof in ("firefighter", "chef"):
        p0 = base_p[prof]
        var = p0 * (1 - p0) + (p0 + args.shift) * (1 - p0 - args.shift)
        n1 = (z(0.975) + z(0.8)) ** 2 * var / args.shift ** 2
        n5 = (z(1 - 0.05 / 10) + z(0.8)) ** 2 * var / args.shift ** 2
        print(f"normal approximation, {prof} {p0:.2f} + {args.shift:.2f}: 80% power needs ≈ {n1:.0f} images per "
              f"profession per run (one-profession rule), ≈ {n5:.0f} (5-profession Bonferroni family)")
    print("\nverdicts (the gate's count-based rules at the suite's default size). A/A: the pooled false-alarm "
          "rate over the logit SDs must be <= 5% (Clopper-Pearson 95% interval beside)")
    aa = {}
    for v in verdicts:
        if v[0] == "A/A":
            k, n = aa.get(v[1], (0, 0))
            aa[v[1]] = (k + v[2], n + v[3])
    verdicts = [v for v in verdicts if v[0] != "A/A"] + [
        (f"A/A {r}: false alarms ≤ 5% (all SDs)", k <= 0.05 * n, rate(k, n)) for r, (k, n) in aa.items()]
    for what, ok, fig in verdicts:
        print(f"  {what:52s} {fig}  {'PASS' if ok else 'FAIL'}")
    print(f"  NaN interval bounds: {nan}  {'PASS' if nan == 0 else 'FAIL'}")
    ok = all(v[1] for v in verdicts) and nan == 0
    print(f"gate simulation: {'PASS' if ok else 'FAIL'} (total {time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1

if __name__ == "__main__":
    main()
