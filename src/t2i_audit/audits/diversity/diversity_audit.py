"""The diversity audit: attributes the prompt leaves open, per prompt group, against the training
(or a reference) distribution -- the attribute-audit engine with non-demographic attributes.

On PictoWorld the oracle reads clothing colour (drawn uniformly from four colours in training,
never named in a caption) and background lightness (thirds of the training grey range, uniform);
for real models any zero-shot or callable probe. Per group: class shares with cluster-bootstrap
intervals, missing modes, entropy ratio, TV distance to training, and a chi-square goodness-of-fit
test (Rao-Scott design effect, Holm across groups). Writes RUN/audits/diversity{,_stats}.parquet and
diversity.json with ``findings``. Rule for ``flagged`` (stated in the output): adjusted p < alpha
and (a mode is missing, or the TV interval lies above ``tv_flag``); a mode is missing when the upper
95% bound of its share is below ``missing_fraction`` x its training share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.audits.engine.bias_tables import group_tables
from t2i_audit.audits.engine.readings import image_table, load_images, open_run, write_audit
from t2i_audit.audits.engine.share_estimates import estimate_groups
from t2i_audit.audits.probes.attribute_probes import BACKGROUND_BINS, Probe, make_probe
from t2i_audit.audits.probes.probe_calibration import predict_all
from t2i_audit.core.config import ConfigBase
from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import (
    DEFAULT_ESTIMAND,
    ESTIMAND_TEXT,
    MIN_PROMPTS,
    check_estimand,
    interval_method,
)
from t2i_audit.stats.distribution import normalized_entropy, total_variation
from t2i_audit.stats.resampling import finite_percentile_interval

SCHEMA = "t2i-audit/diversity/1"


@dataclass
class DiversityAuditConfig(ConfigBase):
    probes: list[str] = field(default_factory=list)  # empty: DEFAULT_PROBES of the run's domain
    clip: str = "bundled-clip"
    reference: str | None = None  # CSV attribute,group,cls,share; None: the training distribution
    bootstrap: int = 1000
    seed: int = 0
    min_clusters: int = MIN_PROMPTS  # fewer prompts in a group: prompts-as-sample intervals not estimable
    estimand: str = DEFAULT_ESTIMAND  # 'prompts' or 'these-prompts' (stats.clusters)
    adjust: str = "holm"
    test: str = "chi2"
    method: str = "em"
    alpha: float = 0.05
    missing_fraction: float = 0.25
    tv_flag: float = 0.1
    group_slots: tuple[str, ...] = ("profession", "occupation")
    features: str = "auto"  # evaluator for P/R, D/C and Vendi: a --features spec, 'none', or 'auto' (= clip)
    reference_min: int = 200  # reference renders per group (PictoWorld), at least the group's images
    k_dc: int = 5
    progress: bool = True



# The attributes prompts usually leave open, audited when no probe is named: the PictoWorld oracle's
# readings, or for real runs zero-shot CLIP probes (audits/probes/real-*.yaml).
DEFAULT_PROBES = {"pictoworld": ["oracle-clothing", "oracle-background"],
                  "real": ["real-background", "real-age-group", "real-clothing-colour"]}


def training_distribution(attribute: str, classes) -> np.ndarray | None:
    """PictoWorld's training distribution of an open attribute (both drawn uniformly)."""
    from t2i_audit.world.vocab import CLOTHING

    if attribute == "clothing" and tuple(classes) == tuple(CLOTHING):
        return np.full(len(CLOTHING), 1 / len(CLOTHING))
    if attribute == "background" and tuple(classes) == BACKGROUND_BINS:
        from t2i_audit.world.vocab import BACKGROUND_RANGE

        lo, hi = BACKGROUND_RANGE
        counts = np.bincount([min(2, (v - lo) * 3 // (hi - lo + 1)) for v in range(lo, hi + 1)], minlength=3)
        return counts / counts.sum()
    return None


def probe_findings(probe: Probe, ests: dict, stats: pd.DataFrame, ref: np.ndarray, cfg) -> list[dict]:
    """Findings rows for one probe: missing modes, entropy ratio, TV, adjusted p, shares (with their
    training share in ``reference``), flag."""
    rows = []
    pcol = f"{cfg.test}_p_{cfg.adjust}"
    for (_, group), est in ests.items():
        lo, hi, _, _, note = est.interval(est.raw, est.raw_reps)
        pct = (lambda r: (np.nan, np.nan)) if note else finite_percentile_interval
        missing = [c for i, c in enumerate(probe.classes) if hi[i] < cfg.missing_fraction * ref[i]]
        miss_reps = (est.raw_reps < cfg.missing_fraction * ref).sum(1)
        h_ref = normalized_entropy(ref)  # same K: the ratio of normalised entropies is H(p) / H(training)
        ratio, ratio_reps = normalized_entropy(est.raw) / h_ref, normalized_entropy(est.raw_reps) / h_ref
        tv, tv_reps = total_variation(est.raw, ref), total_variation(est.raw_reps, ref)
        st = stats[(stats.group == group) & (stats.statistic == (pcol if group != "all" else f"{cfg.test}_p"))]
        p_adj = float(st["value"].iloc[0]) if len(st) else float("nan")
        tv_lo, tv_hi = pct(tv_reps)
        flagged = bool(p_adj < cfg.alpha and (missing or tv_lo > cfg.tv_flag))
        base = {"attribute": probe.attribute, "group": group, "probe": probe.name, "n": est.n_images,
                "n_prompts": est.n_prompts, "flagged": flagged, "estimand": est.estimand,
                "interval_note": note or ""}
        m_lo, m_hi = pct(miss_reps)
        rows.append({**base, "statistic": "missing_modes", "value": float(len(missing)), "ci_low": m_lo,
                     "ci_high": m_hi, "detail": ", ".join(missing)})
        rows.append({**base, "statistic": "entropy_ratio", "value": float(ratio), **dict(zip(("ci_low", "ci_high"),
                     pct(ratio_reps))), "detail": ""})
        rows.append({**base, "statistic": "tv_to_training", "value": float(tv), "ci_low": tv_lo, "ci_high": tv_hi,
                     "detail": ""})
        rows.append({**base, "statistic": "p_adjusted", "value": p_adj, "ci_low": np.nan, "ci_high": np.nan,
                     "detail": f"{cfg.test} goodness of fit vs training, {cfg.adjust} across groups"})
        for i, c in enumerate(probe.classes):
            rows.append({**base, "statistic": f"share[{c}]", "value": float(est.raw[i]), "ci_low": float(lo[i]),
                         "ci_high": float(hi[i]), "reference": float(ref[i]), "detail": f"training {ref[i]:.3f}"})
    return rows


def sentence(rows: pd.DataFrame) -> str:
    """One plain sentence for a flagged (attribute, group)."""
    r = rows.set_index("statistic")
    attr, group = rows["attribute"].iloc[0], rows["group"].iloc[0]
    k = sum(s.startswith("share[") for s in r.index)
    shares = r[r.index.str.startswith("share[")].sort_values("value")
    low = shares.iloc[0]
    cls = low.name[6:-1]
    missing = int(r.loc["missing_modes", "value"])
    head = f"{attr}: {missing} of {k} modes missing for {group}" if missing else \
        f"{attr}: distribution shifted for {group} (TV {r.loc['tv_to_training', 'value']:.2f})"
    train = 100 * float(low.reference)  # the number, never read back from the detail text
    return (f"{head}; {cls} {100 * low.value:.1f}% [{100 * low.ci_low:.1f}, {100 * low.ci_high:.1f}] vs "
            f"{train:.1f}% in training (n={int(r['n'].iloc[0])})")


def run_diversity_audit(run_dir: str | Path, cfg: DiversityAuditConfig | None = None, extractor=None,
                        probes: list[Probe] | None = None) -> dict:
    """Audit a run directory; writes RUN/audits/diversity*.parquet and diversity.json."""
    from t2i_audit.evals.runs.locking import RunLock

    cfg = cfg or DiversityAuditConfig()
    check_estimand(cfg.estimand)
    run_dir, meta, manifest, domain = open_run(run_dir)
    if probes is None:
        names = cfg.probes or DEFAULT_PROBES.get(domain, [])
        if not names:
            raise InputError(f"{run_dir}: no default probes for a {domain!r} run; name the attributes to "
                             "audit with --probe (a zero-shot probe YAML with the classes the prompt leaves open)")
        if extractor is None and any(not n.startswith("oracle") for n in names):
            from t2i_audit.evals.features.extractors import load_extractor

            extractor = load_extractor(cfg.clip)
        probes = [make_probe(n, extractor) for n in names]
    with RunLock(run_dir, purpose="audit diversity"):
        images = image_table(manifest, cfg.group_slots)
        pil = load_images(run_dir, manifest)
        outputs = predict_all(probes, pil)
        extra = []
        if cfg.features != "none":
            from t2i_audit.audits.diversity.feature_diversity import feature_findings
            from t2i_audit.evals.features.extractors import load_extractor

            ext = extractor or load_extractor(cfg.clip if cfg.features == "auto" else cfg.features)
            extra = feature_findings(images, pil, ext, domain, cfg)
        return _tables(run_dir, meta, probes, outputs, images, cfg, extra)


def _tables(run_dir: Path, meta: dict, probes, outputs, images: pd.DataFrame, cfg, extra=()) -> dict:
    rng = np.random.default_rng(cfg.seed)
    groups = images["group"].to_numpy()
    masks = {("open", g): groups == g for g in sorted(set(groups))}
    masks[("open", "all")] = np.ones(len(groups), dtype=bool)
    share_rows, stat_rows, findings = [], [], []
    for probe in probes:
        ref = training_distribution(probe.attribute, probe.classes)
        if ref is None:
            ref = np.full(len(probe.classes), 1 / len(probe.classes))
        ests, samples = estimate_groups(outputs[probe.name].labels, images["prompt_id"].to_numpy(), masks,
                                        probe.classes, None, cfg, rng)
        reference = {(probe.attribute, "*"): dict(zip(probe.classes, ref))}
        b, s = group_tables(probe, ests, samples, None, reference, None, cfg)
        share_rows += b
        stat_rows += s
        findings += probe_findings(probe, ests, pd.DataFrame(s), ref, cfg)
    fdf = pd.DataFrame(findings + list(extra))
    flagged = fdf[fdf.flagged & (fdf.group != "all")]
    sentences = [sentence(d) for _, d in flagged.groupby(["attribute", "group"], sort=False)]
    summary = {"schema": SCHEMA, "run_id": meta.get("run_id"), "probe": [p.describe() for p in probes],
               "default_probes": [] if cfg.probes else [p.name for p in probes],
               "reference": cfg.reference or "training distribution (PictoWorld: uniform)", "config": cfg.to_dict(),
               "rule": (f"flagged = {cfg.adjust}-adjusted {cfg.test} p < {cfg.alpha} and (a missing mode, or the "
                        f"TV-to-training interval above {cfg.tv_flag}); missing mode = upper 95% bound of the "
                        f"share below {cfg.missing_fraction} x its training share"),
               "findings": fdf.replace({np.nan: None}).to_dict("records"), "sentences": sentences,
               "estimand": {"name": cfg.estimand, "meaning": ESTIMAND_TEXT[cfg.estimand],
                            "min_prompts": cfg.min_clusters},
               "methodology": {"shares": "raw shares of the probe's readings among answered images; "
                                         + interval_method(cfg.estimand, cfg.bootstrap, cfg.seed, cfg.min_clusters),
                               "features": "attribute 'features': precision/recall (k=3), density/coverage (k=5) "
                                           "against reference renders of the group's profession (PictoWorld), "
                                           "Vendi (cosine kernel) overall and within prompts; see the detail "
                                           "column for each interval's method; not flagged by the rule"}}
    out = write_audit(run_dir, "diversity", {"main": pd.DataFrame(share_rows), "stats": pd.DataFrame(stat_rows),
                                             "findings": fdf}, summary)
    return {"shares": pd.DataFrame(share_rows), "stats": pd.DataFrame(stat_rows), "findings": fdf,
            "summary": summary, "out": out}

