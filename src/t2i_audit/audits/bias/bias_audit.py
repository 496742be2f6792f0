"""The bias audit driver: run probes over a generation run, correct, test, write RUN/audits/.

Groups are the value of the first group slot a prompt has (``profession``, ``occupation``), or its
category. A prompt that states an attribute (slot ``presentation``/``gender`` or ``skin``/
``skin_tone`` with a value the probe knows) is *explicit* for it: its images measure adherence,
not bias, and stay out of the neutral distributions. Tables and statistics: docs/audits.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.audits.engine.bias_tables import group_tables, methodology_text
from t2i_audit.audits.engine.readings import (
    image_table,
    load_images,
    open_run,
    parse_slots,
    write_audit,
)
from t2i_audit.audits.engine.share_estimates import estimate_groups, truths_from_labels
from t2i_audit.audits.probes.attribute_probes import (
    DEFAULT_PROBES,
    JOINT_SEP,
    JointProbe,
    OracleProbe,
    Probe,
    ProbeOutput,
    ZeroShotProbe,
    make_probe,
)
from t2i_audit.audits.probes.probe_calibration import (
    Calibration,
    calibrate_set,
    load_labelled_folder,
    pictoworld_calibration_set,
    predict_all,
)
from t2i_audit.core.config import ConfigBase
from t2i_audit.core.io import read_user_csv
from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import DEFAULT_ESTIMAND, ESTIMAND_TEXT, MIN_PROMPTS, check_estimand, icc_anova

SCHEMA = "t2i-audit/bias/1"
ATTRIBUTE_SLOTS = {"presentation": ("presentation", "gender"), "skin": ("skin", "skin_tone"),
                   "profession": ("profession", "occupation")}
ALIASES = {"male": "man", "female": "woman", "men": "man", "women": "woman"}


@dataclass
class BiasAuditConfig(ConfigBase):
    probes: list[str] = field(default_factory=list)  # empty: by domain (see default_probes)
    clip: str = "bundled-clip"  # evaluator spec for zero-shot probes (evals.features.load_extractor)
    reference: str | None = None  # CSV attribute,group,cls,share; None = uniform
    calibration: str | None = "auto"  # DIR with labels, 'pictoworld', 'none', or 'auto'
    calibration_n: int = 600
    calibration_seed: int = 12345
    training_spec: str | None = "auto"  # bias spec for amplification: 'default', FILE, 'none', 'auto'
    method: str = "em"
    bootstrap: int = 1000
    seed: int = 0
    min_clusters: int = MIN_PROMPTS  # fewer prompts in a group: prompts-as-sample intervals not estimable
    estimand: str = DEFAULT_ESTIMAND  # 'prompts' (prompts as a sample) or 'these-prompts' (stats.clusters)
    adjust: str = "holm"
    test: str = "chi2"
    group_slots: tuple[str, ...] = ("profession", "occupation")
    intersectional: bool = True
    progress: bool = True
    labels: str | None = None  # labels.csv on a random subset of the run's images (label-calibrated)
    shift_test: bool = True  # test whether the calibration images look like the audited ones


def default_probes(domain: str) -> list[str]:
    return list(DEFAULT_PROBES[domain].values())


def build_probes(names: list[str], clip: str | None, extractor=None, progress: bool = False) -> list[Probe]:
    """Probes by name; zero-shot ones share one evaluator (``extractor`` or loaded from ``clip``)."""
    probes = []
    for n in names:
        if extractor is None and not str(n).startswith("oracle"):
            from t2i_audit.evals.features.extractors import load_extractor

            extractor = load_extractor(clip or "bundled-clip")
        probes.append(make_probe(n, extractor) if str(n).startswith("oracle")
                      else make_probe(n, extractor, progress=progress))
    seen = {p.name for p in probes}
    if len(seen) != len(probes):
        raise InputError("--probe: the same probe is named twice; name each once")
    return probes


def add_joint_probes(probes: list[Probe]) -> list[Probe]:
    """Pair every presentation probe with a skin probe of the same kind (intersectional tables)."""
    out = list(probes)
    for a in probes:
        for b in probes:
            if a.attribute == "presentation" and b.attribute == "skin" and type(a) is type(b):
                if isinstance(a, ZeroShotProbe) and a.extractor is not b.extractor:
                    continue
                out.append(JointProbe(a, b))
    return out


def read_reference(path: str | None, probes: list[Probe]) -> dict[tuple[str, str], dict[str, float]]:
    """CSV (attribute, group, cls, share); group '*' applies to every group. Validated."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--reference {p}: file not found; give a CSV with columns attribute,group,cls,share")
    df = read_user_csv(p, "--reference", "give a UTF-8 CSV with columns attribute,group,cls,share",
                       dtype={"group": str, "cls": str, "attribute": str})
    need = {"attribute", "group", "cls", "share"}
    if not need <= set(df.columns):
        raise InputError(f"--reference {p}: needs columns attribute,group,cls,share (has {', '.join(df.columns)})")
    classes = {pr.attribute: pr.classes for pr in probes}
    out = {}
    for (attr, grp), d in df.groupby(["attribute", "group"]):
        if attr not in classes:
            continue
        shares = dict(zip(d["cls"].astype(str), pd.to_numeric(d["share"], errors="coerce")))
        bad = set(shares) - set(classes[attr])
        if bad or any(not np.isfinite(v) or v < 0 for v in shares.values()):
            raise InputError(f"--reference {p}: {attr}/{grp}: classes must be {', '.join(classes[attr])} "
                             f"with shares >= 0 (found {', '.join(map(str, shares))})")
        total = sum(shares.values())
        if abs(total - 1) > 1e-3:
            raise InputError(f"--reference {p}: {attr}/{grp}: shares sum to {total:.4g}, not 1; rescale them")
        out[(attr, str(grp))] = {c: shares.get(c, 0.0) / total for c in classes[attr]}
    return out


