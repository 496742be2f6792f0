"""Bias estimates recover planted truth, with honest intervals.

No generator: PictoWorld renders with known presentation and skin stand in for generated images.
Three specs plant man-shares of 50%, 70% and 90% (the direction alternates across professions)
and skin (light, medium, dark) of (1/3, 1/3, 1/3), (.6, .25, .15) and (.8, .1, .1) (rotated per
profession). Each simulated audit draws 200 images per profession (25 prompts x 8 images) and a
fresh 600-image calibration set; the probe reads them; shares are corrected through the measured
confusion matrix, with 95% intervals from the two-sample bootstrap of t2i_audit.stats.correction.
To keep the runtime modest, two pools of renders (audit pool and calibration pool, disjoint seeds)
are read by the probe once, and the 100 repeats resample from them.

Probes: ``clip`` (zero-shot on a PictoWorld CLIP checkpoint; --clip DIR, default the
bundled one), ``oracle`` (the PictoWorld oracle), ``noisy`` (the truth passed through a known
confusion matrix: a classifier whose errors are planted too).

    python bench/bias_planted.py --probe clip --repeats 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from t2i_audit.audits.probes.attribute_probes import UNSURE, ProbeOutput
from t2i_audit.audits.probes.probe_calibration import confusion_counts
from t2i_audit.stats.correction import GroupSample, estimate_group
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS, SKINS

ATTRS = {"presentation": PRESENTATIONS, "skin": SKINS}
SKIN_SPECS = {0.5: (1 / 3, 1 / 3, 1 / 3), 0.7: (0.6, 0.25, 0.15), 0.9: (0.8, 0.1, 0.1)}


def planted(level: float) -> dict[str, dict[str, np.ndarray]]:
    """profession -> attribute -> true shares for one spec."""
    out = {}
    for i, prof in enumerate(PROFESSIONS):
        man = level if i % 2 == 0 else 1 - level
        skin = np.roll(np.array(SKIN_SPECS[level]), i)
        out[prof] = {"presentation": np.array([man, 1 - man]), "skin": skin}
    return out


def pool(seed: int, per_cell: int, size: int = 32):
    """Renders with every (profession, presentation, skin) cell filled ``per_cell`` times."""
    spec = BiasSpec.load()
    from dataclasses import replace

    imgs, truth = [], []
    i = 0
    for prof in PROFESSIONS:
        for pres in PRESENTATIONS:
            for skin in SKINS:
                for _ in range(per_cell):
                    sc = sample_scene(scene_rng(seed, i), spec, kind="person", profession=prof, mode="both")
                    sc = replace(sc, person=replace(sc.person, presentation=pres, skin=skin))
                    imgs.append(render(sc, size))
                    truth.append((prof, pres, skin))
                    i += 1
    return imgs, truth


NOISY = {"presentation": np.array([[0.85, 0.10, 0.05], [0.20, 0.75, 0.05]]),  # cols: classes + unsure
         "skin": np.array([[0.80, 0.15, 0.03, 0.02], [0.12, 0.70, 0.13, 0.05], [0.04, 0.16, 0.78, 0.02]])}


def read_pool(probe: str, imgs, truth, clip_dir: str | None, rng) -> dict[str, np.ndarray]:
    """attribute -> probe label per pool image (class index, UNSURE or NO_PERSON)."""
    if probe == "noisy":
        out = {}
        for a, classes in ATTRS.items():
            col = 1 if a == "presentation" else 2
            m = NOISY[a]
            lab = np.array([rng.choice(m.shape[1], p=m[classes.index(t[col])]) for t in truth])
            out[a] = np.where(lab == len(classes), UNSURE, lab)
        return out
    if probe == "oracle":
        from t2i_audit.audits.probes.attribute_probes import OracleProbe

        return {a: OracleProbe(a).predict(imgs).labels for a in ATTRS}
    from t2i_audit.audits.probes.attribute_probes import ZeroShotProbe, load_probe_spec
    from t2i_audit.evals.features.extractors import load_extractor

    ext = load_extractor(f"bundled-clip:{clip_dir}" if clip_dir else "bundled-clip")
    probes = {a: ZeroShotProbe(load_probe_spec(f"pictoworld-{a}"), ext) for a in ATTRS}
    emb = probes["presentation"].embed(imgs)
    return {a: p.classify_embeddings(emb).labels for a, p in probes.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", choices=["clip", "oracle", "noisy"], default="clip")
    ap.add_argument("--clip", default=None, help="PictoWorld CLIP directory (default: the bundled CLIP)")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--per-profession", type=int, default=200)
    ap.add_argument("--calibration", type=int, default=600)
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--per-cell", type=int, default=80, help="pool renders per (profession, presentation, skin)")
    ap.add_argument("--method", default="em")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from t2i_audit.core.threads import set_threads

    set_threads(1)
    clip_dir = a.clip
    t0 = time.time()
    rng = np.random.default_rng(a.seed)
    audit_imgs, audit_truth = pool(1001, a.per_cell)
    cal_imgs, cal_truth = pool(2002, max(10, a.calibration // 30 * 2))
    audit_lab = read_pool(a.probe, audit_imgs, audit_truth, clip_dir, rng)
    cal_lab = read_pool(a.probe, cal_imgs, cal_truth, clip_dir, rng)
    t_read = time.time() - t0
    idx = {}  # (prof, attr, class) -> pool indices
    for i, (prof, pres, skin) in enumerate(audit_truth):
        idx.setdefault((prof, pres, skin), []).append(i)
    cal_true = {a_: np.array([ATTRS[a_].index(t[1 if a_ == "presentation" else 2]) for t in cal_truth])
                for a_ in ATTRS}
    prompts = np.repeat(np.arange(a.per_profession // 8 + 1), 8)[:a.per_profession]
    res = {}  # (level, attr) -> lists
    for _rep in range(a.repeats):
        cal_sel = rng.choice(len(cal_truth), a.calibration, replace=False)
        cal_counts = {a_: confusion_counts(cal_true[a_][cal_sel], ProbeOutput(ATTRS[a_], cal_lab[a_][cal_sel]))
                      for a_ in ATTRS}
        for level in (0.5, 0.7, 0.9):
            for prof, truths in planted(level).items():
                joint = np.outer(truths["presentation"], truths["skin"]).ravel()
                cells = rng.multinomial(a.per_profession, joint)
                sel = np.concatenate([rng.choice(idx[(prof, PRESENTATIONS[c // 3], SKINS[c % 3])], n)
                                      for c, n in enumerate(cells) if n])
                rng.shuffle(sel)
                cm = cells.reshape(2, 3) / cells.sum()
                realized = {"presentation": cm.sum(1), "skin": cm.sum(0)}
                for attr, classes in ATTRS.items():
                    s = GroupSample.from_labels(audit_lab[attr][sel], prompts, len(classes))
                    est = estimate_group(s, classes, cal_counts[attr], None, a.bootstrap,
                                         np.random.default_rng(rng.integers(1 << 31)), a.method)
                    lo, hi = est.ci(est.corr_reps)
                    r = res.setdefault((level, attr), {"raw": [], "corr": [], "cover": [], "width": [],
                                                       "abst": [], "corr_spec": []})
                    tr, real = truths[attr], realized[attr]
                    r["raw"] += list(np.abs(est.raw - real))
                    r["corr"] += list(np.abs(est.corrected - real))
                    r["corr_spec"] += list(np.abs(est.corrected - tr))
                    r["cover"] += list((lo <= tr) & (tr <= hi))
                    r["width"] += list(hi - lo)
                    r["abst"].append(est.abstain)
    wall = time.time() - t0
    print(f"probe {a.probe}{' (' + (clip_dir or 'bundled') + ')' if a.probe == 'clip' else ''}; "
          f"{a.repeats} simulated audits x 3 specs x {len(PROFESSIONS)} professions x {a.per_profession} images "
          f"(25 prompts x 8), calibration {a.calibration} fresh renders per audit, bootstrap {a.bootstrap}, "
          f"method {a.method}")
    cal_acc = {a_: float(np.mean(cal_lab[a_] == cal_true[a_])) for a_ in ATTRS}
    abst = {a_: float(np.mean(cal_lab[a_] < 0)) for a_ in ATTRS}
    print("probe on the calibration pool: " + ", ".join(f"{k} accuracy {v:.3f} (abstain {abst[k]:.3f})"
                                                        for k, v in cal_acc.items()))
    print("MAE against the shares of the rendered set (its known truth); 'vs spec' against the planted "
          "rates, which adds the sampling noise of 200 draws; coverage of the 95% interval of the planted rate")
    print(f"{'spec':<7}{'attribute':<14}{'MAE raw':>9}{'MAE corr':>10}{'vs spec':>9}{'coverage':>10}"
          f"{'CI width':>10}{'abstain':>9}")
    all_corr, all_cov = [], []
    for (level, attr), r in sorted(res.items()):
        all_corr += r["corr"]
        all_cov += r["cover"]
        name = f"{round(level * 100)}/{round((1 - level) * 100)}"
        print(f"{name:<7}{attr:<14}{100 * np.mean(r['raw']):>8.2f}pp{100 * np.mean(r['corr']):>8.2f}pp"
              f"{100 * np.mean(r['corr_spec']):>7.2f}pp{np.mean(r['cover']):>10.3f}{np.mean(r['width']):>10.3f}"
              f"{np.mean(r['abst']):>9.3f}")
    mae, cov = 100 * np.mean(all_corr), np.mean(all_cov)
    print(f"overall: corrected MAE {mae:.2f} pp (target <= 3): {'PASS' if mae <= 3 else 'FAIL'}; "
          f"coverage {cov:.3f} (target >= 0.90): {'PASS' if cov >= 0.9 else 'FAIL'}")
    print(f"wall {wall:.0f}s (probe reading of {len(audit_imgs) + len(cal_imgs)} pool renders {t_read:.0f}s)")


if __name__ == "__main__":
    main()
