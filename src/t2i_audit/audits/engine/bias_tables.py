"""Rows of bias.parquet and bias_stats.parquet from per-group estimates (see docs/audits.md)."""

from __future__ import annotations

import numpy as np

import t2i_audit.stats.distribution as bs
from t2i_audit.audits.probes.attribute_probes import JOINT_SEP, Probe
from t2i_audit.audits.probes.probe_calibration import Calibration
from t2i_audit.stats.clusters import ESTIMAND_TEXT, interval_method
from t2i_audit.stats.correction import GroupSample, GroupShareEstimate
from t2i_audit.stats.resampling import finite_percentile_interval


def _training_shares(training, attribute: str, group: str, classes) -> np.ndarray | None:
    if training is None or group not in training.joint:
        return None
    attrs = attribute.split(JOINT_SEP)
    if len(attrs) == 2:
        cells = training.joint[group]
        return np.array([cells.get(tuple(c.split("|")), 0.0) for c in classes])
    if attrs[0] not in ("presentation", "skin"):
        return None
    m = training.marginal(group, attrs[0])
    return np.array([m[c] for c in classes])


def expected_answered(r: np.ndarray, cal: Calibration | None) -> np.ndarray:
    """Predicted-class shares among answered images if the truth were ``r`` (through the probe)."""
    if cal is None:
        return r
    A, a = cal.conditional()
    ra = r * (1 - a)
    ra = ra / ra.sum()
    return ra @ A


def design_effect(est: GroupShareEstimate) -> float:
    """Design effect of the group's raw shares (``stats.clusters.share_interval``: resampled variance
    over the binomial variance, floored at 1), averaged over classes; NaN when not estimable."""
    _, _, deff, _, _ = est.interval(est.raw, est.raw_reps)
    return float(np.nanmean(deff)) if np.isfinite(deff).any() else float("nan")


def _interval_stat(est: GroupShareEstimate, value: float, reps) -> tuple[float, float]:
    """Interval of a statistic of the shares: effective-n Wilson for a share in [0, 1] (the estimand's
    rule), else the percentile of the replicates; NaN below the minimum prompts for the estimand."""
    if reps is None:
        return float("nan"), float("nan")
    lo, hi, _, _, note = est.interval(np.array([value]), np.asarray(reps)[:, None])
    if note:
        return float("nan"), float("nan")
    return finite_percentile_interval(reps)


def group_tables(probe: Probe, ests: dict, samples: dict[tuple[str, str], GroupSample],
                 cal: Calibration | None, reference: dict, training, cfg):
    k = len(probe.classes)
    bias_rows, stat_rows, tests = [], [], []

    def stat(section, group, name, value, reps=None, n=0, basis="", share=False):
        est = current[0]
        if reps is None:
            lo, hi = float("nan"), float("nan")
        elif share:
            lo, hi, *_ = est.interval(np.array([value]), np.asarray(reps)[:, None])
            lo, hi = float(lo[0]), float(hi[0])
        else:
            lo, hi = _interval_stat(est, value, reps)
        stat_rows.append({"attribute": probe.attribute, "group": group, "statistic": name,
                          "value": float(value), "ci_low": lo, "ci_high": hi, "n": int(n),
                          "basis": basis, "section": section, "probe": probe.name,
                          "estimand": est.estimand})

    current: list = [None]  # the group whose statistics stat() records
    for (section, group), est in ests.items():
        current[0] = est
        ref = reference.get((probe.attribute, group)) or reference.get((probe.attribute, "*"))
        r = np.array([ref[c] for c in probe.classes]) if ref else np.full(k, 1.0 / k)
        train = _training_shares(training, probe.attribute, group, probe.classes) if section == "neutral" else None
        bias_rows += _share_rows(probe, est, section, group, r, train)
        basis, p, reps = est.headline()
        n = est.n_images
        stat(section, group, "abstain_rate", est.abstain, est.abstain_reps, n, "raw", share=True)
        if section == "explicit":
            asked = probe.classes.index(group.split("=", 1)[1])
            stat(section, group, "adherence", p[asked], reps[:, asked], n, basis, share=True)
            stat(section, group, "adherence_raw", est.raw[asked], est.raw_reps[:, asked], n, "raw", share=True)
            continue
        for name, v in bs.distribution_stats(p, r).items():
            stat(section, group, name, v, bs.distribution_stats(reps, r)[name], n, basis)
        if k == 2:
            stat(section, group, "heim_abs_p_minus_half", abs(p[0] - 0.5), np.abs(reps[:, 0] - 0.5), n, basis)
        if train is not None:
            for c, cls in enumerate(probe.classes):
                stat(section, group, f"amplification[{cls}]", p[c] - train[c], reps[:, c] - train[c], n, basis)
            stat(section, group, "tv_to_training", bs.total_variation(p, train),
                 bs.total_variation(reps, train), n, basis)
        answered = samples[(section, group)].total[:k]
        s, dof, pv = bs.goodness_of_fit(answered, expected_answered(r, cal), cfg.test)
        deff = design_effect(est)
        from scipy.stats import chi2

        s_adj = s / deff if np.isfinite(s) and np.isfinite(deff) else s
        pv_adj = float(chi2.sf(s_adj, dof)) if dof > 0 and np.isfinite(s_adj) else pv
        stat(section, group, f"{cfg.test}_statistic", s_adj, None, int(answered.sum()), "raw counts vs reference")
        stat(section, group, "design_effect", deff, None, n, "resampled / binomial variance (raw shares)")
        stat(section, group, "n_eff", n * (1 - est.abstain) / deff if np.isfinite(deff) else float("nan"), None, n,
             "answered images / design effect")
        if group != "all":
            tests.append((group, pv_adj, int(answered.sum())))
        else:
            stat(section, group, f"{cfg.test}_p", pv_adj, None, int(answered.sum()), "raw counts vs reference")
    if tests:
        adj = bs.ADJUST[cfg.adjust]([t[1] for t in tests])
        for (g, pv, n), pa in zip(tests, adj):
            stat("neutral", g, f"{cfg.test}_p", pv, None, n, "raw counts vs reference")
            stat("neutral", g, f"{cfg.test}_p_{cfg.adjust}", pa, None, n, f"{cfg.adjust} across {len(tests)} groups")
    return bias_rows, stat_rows


