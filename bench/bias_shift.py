"""Issue 22, acceptance 1-2: bias estimates under calibration shift, and the shift detector.

No generator: PictoWorld renders with planted (profession, presentation, skin) stand in for
generated images, degraded like generated images at three levels (``world.corrupt``):
none; mild = blur 0.7 px + noise sigma 0.03; strong = blur 1.2 px + noise sigma 0.06.
Specs: the three of ``bench/bias_planted.py`` (man-share 50/70/90%, skin (1/3)^3, (.6,.25,.15),
(.8,.1,.1), rotated per profession). Each simulated audit draws N images per profession
(N/8 prompts x 8 images; default N = 800) from a render pool, and a seeded random subset of 150
per profession is labelled by the PictoWorld oracle (its 'unsure' dropped). The oracle reads the
clean render of each labelled image (a stand-in for a human, who reads what was drawn); the same
estimator with the oracle reading the degraded image is shown too (at 'strong' the oracle errs).
The probe is the zero-shot CLIP probe (pictoworld-presentation, pictoworld-skin, bundled CLIP).

Estimators per profession and attribute: raw probe shares; clean-calibrated (confusion matrix of
600 clean renders drawn per audit, EM, two-sample bootstrap: ``stats.correction``, as today);
label-calibrated PPI++ and per-group confusion (``stats.labelled``, cluster bootstrap over prompts).
Acceptance is checked on the two '(labels)' estimators and on each probe's shift record.
Errors against the planted spec shares and against the realized shares of the audited sample.
Coverage estimand: the planted spec share (the audit's claim is about the generator's
distribution; the intervals resample prompts, i.e. include the sampling of the N images); coverage
of the realized share is printed too. Shift detector (``stats.shift``): per probe, the 600 clean
calibration renders vs the audit's images, CLIP embeddings stratified by (profession, read
presentation, read skin) + KS on the probe's margins, Bonferroni, alpha 0.05.

Pools are rendered and read once; repeats resample them.

    python bench/bias_shift.py --repeats 100 --out bias_shift.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bias_planted import ATTRS, planted, pool  # bench/ is on sys.path when run as a script
from t2i_audit.audits.probes.attribute_probes import ProbeOutput
from t2i_audit.audits.probes.probe_calibration import confusion_counts
from t2i_audit.stats.correction import GroupSample, estimate_group
from t2i_audit.stats.labelled import confusion_shares, label_tables, ppi_shares, replicate_tables
from t2i_audit.stats.resampling import cluster_draw_counts
from t2i_audit.stats.shift import detect_shift
from t2i_audit.world.corrupt import corrupt
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS, SKINS

LEVELS = {"none": "", "mild": "blur:0.7,noise:0.03", "strong": "blur:1.2,noise:0.06"}
SPECS = (0.5, 0.7, 0.9)
ESTIMATORS = ("raw", "clean-calibrated", "PPI++ (labels)", "group confusion (labels)",
              "PPI++ (degraded oracle)")
COL = {"presentation": 1, "skin": 2}


def read_images(imgs, probes, oracle: bool):
    """CLIP embeddings, per attribute CLIP labels and margins, and (optionally) oracle labels."""
    from t2i_audit.audits.probes.attribute_probes import OracleProbe

    emb = probes["presentation"].embed(imgs)
    outs = {a: p.classify_embeddings(emb) for a, p in probes.items()}
    rd = {"emb": emb, "clip": {a: o.labels for a, o in outs.items()},
          "margin": {a: o.margins for a, o in outs.items()}}
    if oracle:
        rd["oracle"] = {a: OracleProbe(a).predict(imgs).labels for a in ATTRS}
    return rd


def read_pools(per_cell: int, cal_per_cell: int, clip_dir: str | None):
    """Render the audit pool once, degrade it at every level, read it; read a clean calibration pool."""
    from t2i_audit.audits.probes.attribute_probes import ZeroShotProbe, load_probe_spec
    from t2i_audit.evals.features.extractors import load_extractor

    ext = load_extractor(f"bundled-clip:{clip_dir}" if clip_dir else "bundled-clip")
    probes = {a: ZeroShotProbe(load_probe_spec(f"pictoworld-{a}"), ext) for a in ATTRS}
    imgs, truth = pool(1001, per_cell)
    true = {a: np.array([ATTRS[a].index(t[COL[a]]) for t in truth]) for a in ATTRS}
    levels = {}
    for name, spec in LEVELS.items():
        deg = [corrupt(im, spec, seed=50_000 + i) for i, im in enumerate(imgs)] if spec else imgs
        levels[name] = read_images(deg, probes, oracle=True)
    cal_imgs, cal_truth = pool(2002, cal_per_cell)
    cal = read_images(cal_imgs, probes, oracle=False)
    cal["true"] = {a: np.array([ATTRS[a].index(t[COL[a]]) for t in cal_truth]) for a in ATTRS}
    cal["group"] = np.array([PROFESSIONS.index(t[0]) for t in cal_truth])
    cells = {}
    for i, t in enumerate(truth):
        cells.setdefault(t, []).append(i)
    group = np.array([PROFESSIONS.index(t[0]) for t in truth])
    return {"true": true, "group": group, "levels": levels, "cal": cal, "cells": {k: np.array(v) for k, v in cells.items()}}


def draw_audit(rng, cells, level: float, n_per: int):
    """Indices of one audit (n_per per profession, drawn with replacement from the pool cells, in
    random order: prompt i of a profession holds its images 8i..8i+7), groups, prompts, realized shares."""
    sel, group, real = [], [], {}
    for g, (prof, truths) in enumerate(planted(level).items()):
        joint = np.outer(truths["presentation"], truths["skin"]).ravel()
        counts = rng.multinomial(n_per, joint)
        mine = [rng.choice(cells[(prof, PRESENTATIONS[c // 3], SKINS[c % 3])], n) for c, n in enumerate(counts)]
        sel.append(rng.permutation(np.concatenate(mine)))
        group += [g] * n_per
        cm = counts.reshape(2, 3) / n_per
        real[g] = {"presentation": cm.sum(1), "skin": cm.sum(0)}
    sel = np.concatenate(sel)
    group = np.array(group)
    prompts = group * 1000 + np.tile(np.arange(n_per) // 8, len(PROFESSIONS))
    return sel, group, prompts, real


def labelled_estimate(fn, pred, truth, prompts, k: int, B: int, seed: int):
    """(point, lo, hi) per class of a stats.labelled estimator, percentile cluster bootstrap."""
    t = label_tables(pred, truth, prompts, k)
    reps = replicate_tables(t, np.concatenate(list(cluster_draw_counts(t.U.shape[0], B, seed))))
    point = fn(t.L.sum(0), t.U.sum(0))
    lo, hi = np.nanquantile(fn(reps.L, reps.U), [0.025, 0.975], axis=0)
    return point, lo, hi


def estimates(rd, clean, sel, group, prompts, cal_counts, n_labels, B, rng):
    """attribute -> estimator -> (point, lo, hi), each (groups, classes). Labels: the oracle's reading
    of the clean render of each labelled image (``clean``), or of the degraded image itself (last)."""
    G = len(PROFESSIONS)
    labelled = np.zeros(len(sel), dtype=bool)
    for g in range(G):
        labelled[rng.choice(np.flatnonzero(group == g), n_labels, replace=False)] = True
    out = {}
    for attr, classes in ATTRS.items():
        k = len(classes)
        pred = np.where(rd["clip"][attr][sel] >= 0, rd["clip"][attr][sel], -1).astype(np.int64)
        label = np.where(clean["oracle"][attr][sel] >= 0, clean["oracle"][attr][sel], -1).astype(np.int64)
        label_deg = np.where(rd["oracle"][attr][sel] >= 0, rd["oracle"][attr][sel], -1).astype(np.int64)
        res = {e: np.zeros((3, G, k)) for e in ESTIMATORS}
        for g in range(G):
            m = group == g
            est = estimate_group(GroupSample.from_labels(rd["clip"][attr][sel][m], prompts[m], k), classes,
                                 cal_counts[attr], None, B, np.random.default_rng(rng.integers(1 << 31)))
            res["raw"][:, g] = (est.raw, *est.ci(est.raw_reps))
            res["clean-calibrated"][:, g] = (est.corrected, *est.ci(est.corr_reps))
        seed = int(rng.integers(1 << 31))
        for name, fn, lab in (("PPI++ (labels)", ppi_shares, label),
                               ("group confusion (labels)", confusion_shares, label),
                               ("PPI++ (degraded oracle)", ppi_shares, label_deg)):
            for g in range(G):
                m = group == g
                res[name][:, g] = labelled_estimate(fn, pred[m], np.where(labelled[m], lab[m], -9), prompts[m], k, B,
                                                    seed + g)
        out[attr] = res
    return out


def shift_flags(rd, cal, cal_sel, sel, pool_group, seed: int, permutations: int):
    """Per probe: the detector's ShiftResult, clean calibration draw vs the audit's distinct images
    (an audit draws pool images with replacement; a repeated image would look like a shift)."""
    def strata(r, idx, grp):
        return grp * 100 + r["clip"]["presentation"][idx] * 10 + r["clip"]["skin"][idx]

    u = np.unique(sel)
    sc, sr = strata(cal, cal_sel, cal["group"][cal_sel]), strata(rd, u, pool_group[u])
    return {a: detect_shift(cal["emb"][cal_sel], rd["emb"][u], cal["margin"][a][cal_sel], rd["margin"][a][u],
                            permutations=permutations, seed=seed, calib_strata=sc, run_strata=sr)
            for a in ATTRS}


def simulate(P, args):
    """Run the repeats; returns level -> estimator -> cell arrays, and level -> probe -> flags."""
    rng = np.random.default_rng(args.seed)
    acc = {lv: {e: {"err_spec": [], "err_real": [], "cov_spec": [], "cov_real": [], "width": [], "cell": []}
                for e in ESTIMATORS} for lv in LEVELS}
    flags = {lv: {a: [] for a in ATTRS} for lv in LEVELS}
    cal = P["cal"]
    for rep in range(args.repeats):
        cal_sel = rng.choice(len(cal["emb"]), args.calibration, replace=False)
        cal_counts = {a: confusion_counts(cal["true"][a][cal_sel], ProbeOutput(c, cal["clip"][a][cal_sel]))
                      for a, c in ATTRS.items()}
        for si, level in enumerate(SPECS):
            spec = planted(level)
            for lv, rd in P["levels"].items():
                sel, group, prompts, real = draw_audit(rng, P["cells"], level, args.per_profession)
                est = estimates(rd, P["levels"]["none"], sel, group, prompts, cal_counts, args.labels, args.bootstrap, rng)
                for a, r in shift_flags(rd, cal, cal_sel, sel, P["group"], int(rng.integers(1 << 31)),
                                        args.permutations).items():
                    flags[lv][a].append(r)
                for attr, res in est.items():
                    tr = np.stack([spec[p][attr] for p in PROFESSIONS])
                    rl = np.stack([real[g][attr] for g in range(len(PROFESSIONS))])
                    cell = np.arange(tr.size) + 100 * si + (0 if attr == "presentation" else 50)
                    for e, (pt, lo, hi) in res.items():
                        d = acc[lv][e]
                        d["err_spec"] += list((pt - tr).ravel())
                        d["err_real"] += list((pt - rl).ravel())
                        d["cov_spec"] += list(((lo <= tr) & (tr <= hi)).ravel())
                        d["cov_real"] += list(((lo <= rl) & (rl <= hi)).ravel())
                        d["width"] += list((hi - lo).ravel())
                        d["cell"] += list(cell)
        if (rep + 1) % 10 == 0:
            print(f"  repeat {rep + 1}/{args.repeats}", flush=True)
    return acc, flags


def summarise(acc, flags):
    """Figures per level x estimator (pp), and the detector's flag rate per level and probe."""
    out = {}
    for lv, per in acc.items():
        out[lv] = {"estimators": {}, "shift": {}}
        for e, d in per.items():
            cell = np.array(d["cell"])
            es, er = np.abs(np.array(d["err_spec"])), np.abs(np.array(d["err_real"]))
            cells = np.unique(cell)
            out[lv]["estimators"][e] = {
                "n_cells": int(cells.size), "n_estimates": int(es.size),
                "mae_spec_pp": 100 * float(np.nanmean(es)), "mae_real_pp": 100 * float(np.nanmean(er)),
                "max_cell_mae_spec_pp": 100 * float(max(np.nanmean(es[cell == c]) for c in cells)),
                "max_cell_mae_real_pp": 100 * float(max(np.nanmean(er[cell == c]) for c in cells)),
                "coverage_spec": float(np.mean(d["cov_spec"])), "coverage_real": float(np.mean(d["cov_real"])),
                "mean_width_pp": 100 * float(np.nanmean(d["width"]))}
        for a, rs in flags[lv].items():
            k, n = sum(r.detected for r in rs), len(rs)
            out[lv]["shift"][a] = {"flag_rate": k / n, "n_audits": n, "median_p": float(np.median([r.p_value for r in rs])),
                                   "n_calib": rs[0].n_calib, "n_run": rs[0].n_run}
        anyf = [any(flags[lv][a][i].detected for a in ATTRS) for i in range(len(flags[lv]["skin"]))]
        out[lv]["shift"]["any_probe"] = {"flag_rate": float(np.mean(anyf)), "n_audits": len(anyf)}
    return out


