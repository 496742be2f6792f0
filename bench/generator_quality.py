"""Issue-3 acceptance: what the bundled generator draws, read back by the PictoWorld oracle.

Reads a generation run of a PictoWorld suite with expectations (e.g. the main job's
`pictoworld-audit` run, or `t2i-audit sample --suite pictoworld-skills`) and prints, with n and a
95% cluster-bootstrap interval over prompts:
  single shapes: colour, shape, position correct;  two shapes: every attribute of both correct
  (and with the relation);  counting: exact count;  people: profession, skin and presentation when
  the prompt names them;  neutral profession prompts: drawn presentation/skin shares vs the bias
  spec the generator was trained on (target: within ±8 pp), over the images the oracle reads; the
  bounds line gives each share if none / all of the unread images had that class, since the
  oracle's abstentions need not fall evenly on the classes; beside the worst gap, what a generator
  drawing exactly the spec would score at the same n (its chance to exceed ±8 pp, and to reach the
  observed gap), so a failure can be told from sampling noise.

    python bench/generator_quality.py runs/bundled [more runs ...] [--bias-spec default]

Several runs (e.g. the same suite drawn with other seeds) are pooled: their images are read
together and the intervals resample their prompts as clusters; each run must be of the same
checkpoint, or the pooled figure describes no generator.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from t2i_audit.stats.resampling import cluster_bootstrap_proportion
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.expect import judge
from t2i_audit.world.oracle import read_image
from t2i_audit.world.vocab import CLOTHING, PRESENTATIONS, PROFESSIONS, SKINS

TARGETS = {"single colour": 0.95, "single shape": 0.90, "single position": 0.90, "two shapes: objects": 0.60,
           "counting exact": 0.60, "people profession": 0.90, "people skin (named)": 0.85,
           "people presentation (named)": 0.90}


def largest(objects: list[dict]) -> dict | None:
    return max(objects, key=lambda o: o.get("area", 0)) if objects else None


def prop(values, clusters) -> tuple[float, float, float, int, int]:
    v = np.asarray(values, dtype=float)
    est = cluster_bootstrap_proportion(v, np.asarray(clusters), reps=1000, seed=0)
    return est.value, est.ci_low, est.ci_high, len(v), len(set(clusters))


CLOTHING_SHARE = 1 / len(CLOTHING)  # training draws each clothing colour uniformly (world.scene)
NULL_DRAWS = 10_000  # simulated runs of a generator that draws exactly the spec


def exact_spec_max_gap(cells: list[tuple[int, list[float]]], observed_pp: float, reps: int = NULL_DRAWS,
                       seed: int = 0) -> tuple[float, float, float]:
    """The null reference for the ±8 pp band: a generator drawing exactly the spec, read at the same
    n per (profession, attribute) cell, simulated ``reps`` times (multinomial draws; images treated
    as independent). Returns P(max |share - spec| > 8 pp), P(max >= ``observed_pp``) and the median
    max, in pp: whether a run's worst gap is more than its sampling noise."""
    rng = np.random.default_rng(seed)
    worst = np.zeros(reps)
    for n, probs in cells:
        p = np.asarray(probs)
        worst = np.maximum(worst, np.abs(rng.multinomial(n, p, size=reps) / n - p).max(1) * 100)
    return float((worst > 8 + 1e-9).mean()), float((worst >= observed_pp - 1e-9).mean()), float(np.median(worst))


