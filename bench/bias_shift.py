"""Label-calibrated (PPI++) bias intervals near shares of 0 and 1 and with few prompts (issue 35,
acceptance 4; the default), and -- with ``--shift`` -- issue 22, acceptance 1-2: bias estimates under
calibration shift, and the shift detector.

Default section (item-level, no renders, a minute or two): groups of P prompts whose true man-share
varies with the wording (prompt i: expit(logit p0 + sd z_i), z_i ~ N(0, 1), sd 0.3 and 0.6), planted
p0 = 1%, 2%, 98%, a probe with planted errors reading every image, 37.5% of the images labelled with
the truth; PPI++ through the audit's own path (``stats.labelled.label_tables`` / ``resample_tables`` /
``ppi_shares``, ``stats.clusters.share_interval``). Checked: prompts-as-sample coverage 0.90-0.98 of
the expected share with P = 5, 10, 20; with 1, 2, 3 prompts "not estimable" (prompts) or covering
>= 90% of the conditional share (these prompts), never zero width. The naive figures beside: the
plain percentile of the same replicates and ppi_py's i.i.d. CLT interval. Exits 1 on FAIL or NaN.

``--shift`` section (renders + bundled CLIP; slow, tens of minutes):

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

    python bench/bias_shift.py                     # PPI++ cells (issue 35)
    python bench/bias_shift.py --shift --repeats 100 --out bias_shift.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from _bias_sim import ATTRS, planted, pool  # bench/ is on sys.path when run as a script
from t2i_audit.audits.engine.share_estimates import NOT_LABELLED
from t2i_audit.audits.probes.attribute_probes import ProbeOutput
from t2i_audit.audits.probes.probe_calibration import confusion_counts
from t2i_audit.stats.clusters import share_interval
from t2i_audit.stats.correction import GroupSample, estimate_group
from t2i_audit.stats.labelled import (
    check_labels,
    confusion_shares,
    label_tables,
    ppi_ci_iid,
    ppi_interval_n,
    ppi_shares,
    replicate_tables,
    resample_tables,
)
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
    """(point, lo, hi) per class of a stats.labelled estimator: cluster bootstrap over prompts and the
    audit's interval (``stats.clusters.share_interval``, prompts as a sample)."""
    t = label_tables(pred, truth, prompts, k)
    reps = replicate_tables(t, np.concatenate(list(cluster_draw_counts(t.U.shape[0], B, seed))))
    point = fn(t.L.sum(0), t.U.sum(0))
    n = min(ppi_interval_n(t.L.sum(0), t.U.sum(0)), t.n_images) if fn is ppi_shares else t.n_images
    lo, hi, *_ = share_interval(point, fn(reps.L, reps.U), n, t.U.shape[0], "prompts")
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



# --- Issue 35, acceptance 4: PPI++ at shares near 0 and 1, prompt-level variation, few prompts ---

PPI_CONF = np.array([[0.90, 0.10], [0.15, 0.85]])  # probe: rows true man, woman; columns read man, woman
PPI_SHARES = (0.01, 0.02, 0.98)
PPI_SDS = (0.3, 0.6)
PPI_SHAPES = ((5, 80), (10, 40), (20, 20))  # prompts x images per prompt: 400 images per group
FEW_PROMPTS = (1, 2, 3)
FEW_PER_PROMPT = 100
LABEL_FRACTION = 0.375  # 150 of 400 labelled, a simple random sample within the group


def ppi_groups(rng, R: int, P: int, m: int, p0: float, sd: float):
    """``R`` labelled groups at once: per-image probe readings, labels (-9 outside the labelled
    subset), prompt ids; and per repeat the conditional (these-prompts) truth."""
    p_i = expit(logit(p0) + sd * rng.standard_normal((R, P)))
    N = P * m
    prompts = np.repeat(np.arange(P), m)
    man = rng.random((R, N)) < p_i[:, prompts]
    read_man = np.where(man, rng.random((R, N)) < PPI_CONF[0, 0], rng.random((R, N)) < PPI_CONF[1, 0])
    pred = np.where(read_man, 0, 1)
    n_lab = int(round(LABEL_FRACTION * N))
    labelled = np.argsort(rng.random((R, N)), axis=1) < n_lab
    truth = np.where(labelled, np.where(man, 0, 1), NOT_LABELLED)
    return pred, truth, prompts, p_i.mean(1)