def pool_accuracy(P):
    """Per level and attribute: CLIP and oracle accuracy on the whole audit pool, abstention rates."""
    out = {}
    for lv, rd in P["levels"].items():
        for a in ATTRS:
            t, c, o = P["true"][a], rd["clip"][a], rd["oracle"][a]
            out[f"{lv}/{a}"] = {"n": int(t.size), "clip_acc": float(np.mean(c == t)),
                                "clip_abstain": float(np.mean(c < 0)),
                                "oracle_acc_answered": float(np.mean(o[o >= 0] == t[o >= 0])),
                                "oracle_unsure": float(np.mean(o < 0))}
    return out


def report(summary, acc, args) -> bool:
    """Print the tables; return whether acceptance 1-2 pass."""
    from t2i_audit.stats.resampling import wilson_interval

    print("\npool reads (n = images per level): " + "; ".join(
        f"{k} CLIP {v['clip_acc']:.3f} oracle {v['oracle_acc_answered']:.3f} (unsure {v['oracle_unsure']:.3f})"
        for k, v in acc.items()))
    print(f"\n{args.repeats} audits x 3 specs per level; {len(PROFESSIONS)} professions x {args.per_profession} "
          f"images ({args.per_profession // 8} prompts x 8), {args.labels} oracle labels per profession; "
          f"clean calibration {args.calibration}; B = {args.bootstrap}. Errors in pp; 'max cell' = the largest "
          "per-cell MAE over the repeats; coverage of the 95% interval (estimand: spec share; realized in [])")
    hdr = f"{'level':<7}{'estimator':<26}{'MAE spec':>9}{'MAE real':>9}{'max cell':>9}{'[real]':>8}" \
          f"{'coverage':>10}{'[real]':>8}{'width':>7}"
    print(hdr)
    ok = True
    for lv, s in summary.items():
        for e, f in s["estimators"].items():
            print(f"{lv:<7}{e:<26}{f['mae_spec_pp']:>9.2f}{f['mae_real_pp']:>9.2f}{f['max_cell_mae_spec_pp']:>9.2f}"
                  f"{f['max_cell_mae_real_pp']:>8.2f}{f['coverage_spec']:>10.3f}{f['coverage_real']:>8.3f}"
                  f"{f['mean_width_pp']:>7.1f}")
            if e == "PPI++ (labels)":  # the audit's headline label-calibrated estimate
                ok &= f["mae_spec_pp"] <= 2 and f["max_cell_mae_spec_pp"] <= 5 and 0.90 <= f["coverage_spec"] <= 0.98
    print("\nshift detector flag rate (clean calibration vs audit; alpha 0.05, Bonferroni over MMD² + KS):")
    for lv, s in summary.items():
        parts = []
        for a, f in s["shift"].items():
            k = round(f["flag_rate"] * f["n_audits"])
            lo, hi = wilson_interval(k, f["n_audits"])
            parts.append(f"{a} {f['flag_rate']:.3f} [{lo:.3f}, {hi:.3f}] (n={f['n_audits']})")
            if a != "any_probe":
                ok &= f["flag_rate"] <= 0.05 if lv == "none" else f["flag_rate"] >= 0.95
        print(f"  {lv:<7}" + "; ".join(parts))
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default=None, help="PictoWorld CLIP directory (default: the bundled one)")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--per-profession", type=int, default=800, help="audited images per profession (N)")
    ap.add_argument("--labels", type=int, default=150, help="oracle-labelled images per profession")
    ap.add_argument("--calibration", type=int, default=600, help="clean calibration renders per audit")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=100)
    ap.add_argument("--per-cell", type=int, default=240, help="audit-pool renders per (profession, "
                    "presentation, skin); audits draw from them with replacement")
    ap.add_argument("--cal-per-cell", type=int, default=160,
                    help="calibration-pool renders per (profession, presentation, skin); a pool much larger "
                         "than one calibration set keeps the audits' calibration draws nearly independent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON to this file")
    args = ap.parse_args()
    from t2i_audit.core.threads import set_threads

    set_threads(1)
    t0 = time.time()
    P = read_pools(args.per_cell, args.cal_per_cell or max(20, 2 * args.calibration // 30), args.clip)
    t_read = time.time() - t0
    acc = pool_accuracy(P)
    raw, flags = simulate(P, args)
    summary = summarise(raw, flags)
    ok = report(summary, acc, args)
    wall = time.time() - t0
    print(f"\nacceptance 1-2 (label-calibrated = PPI++, the headline; MAE <= 2 pp, max cell <= 5 pp, coverage 0.90-0.98 vs spec; "
          f"flags none <= 5%, mild/strong >= 95%): {'PASS' if ok else 'FAIL'}")
    print(f"wall {wall:.0f} s (pools read {t_read:.0f} s), 1 torch thread")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "pool_accuracy": acc, "levels": summary,
                                              "pass": ok, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