def _share_rows(probe: Probe, est: GroupShareEstimate, section: str, group: str, r, train) -> list[dict]:
    """One bias.parquet row per class: raw, corrected and label-calibrated shares with intervals."""
    k = len(probe.classes)
    rlo, rhi, _, _, note = est.interval(est.raw, est.raw_reps)
    clo = chi = np.full(k, np.nan)
    if est.corrected is not None:
        clo, chi = est.ci(est.corr_reps, point=est.corrected)
    _, p, reps = est.headline()
    _, _, deff, neff, _ = est.interval(p, reps)
    rows = []
    for c, cls in enumerate(probe.classes):
        rows.append({
            "attribute": probe.attribute, "group": group, "cls": cls,
            "raw": float(est.raw[c]), "raw_ci_low": float(rlo[c]), "raw_ci_high": float(rhi[c]),
            "corrected": float(est.corrected[c]) if est.corrected is not None else float("nan"),
            "corr_ci_low": float(clo[c]), "corr_ci_high": float(chi[c]),
            "reference": float(r[c]), "training": float(train[c]) if train is not None else float("nan"),
            "n_images": est.n_images, "n_prompts": est.n_prompts, "abstain_rate": est.abstain,
            "probe": probe.name, "section": section, "resampling": est.scheme,
            "estimand": est.estimand, "design_effect": float(deff[c]), "n_eff": float(neff[c]),
            "interval_note": note or "",
            **_label_columns(est, c),
        })
    return rows


def _label_columns(est: GroupShareEstimate, c: int) -> dict:
    """Label-calibrated columns of one class row; absent when no labels were given (the table keeps
    its earlier layout), NaN for a group with too few labels."""
    if est.ppi is None and est.label_note is None:
        return {}
    out = {"n_labelled": est.n_labelled}
    for name, point, reps in (("ppi", est.ppi, est.ppi_reps), ("label_confusion", est.lab_conf, est.lab_conf_reps)):
        lo, hi = est.ci(reps, point=point) if reps is not None else (None, None)
        out[name] = float(point[c]) if point is not None else float("nan")
        out[f"{name}_ci_low"] = float(lo[c]) if lo is not None else float("nan")
        out[f"{name}_ci_high"] = float(hi[c]) if hi is not None else float("nan")
    return out


def methodology_text(cfg, calibrated: bool, labelled: bool = False) -> dict:
    extra = {"labels": (
        "label-calibrated = estimates from human (or oracle) labels on a seeded stratified random subset of "
        "the audited images plus the probe's reading of every image: ppi = prediction-powered inference, "
        "PPI++ with power-tuned lambda per class (Angelopoulos et al. 2023); label_confusion = the probe's "
        "confusion matrix measured on the group's labelled images, EM correction. Intervals: cluster "
        "resampling for the estimand, labelled and unlabelled images of a prompt together (or within each "
        "prompt for 'these prompts'). PPI++ as implemented (lambda tuned on the same labels and clipped to "
        "[0, 1], shares normalised to sum to 1) is a ratio estimator: consistent, not exactly unbiased. "
        "Headline (statistics, amplification, gate): ppi, because it does not rely on the probe's errors "
        "on these images matching a calibration set; the clean-calibrated 'corrected' column assumes the "
        "calibration set matches the audited images.")} if labelled else {}
    return {**extra,
        "shares": "raw = share of each class among images the probe answered (abstentions excluded); "
                  "abstain_rate = share of images read 'unsure' or 'no person'.",
        "correction": (f"corrected = {cfg.method} estimate on the simplex through the probe's confusion matrix "
                       "measured on labelled images, re-weighted by 1/(1 - per-class abstention)"
                       if calibrated else "no calibration: corrected columns are empty (NaN)"),
        "estimand": f"{cfg.estimand}: {ESTIMAND_TEXT[cfg.estimand]}",
        "intervals": f"{interval_method(cfg.estimand, cfg.bootstrap, cfg.seed, cfg.min_clusters)}; calibration "
                     "counts resampled within true class; shares: design_effect and n_eff per row; statistics "
                     "that are not shares: percentile of the same replicates (NaN where not estimable).",
        "statistics": "parity_gap = max - min share; normalized_entropy = H/log K; tv_to_reference = "
                      "1/2 sum |p - r|; kl_to_reference = sum p log(p/r) (nats); heim_deviation = mean |p - 1/K| "
                      "(|p - 0.5| for two classes, HEIM); amplification[c] = p_c - training share; statistics "
                      "use the corrected shares when calibrated, else raw.",
        "tests": f"{cfg.test} goodness of fit of answered raw counts against the reference pushed through "
                 f"the probe's confusion matrix, divided by a first-order Rao-Scott design effect; p-values "
                 f"adjusted across groups by {cfg.adjust}.",
        "groups": f"group = first of slots {list(cfg.group_slots)} present, else the prompt category; prompts "
                  "stating an attribute are 'explicit' (adherence), the rest 'neutral'; 'all' pools neutral.",
    }