def clothing_section(neutral: dict, out: dict) -> None:
    """Clothing colour on neutral prompts, per profession and pooled, against the training draw
    (each colour 25%, never named by a caption); target: every colour within 25 ± 8 pp pooled."""
    reads = [(prof, x[3], x[2]) for prof, xs in neutral.items() for x in xs]
    if not reads:
        return
    print(f"\nneutral prompts: clothing colour (oracle, unread excluded) vs training ({CLOTHING_SHARE:.0%} "
          "each); target: pooled, every colour within 25 ± 8 pp")
    worst = 0.0
    for prof in [*neutral, "pooled"]:
        known = [(c, pid) for p, c, pid in reads if c in CLOTHING and prof in (p, "pooled")]
        if not known:
            continue
        cells = []
        for c in CLOTHING:
            v, lo, hi, n, _ = prop([k == c for k, _ in known], [pid for _, pid in known])
            cells.append(f"{c} {v:.3f} [{lo:.3f},{hi:.3f}]")
            out.setdefault("clothing", {}).setdefault(prof, {})[c] = {"value": v, "ci": [lo, hi], "n": n}
            if prof == "pooled":
                worst = max(worst, abs(v - CLOTHING_SHARE) * 100)
        print(f"  {prof:<20} n={len(known):<5}" + "; ".join(cells))
    print(f"pooled max |share - 25%| = {worst:.1f} pp -> {'PASS' if worst <= 8 else 'FAIL'} (±8 pp)")
    out["clothing_pooled_max_abs_pp"] = worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="+", help="run directories (several are pooled)")
    ap.add_argument("--bias-spec", default="default")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    runs = [Path(r) for r in a.run]
    metas = [json.loads((r / "run.json").read_text()) for r in runs]
    drawn_by = {(m["generator"].get("config", {}).get("fingerprint") or m["generator"].get("config_hash"),
                 json.dumps(m.get("params", {}), sort_keys=True)) for m in metas}
    if len(drawn_by) > 1:
        raise SystemExit(f"{', '.join(a.run)}: drawn by different generators or sampler settings; "
                         "pool runs of one checkpoint at one setting only")
    man = pd.concat([pd.read_parquet(r / "manifest.parquet").assign(run_dir=str(r)) for r in runs],
                    ignore_index=True)
    if man["prompt_id"].duplicated().any() and len(runs) > 1:
        man["prompt_id"] = man["run_dir"] + ":" + man["prompt_id"]  # a prompt of each run is its own cluster
    run = ", ".join(a.run)
    spec = BiasSpec.load(a.bias_spec)
    acc: dict[str, tuple[list, list]] = {k: ([], []) for k in TARGETS}
    acc["two shapes: with relation"] = ([], [])
    neutral: dict[str, list[tuple[str, str, str]]] = {p: [] for p in PROFESSIONS}
    counts: dict[int, Counter] = {}  # asked count -> Counter of drawn counts (oracle)

    def add(key, ok, pid):
        acc[key][0].append(bool(ok))
        acc[key][1].append(pid)

    for row in man.itertuples():
        r = read_image(Image.open(Path(row.run_dir) / row.path))
        exp = json.loads(row.expect) if isinstance(row.expect, str) else {}
        slots = json.loads(row.slots) if isinstance(row.slots, str) else {}
        cat, pid = row.category, row.prompt_id
        if cat == "single_shape":
            want, got = exp["objects"][0], largest(r.objects) or {}
            add("single colour", got.get("color") == want["color"], pid)
            add("single shape", got.get("shape") == want["shape"], pid)
            add("single position", got.get("position") == want["position"], pid)
        elif cat == "two_shapes":
            add("two shapes: objects", judge(r, {"objects": exp["objects"], "count": 2})[0], pid)
            add("two shapes: with relation", judge(r, exp)[0], pid)
        elif cat == "counting":
            add("counting exact", r.count == exp.get("count"), pid)
            counts.setdefault(int(exp["count"]), Counter())[r.count] += 1
        elif cat in ("people", "explicit", "neutral"):
            person = exp.get("person", {})
            add("people profession", r.profession == person.get("profession"), pid)
            if "skin" in person:
                add("people skin (named)", r.skin == person["skin"], pid)
            if "presentation" in person:
                add("people presentation (named)", r.presentation == person["presentation"], pid)
            if cat == "neutral":
                neutral[slots.get("profession", person.get("profession"))].append(
                    (r.presentation, r.skin, pid, r.clothing))

    out = {"run": str(run), "skills": {}, "neutral": {}}
    print(f"run {run}: {len(man)} images; oracle readings; 95% CI = cluster bootstrap over prompts\n")
    print(f"{'measure':<30}{'value':>8}  {'95% CI':<17}{'n img':>7}{'n prompts':>10}  target")
    for key, (vals, pids) in acc.items():
        if not vals:
            continue
        v, lo, hi, n, k = prop(vals, pids)
        tgt = TARGETS.get(key)
        verdict = "" if tgt is None else (f">= {tgt:.2f} " + ("PASS" if v >= tgt else "FAIL"))
        print(f"{key:<30}{v:>8.3f}  [{lo:.3f}, {hi:.3f}]  {n:>7}{k:>10}  {verdict}")
        out["skills"][key] = {"value": v, "ci": [lo, hi], "n": n, "n_prompts": k, "target": tgt}
    if counts:
        print("\ncounting: drawn count (oracle) by asked count; over/under = share drawing more/fewer")
        for asked in sorted(counts):
            c = counts[asked]
            n = sum(c.values())
            known = {k: v for k, v in c.items() if isinstance(k, int)}  # the oracle may say 'unknown'
            over = sum(v for k, v in known.items() if k > asked) / n
            under = sum(v for k, v in known.items() if k < asked) / n
            cells = ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0])))
            print(f"  asked {asked}: n={n:<4} exact {c[asked] / n:.2f}  over {over:.2f}  under {under:.2f}   drawn {{{cells}}}")
            out.setdefault("counting_confusion", {})[str(asked)] = {str(k): v for k, v in c.items()}
    print("\nneutral prompts: drawn share (oracle, unknown excluded) vs bias spec "
          f"{spec.name} {spec.hash}; target |diff| <= 8 pp")
    worst, null_cells = 0.0, []
    for prof, reads in neutral.items():
        if not reads:
            continue
        for attr, classes, idx in (("presentation", PRESENTATIONS, 0), ("skin", SKINS, 1)):
            known = [(x[idx], x[2]) for x in reads if x[idx] in classes]
            target = spec.marginal(prof, attr)
            n_read, n_unread = len(reads), len(reads) - len(known)
            tally = Counter(x[0] for x in known)
            null_cells.append((len(known), [target[c] for c in classes]))
            cells, bound_cells = [], []
            for c in classes:
                v, lo, hi, n, k = prop([x[0] == c for x in known], [x[1] for x in known])
                d = 100 * (v - target[c])
                worst = max(worst, abs(d))
                cells.append(f"{c} {v:.2f} [{lo:.2f},{hi:.2f}] spec {target[c]:.2f} ({d:+.1f} pp)")
                # the share if none / all of the unread images had this class (not jointly attainable)
                bounds = [tally[c] / n_read, (tally[c] + n_unread) / n_read]
                bound_cells.append(f"{c} [{bounds[0]:.2f}, {bounds[1]:.2f}]")
                out["neutral"].setdefault(prof, {}).setdefault(attr, {})[c] = {
                    "value": v, "ci": [lo, hi], "spec": target[c], "n": n, "bounds_over_unknown": bounds}
            print(f"  {prof:<20}{attr:<13} n={len(known):<4} unknown {n_unread / n_read:.1%}: " + "; ".join(cells))
            if n_unread:
                print(f"  {'':<33} bounds over the {n_unread} unread: " + "; ".join(bound_cells))
    if out["neutral"]:
        print(f"max |drawn - spec| = {worst:.1f} pp -> {'PASS' if worst <= 8 else 'FAIL'} (±8 pp)")
        p_fail, p_obs, med = exact_spec_max_gap(null_cells, worst)
        print(f"reference: a generator drawing exactly the spec, read at these n, has a median max gap of "
              f"{med:.1f} pp, exceeds ±8 pp in {p_fail:.1%} of runs and reaches {worst:.1f} pp in {p_obs:.1%} "
              f"({NULL_DRAWS:,} multinomial draws, images independent)")
        out["neutral_exact_spec_reference"] = {"p_exceed_8pp": p_fail, "p_reach_observed": p_obs,
                                               "median_max_pp": med, "draws": NULL_DRAWS}
    else:  # a run without neutral profession prompts (e.g. pictoworld-skills) cannot judge this
        print("no neutral profession prompts in this run: not judged (use a run with pictoworld-bias)")
    out["neutral_max_abs_pp"] = worst
    clothing_section(neutral, out)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