def ppi_interval(pred, truth, prompts, estimand: str, B: int, rng):
    """The audit's PPI++ path for one group (``audits.engine.share_estimates.attach_labelled``):
    point, share_interval (lo, hi, note), and beside it the naive figures: the plain percentile of the
    same replicates and ppi_py's i.i.d. CLT interval. Man share only."""
    t = label_tables(pred, truth, prompts, 2)
    if check_labels(t, "g"):
        return None
    L, U = t.L.sum(0), t.U.sum(0)
    reps = resample_tables(t, B, rng, estimand)
    point, rp = ppi_shares(L, U), ppi_shares(reps.L, reps.U)
    n = min(ppi_interval_n(L, U), t.n_images)  # the binomial floor on the PPI++ effective size
    lo, hi, _, _, note = share_interval(point, rp, n, t.U.shape[0], estimand)
    plo, phi = np.nanquantile(rp[:, 0], [0.025, 0.975])
    _, ilo, ihi = ppi_ci_iid(L, U)  # every label readable here: P(label = man) is the share
    return point[0], lo[0], hi[0], note, plo, phi, ilo[0], ihi[0]


def ppi_cell(rng, R: int, P: int, m: int, p0: float, sd: float, estimand: str, B: int) -> dict:
    """Coverage (of the expected share for prompts, the conditional share for these-prompts), width,
    NaN and not-estimable counts over ``R`` groups, for PPI++ and the two naive intervals."""
    pred, truth, prompts, cond = ppi_groups(rng, R, P, m, p0, sd)
    target = expected_share(p0, sd) if estimand == "prompts" else None
    rows = {"cov": [], "width": [], "nan": 0, "not_est": 0, "no_labels": 0, "pct_cov": [], "pct_width": [],
            "iid_cov": [], "zero_width": 0, "below": 0}
    for r in range(R):
        res = ppi_interval(pred[r], truth[r], prompts, estimand, B, rng)
        if res is None:
            rows["no_labels"] += 1
            continue
        pt, lo, hi, note, plo, phi, ilo, ihi = res
        tr = target if target is not None else cond[r]
        rows["pct_cov"].append(plo <= tr <= phi)
        rows["pct_width"].append(phi - plo)
        rows["iid_cov"].append(ilo <= tr <= ihi)
        if note:
            rows["not_est"] += 1
            continue
        if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(pt)):
            rows["nan"] += 1
            continue
        rows["cov"].append(lo <= tr <= hi)
        rows["below"] += int(hi < tr)  # the interval lies below the truth
        rows["width"].append(hi - lo)
        rows["zero_width"] += int(hi - lo <= 1e-3)
    return rows


def expected_share(p0: float, sd: float) -> float:
    """E[expit(logit p0 + sd z)], the prompts-as-sample truth (Monte Carlo, 400k draws)."""
    z = np.random.default_rng(12345).standard_normal(400_000)
    return float(expit(logit(p0) + sd * z).mean())