def _explicit(slots: dict, attribute: str, classes: tuple[str, ...]) -> str | None:
    for key in ATTRIBUTE_SLOTS.get(attribute, (attribute,)):
        v = slots.get(key)
        if v is not None:
            v = ALIASES.get(str(v), str(v))
            if v in classes:
                return v
    return None


def audit_outputs(outputs: dict[str, ProbeOutput], probes: list[Probe], images: pd.DataFrame,
                  calibrations: dict[str, Calibration], cfg: BiasAuditConfig,
                  reference: dict | None = None, training=None, truths: dict[str, np.ndarray] | None = None
                  ) -> dict:
    """All tables from probe outputs (no images needed: lets benchmarks resample outputs).
    ``truths``: probe name -> per-image label index on the labelled subset (see engine.estimate)."""
    rng = np.random.default_rng(cfg.seed)
    bias_rows, stat_rows = [], []
    prompts = images["prompt_id"].to_numpy()
    for probe in probes:
        cal = calibrations.get(probe.name)
        ests, samples = estimate_groups(outputs[probe.name].labels, prompts, bias_groups(probe, images),
                                        probe.classes, cal.counts if cal else None, cfg, rng,
                                        (truths or {}).get(probe.name))
        b, s = group_tables(probe, ests, samples, cal, reference or {}, training, cfg)
        bias_rows += b
        stat_rows += s
    return {"bias": pd.DataFrame(bias_rows), "stats": pd.DataFrame(stat_rows)}


