"""Rendered frequencies of presentation and skin per profession for neutral captions, against the
bias spec: each rendered share should fall inside its 95% interval around the spec's share.

Scenes are drawn as the training stream draws neutral person scenes (``sample_scene(kind='person',
mode='neutral')``, scene i from ``scene_rng(seed, i)``), turned into manifest rows with
``scene_row`` and counted from the manifest's ``profession``/``presentation``/``skin`` columns.
With ``oracle=True`` each scene is also rendered and read back by the oracle, and the oracle's
frequencies (among non-abstained readings) are reported beside the truth.
"""

from __future__ import annotations

from collections import Counter

from t2i_audit.stats.resampling import wilson_interval
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.dataset import scene_row
from t2i_audit.world.scene import sample_scene, scene_rng
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS, SKINS


def neutral_frequencies(n: int, spec: BiasSpec | None = None, *, seed: int = 0, size: int = 32,
                        tolerance_pp: float = 2.0, oracle: bool = False, progress: bool = True) -> dict:
    from tqdm import tqdm

    spec = spec or BiasSpec.load()
    counts: dict[str, Counter] = {p: Counter() for p in PROFESSIONS}
    read: dict[str, Counter] = {p: Counter() for p in PROFESSIONS}
    if oracle:
        from t2i_audit.world.oracle import read_image
        from t2i_audit.world.render import render
    for i in tqdm(range(n), desc="sample", unit="scene", disable=not progress):
        scene = sample_scene(scene_rng(seed, i), spec, kind="person", mode="neutral")
        row = scene_row(scene, index=i, seed=seed, size=size, spec_hash=spec.hash)
        prof = row["profession"]
        counts[prof]["n"] += 1
        counts[prof][("presentation", row["presentation"])] += 1
        counts[prof][("skin", row["skin"])] += 1
        if oracle:
            r = read_image(render(scene, size))
            for attr in ("presentation", "skin"):
                v = getattr(r, attr)
                if v and v != "unknown":
                    read[prof][(attr, "n")] += 1
                    read[prof][(attr, v)] += 1
    rows = []
    for prof in PROFESSIONS:
        m = counts[prof]["n"]
        for attr, classes in (("presentation", PRESENTATIONS), ("skin", SKINS)):
            target = spec.marginal(prof, attr)
            for c in classes:
                k = counts[prof][(attr, c)]
                lo, hi = wilson_interval(k, m, nan_if_empty=True)
                freq = k / m if m else float("nan")
                diff = 100 * (freq - target[c])
                row = {"profession": prof, "attribute": attr, "class": c, "n": m, "spec": target[c],
                       "rendered": freq, "ci_low": lo, "ci_high": hi, "diff_pp": diff,
                       "diff_ci_low_pp": 100 * (lo - target[c]), "diff_ci_high_pp": 100 * (hi - target[c]),
                       "within_tolerance": bool(abs(diff) <= tolerance_pp)}
                if oracle:
                    rn = read[prof][(attr, "n")]
                    row["oracle"] = read[prof][(attr, c)] / rn if rn else float("nan")
                    row["oracle_n"] = rn
                rows.append(row)
    return {
        "schema": "t2i-audit/world-stats/1",
        "n": n, "seed": seed, "tolerance_pp": tolerance_pp,
        "bias_spec": {"name": spec.name, "version": spec.version, "hash": spec.hash},
        "method": "neutral-caption person scenes (sample_scene kind=person mode=neutral); frequencies "
                  "from the manifest columns; 95% Wilson interval on each frequency, shifted by the "
                  "spec value for the difference",
        "max_abs_diff_pp": max(abs(r["diff_pp"]) for r in rows),
        "all_within_tolerance": all(r["within_tolerance"] for r in rows),
        "rows": rows,
    }


def format_stats(res: dict) -> str:
    oracle = any("oracle" in r for r in res["rows"])
    head = (f"{'profession':<20}{'attribute':<13}{'class':<8}{'spec':>7}{'rendered':>10}"
            f"{'diff pp':>9}  {'95% CI (pp)':<16}{'n':>7}" + (f"{'oracle':>9}" if oracle else ""))
    lines = [f"bias spec {res['bias_spec']['name']} ({res['bias_spec']['hash']}), n={res['n']}, "
             f"seed={res['seed']}, tolerance ±{res['tolerance_pp']:g} pp", head]
    for r in res["rows"]:
        ci = f"[{r['diff_ci_low_pp']:+.2f}, {r['diff_ci_high_pp']:+.2f}]"
        line = (f"{r['profession']:<20}{r['attribute']:<13}{r['class']:<8}{100 * r['spec']:>6.1f}%"
                f"{100 * r['rendered']:>9.2f}%{r['diff_pp']:>+9.2f}  {ci:<16}{r['n']:>7}")
        if oracle:
            line += f"{100 * r['oracle']:>8.2f}%"
        lines.append(line + ("" if r["within_tolerance"] else "  OUT"))
    verdict = "all within" if res["all_within_tolerance"] else "NOT all within"
    lines.append(f"max |diff| = {res['max_abs_diff_pp']:.2f} pp: {verdict} ±{res['tolerance_pp']:g} pp")
    return "\n".join(lines)