def _mean(x) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def run_ppi(args) -> bool:
    """Print the PPI++ cells; return PASS."""
    rng = np.random.default_rng(args.seed)
    ok = True
    print(f"PPI++ (labels), man share, probe P(read man|man) {PPI_CONF[0, 0]}, P(read woman|woman) "
          f"{PPI_CONF[1, 1]}; {LABEL_FRACTION:.3f} of each group's images labelled (simple random sample); "
          f"prompt i's share expit(logit p0 + sd z_i); B = {args.bootstrap}, {args.ppi_repeats} groups per cell.")
    print("Prompts as a sample (default estimand), >= 5 prompts, 400 images per group; coverage of the expected "
          "share E[expit(logit p0 + sd z)]. Naive beside: the plain percentile of the same cluster replicates "
          "and ppi_py's i.i.d. CLT interval; 'below': share of PPI++ intervals wholly below the truth. PASS: PPI++ coverage 0.90-0.98, no NaN, no zero width.")
    print(f"{'p0':>5}{'sd':>5}{'P x m':>8}{'truth':>8}{'PPI++ cov':>10}{'width':>7}{'min w':>7}{'NaN':>5}"
          f"{'below':>6}{'| pct cov':>10}{'width':>7}{'| iid cov':>10}{'':>6}")
    for p0 in PPI_SHARES:
        for sd in PPI_SDS:
            for P, m in PPI_SHAPES:
                c = ppi_cell(rng, args.ppi_repeats, P, m, p0, sd, "prompts", args.bootstrap)
                cov = _mean(c["cov"])
                good = (0.90 <= cov <= 0.98 and c["nan"] == 0 and c["zero_width"] == 0 and c["not_est"] == 0
                        and c["no_labels"] == 0)
                ok &= good
                print(f"{p0:>5.2f}{sd:>5.1f}{f'{P}x{m}':>8}{expected_share(p0, sd):>8.4f}{cov:>10.3f}"
                      f"{_mean(c['width']):>7.3f}{min(c['width'], default=math.nan):>7.3f}{c['nan']:>5}"
                      f"{c['below'] / max(len(c['cov']), 1):>6.3f}{_mean(c['pct_cov']):>10.3f}{_mean(c['pct_width']):>7.3f}{_mean(c['iid_cov']):>10.3f}"
                      f"{'  ok' if good else '  FAIL'}")
    print(f"\nFew prompts: 1, 2, 3 prompts x {FEW_PER_PROMPT} images, sd 0.6. prompts: every interval must be "
          "'not estimable' (NaN with the note); these-prompts: coverage of the mean of the drawn prompts' shares "
          ">= 0.90, no NaN, no interval narrower than 0.001.")
    print(f"{'p0':>5}{'P':>3}{'prompts: not est.':>18}{'these: cov':>11}{'width':>7}{'min w':>7}{'NaN':>5}"
          f"{'| pct cov':>10}{'min w':>7}{'| iid cov':>10}{'':>6}")
    for p0 in PPI_SHARES:
        for P in FEW_PROMPTS:
            a = ppi_cell(rng, args.few_repeats, P, FEW_PER_PROMPT, p0, 0.6, "prompts", args.bootstrap)
            b = ppi_cell(rng, args.few_repeats, P, FEW_PER_PROMPT, p0, 0.6, "these-prompts", args.bootstrap)
            given = args.few_repeats - a["no_labels"]
            cov = _mean(b["cov"])
            good = (a["not_est"] == given and given > 0 and b["nan"] == 0 and b["zero_width"] == 0
                    and cov >= 0.90 and b["not_est"] == 0)
            ok &= good
            ne = f"{a['not_est']}/{given}"
            print(f"{p0:>5.2f}{P:>3}{ne:>18}{cov:>11.3f}{_mean(b['width']):>7.3f}"
                  f"{min(b['width'], default=math.nan):>7.3f}{b['nan']:>5}{_mean(b['pct_cov']):>10.3f}"
                  f"{min(b['pct_width'], default=math.nan):>7.3f}{_mean(b['iid_cov']):>10.3f}"
                  f"{'  ok' if good else '  FAIL'}")
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
    ap.add_argument("--shift", action="store_true", help="run the slow calibration-shift section (issue 22)")
    ap.add_argument("--ppi-repeats", type=int, default=400, help="groups per PPI++ cell (>= 5 prompts)")
    ap.add_argument("--few-repeats", type=int, default=300, help="groups per few-prompt cell and estimand")
    ap.add_argument("--out", default=None, help="write the figures as JSON to this file")
    args = ap.parse_args()
    from t2i_audit.core.threads import set_threads

    set_threads(1)
    t0 = time.time()
    if not args.shift:
        ok = run_ppi(args)
        print(f"\nacceptance 4 of issue 35 (PPI++ prompts-as-sample coverage 0.90-0.98 at 1%, 2%, 98% with >= 5 "
              f"prompts; 1-3 prompts not estimable or >= 90% these-prompts coverage, never zero width): "
              f"{'PASS' if ok else 'FAIL'}")
        print(f"wall {time.time() - t0:.0f} s, 1 thread")
        sys.exit(0 if ok else 1)
    P = read_pools(args.per_cell, args.cal_per_cell or max(20, 2 * args.calibration // 30), args.clip)
    t_read = time.time() - t0
    acc = pool_accuracy(P)
    raw, flags = simulate(P, args)
    summary = summarise(raw, flags)
    ok = report(summary, acc, args)
    ok &= all(np.isfinite(f[k]) for s in summary.values() for f in s["estimators"].values()
              for k in ("mae_spec_pp", "coverage_spec", "mean_width_pp"))
    wall = time.time() - t0
    print(f"\nacceptance 1-2 (label-calibrated = PPI++, the headline; MAE <= 2 pp, max cell <= 5 pp, coverage 0.90-0.98 vs spec; "
          f"flags none <= 5%, mild/strong >= 95%): {'PASS' if ok else 'FAIL'}")
    print(f"wall {wall:.0f} s (pools read {t_read:.0f} s), 1 torch thread")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "pool_accuracy": acc, "levels": summary,
                                              "pass": ok, "wall_s": wall}, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