def bias_groups(probe: Probe, images: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Image masks: ('neutral', group) for prompts stating none of the probe's attributes (and
    ('neutral', 'all') pooling them), ('explicit', 'asked=c') for prompts asking for class c."""
    attrs = probe.attribute.split(JOINT_SEP)
    explicit = [[_explicit(s, a, _classes_of(probe, i)) for s in images["slots"]] for i, a in enumerate(attrs)]
    neutral = np.array([all(e[j] is None for e in explicit) for j in range(len(images))], dtype=bool)
    groups = images["group"].to_numpy()
    masks = {("neutral", g): neutral & (groups == g) for g in sorted(set(groups[neutral]))}
    masks[("neutral", "all")] = neutral
    if len(attrs) == 1:
        for c in probe.classes:
            masks[("explicit", f"asked={c}")] = np.array([e == c for e in explicit[0]], dtype=bool)
    return masks


def _classes_of(probe: Probe, i: int) -> tuple[str, ...]:
    return (probe.a.classes, probe.b.classes)[i] if isinstance(probe, JointProbe) else probe.classes


def _training_spec(cfg: BiasAuditConfig, domain: str):
    from t2i_audit.world.bias import BiasSpec

    ts = cfg.training_spec
    if ts in (None, "none") or (ts == "auto" and domain != "pictoworld"):
        return None
    return BiasSpec.load("default" if ts == "auto" else ts)


def run_bias_audit(run_dir: str | Path, cfg: BiasAuditConfig | None = None, extractor=None,
                   oracle_reader=None, probes: list[Probe] | None = None) -> dict:
    """Audit a run directory; writes RUN/audits/bias*.parquet and bias.json; returns the tables.
    Holds the run's ``.lock`` throughout: one writer per run directory."""
    from t2i_audit.evals.runs.locking import RunLock
    from t2i_audit.evals.runs.sampling import load_run

    load_run(run_dir)  # a complete run, checked before its lock is taken
    with RunLock(run_dir, purpose="audit bias"):
        return _run_bias_audit(run_dir, cfg, extractor, oracle_reader, probes)


def _run_bias_audit(run_dir: str | Path, cfg: BiasAuditConfig | None, extractor, oracle_reader,
                    probes: list[Probe] | None) -> dict:

    cfg = cfg or BiasAuditConfig()
    check_estimand(cfg.estimand)
    run_dir, meta, manifest, domain = open_run(run_dir)
    if probes is None:
        probes = build_probes(cfg.probes or default_probes(domain), cfg.clip, extractor, cfg.progress)
    if oracle_reader is not None:
        probes = [OracleProbe(p.attribute, oracle_reader) if isinstance(p, OracleProbe) else p for p in probes]
    if cfg.intersectional:
        probes = add_joint_probes(probes)
    meta_ids = manifest["image_id"].astype(str).tolist()  # labels may name any image of the run
    grouped = pd.Series([any(k in s for k in cfg.group_slots) for s in parse_slots(manifest)])
    if grouped.any() and not grouped.all():  # a mixed suite: audit only the prompts about people
        manifest = manifest[grouped].reset_index(drop=True)
    images = image_table(manifest, cfg.group_slots)
    reference = read_reference(cfg.reference, probes)
    cal_set = calibration_set(cfg, domain)
    calibrations = calibrate_set(probes, *cal_set) if cal_set else {}
    run_images = load_images(run_dir, manifest)
    outputs = predict_all(probes, run_images)
    training = _training_spec(cfg, domain)
    labels = read_run_labels(cfg.labels, probes, meta_ids) if cfg.labels else None
    truths = truths_from_labels(labels, probes, images["image_id"]) if labels is not None else None
    tables = audit_outputs(outputs, probes, images, calibrations, cfg, reference, training, truths)
    items = pd.concat([pd.DataFrame({"image_id": images["image_id"], "prompt_id": images["prompt_id"],
                                     "group": images["group"], "probe": p.name, "attribute": p.attribute,
                                     "reading": outputs[p.name].names()}) for p in probes], ignore_index=True)
    summary = {
        "schema": SCHEMA, "run_id": meta.get("run_id"), "domain": domain,
        "probe": [p.describe() for p in probes],
        "calibration": {k: {**c.summary(), "counts": c.to_dict()["counts"],
                            "outcomes": c.to_dict()["outcomes"]} for k, c in calibrations.items()},
        "training_spec": ({"name": training.name, "hash": training.hash, "source": training.source}
                          if training else None),
        "reference": cfg.reference or "uniform",
        "estimand": {"name": cfg.estimand, "meaning": ESTIMAND_TEXT[cfg.estimand],
                     "min_prompts": cfg.min_clusters},
        "icc": icc_by_probe(items, {p.name: bias_groups(p, images)[("neutral", "all")] for p in probes}),
        "config": cfg.to_dict(),
        "limits": sorted({p.limits for p in probes if p.limits}),
        "methodology": methodology_text(cfg, bool(calibrations), truths is not None),
        "labels": labels_summary(cfg.labels, labels, truths, tables["bias"]),
        "calibration_shift": shift_records(cfg, probes, run_images, images, cal_set),
        "agreement": probe_agreement(tables["bias"], outputs, probes, images),
    }
    out = write_audit(run_dir, "bias", {"main": tables["bias"], "stats": tables["stats"], "items": items}, summary)
    return {**tables, "items": items, "summary": summary, "out": out}


def icc_by_probe(items: pd.DataFrame, neutral: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Per probe: the prompt-level intraclass correlation of its readings (one-way ANOVA estimator,
    per group and class, weighted by images; abstentions left out) -- the spread between paraphrases
    that ``audit plan --icc`` takes. ``neutral``: per probe, a mask over its rows (in image order) of
    the prompts that leave its attributes unsaid; explicit prompts would count the asked-for class
    as paraphrase spread."""
    out = {}
    for probe, d in items.groupby("probe", sort=False):
        if neutral is not None:
            d = d[np.asarray(neutral[probe], dtype=bool)]
        d = d[(d["group"] != "all") & ~d["reading"].isin(["unsure", "no person"])]
        vals, weights = [], []
        for _, g in d.groupby("group"):
            tab = pd.crosstab(g["prompt_id"], g["reading"]).to_numpy()
            for c in range(tab.shape[1]):
                v = icc_anova(tab[:, c], tab.sum(1))
                if np.isfinite(v):
                    vals.append(v)
                    weights.append(tab.sum())
        out[str(probe)] = round(float(np.average(vals, weights=weights)), 4) if vals else float("nan")
    return out


def calibration_set(cfg: BiasAuditConfig, domain: str) -> tuple[list, pd.DataFrame, str] | None:
    """The labelled calibration images (images, label table, source), or None without calibration.
    Built once: the probes are calibrated on it and the shift test compares the run against it."""
    c = cfg.calibration
    if c in (None, "none") or (c == "auto" and domain != "pictoworld"):
        return None
    if c in ("auto", "pictoworld"):
        return pictoworld_calibration_set(cfg.calibration_n, cfg.calibration_seed)
    if not Path(c).is_dir():
        raise InputError(f"--calibration {c}: not a directory; give a folder with labels.csv or a "
                         "`t2i-audit world render` output, 'pictoworld' or 'none'")
    return load_labelled_folder(c)


def probe_agreement(bias: pd.DataFrame, outputs: dict[str, ProbeOutput] | None = None,
                    probes: list[Probe] | None = None, images: pd.DataFrame | None = None) -> list[dict]:
    """Where two probes read the same attribute, per neutral group: max |difference| of their best
    estimates (each over the images it answered), and, given the per-image outputs, the same on the
    images *both* answered (raw shares: the probes' disagreement about what they see, without the
    effect of abstaining on different images) with the per-image agreement rate."""
    if bias.empty:
        return []
    rows = []
    best = bias.assign(best=bias["corrected"].where(bias["corrected"].notna(), bias["raw"]))
    by_name = {p.name: p for p in probes or []}
    for (attr, grp), d in best[best.section == "neutral"].groupby(["attribute", "group"]):
        ps = sorted(d["probe"].unique())
        for i, a in enumerate(ps):
            for b in ps[i + 1:]:
                x = d[d.probe == a].set_index("cls")["best"]
                y = d[d.probe == b].set_index("cls")["best"]
                row = {"attribute": attr, "group": grp, "probes": [a, b],
                       "max_abs_diff": float((x - y).abs().max())}
                if outputs is not None and images is not None and a in by_name and b in by_name:
                    row["common"] = _common_agreement(outputs[a], outputs[b], by_name[a], attr, grp, images)
                rows.append(row)
    return rows


def _common_agreement(oa: ProbeOutput, ob: ProbeOutput, pa: Probe, attr: str, grp: str,
                      images: pd.DataFrame) -> dict:
    if oa.classes != ob.classes:
        return {"n": 0, "note": "the probes' classes differ"}
    neutral = np.array([_explicit(s, attr, pa.classes) is None for s in images["slots"]])
    sel = neutral & ((images["group"] == grp).to_numpy() if grp != "all" else True)
    la, lb = oa.labels[sel], ob.labels[sel]
    both = (la >= 0) & (lb >= 0)
    n = int(both.sum())
    if n == 0:
        return {"n": 0}
    k = len(oa.classes)
    sa = np.bincount(la[both], minlength=k) / n
    sb = np.bincount(lb[both], minlength=k) / n
    return {"n": n, "n_group": int(sel.sum()), "max_abs_diff": float(np.abs(sa - sb).max()),
            "per_image_agreement": float(np.mean(la[both] == lb[both]))}


def read_run_labels(path: str, probes: list[Probe], image_ids: list[str]) -> pd.DataFrame:
    """labels.csv for this run's images, validated against the probes' classes."""
    from t2i_audit.audits.labels.labelling import read_labels

    classes = {p.attribute: list(p.classes) for p in probes if JOINT_SEP not in p.attribute}
    df = read_labels(path, classes=classes, image_ids=image_ids)
    if not set(df["attribute"]) & set(classes):
        raise InputError(f"--labels {path}: labels for {', '.join(sorted(set(df['attribute']))) or 'nothing'}; "
                         f"the probes read {', '.join(sorted(classes))}")
    return df


def labels_summary(path: str | None, labels: pd.DataFrame | None, truths: dict | None,
                   bias: pd.DataFrame) -> dict | None:
    """What the label-calibrated estimates rest on: the file, valid labels per probe and group, and
    groups with too few labels."""
    if labels is None:
        return None
    per_group = {}
    if "n_labelled" in bias:
        neu = bias[bias.section == "neutral"].drop_duplicates(["probe", "group"])
        for probe, d in neu.groupby("probe"):
            d = d[d["n_labelled"].notna()]  # a probe without labels (labels.csv names other attributes)
            if len(d):
                per_group[probe] = {str(g): int(n) for g, n in zip(d["group"], d["n_labelled"])}
    return {"source": str(path), "n_rows": int(len(labels)),
            "n_valid": {k: int((v >= 0).sum()) for k, v in (truths or {}).items()},
            "per_group": per_group, "headline": "label-calibrated (PPI++)",
            "too_few": sorted({f"{p}/{g}" for p, gs in per_group.items() for g, n in gs.items() if n < 10})}


def shift_records(cfg: BiasAuditConfig, probes: list[Probe], run_images: list, images: pd.DataFrame,
                  cal_set: tuple | None) -> list[dict]:
    if not cfg.shift_test or cal_set is None:
        return []
    from t2i_audit.audits.engine.calibration_shift import calibration_shift

    cal_imgs, table, _ = cal_set
    cal_groups = list(table["profession"]) if "profession" in table.columns else None
    single = [p for p in probes if not isinstance(p, JointProbe)]
    return calibration_shift(single, cal_imgs, cal_groups, run_images, list(images["group"]), cfg.seed,
                             run_prompts=images["prompt_id"].to_numpy())
