"""Per-group share estimates from one probe's readings: raw, corrected through a calibration set's
confusion matrix, and -- given labels on a random subset of the audited images -- label-calibrated
(PPI++ and the group's own confusion matrix; ``stats.labelled``). Intervals: cluster bootstrap over
prompts (``stats.correction``, ``stats.labelled``)."""

from __future__ import annotations

import numpy as np

from t2i_audit.audits.probes.attribute_probes import JOINT_SEP
from t2i_audit.stats.correction import GroupSample, GroupShareEstimate, calibration_replicates, estimate_group
from t2i_audit.stats.labelled import (
    check_labels,
    confusion_shares,
    label_tables,
    ppi_interval_n,
    ppi_shares,
    resample_tables,
)

NOT_LABELLED = -9


def estimate_groups(readings: np.ndarray, prompts: np.ndarray, masks: dict, classes, cal_counts, cfg,
                    rng: np.random.Generator, truth: np.ndarray | None = None
                    ) -> tuple[dict, dict[tuple, GroupSample]]:
    """Estimates for each key of ``masks`` (key -> boolean image mask) with at least one image.
    ``truth``: per-image label index (class; -1 label unsure / no person; ``NOT_LABELLED``)."""
    k = len(classes)
    cal_reps = calibration_replicates(cal_counts, cfg.bootstrap, rng) if cal_counts is not None else None
    samples = {key: GroupSample.from_labels(readings[m], prompts[m], k) for key, m in masks.items() if m.sum()}
    ests = {key: estimate_group(s, classes, cal_counts, cal_reps, cfg.bootstrap, rng, cfg.method,
                                cfg.estimand, cfg.min_clusters) for key, s in samples.items()}
    if truth is not None:
        for key in ests:
            m = masks[key]
            attach_labelled(ests[key], readings[m], truth[m], prompts[m], k, key[-1], cfg, rng)
    return ests, samples


def attach_labelled(est: GroupShareEstimate, readings, truth, prompts, k: int, group: str, cfg,
                    rng: np.random.Generator) -> None:
    """Add the label-calibrated estimates of one group to ``est`` (or a note why there are none)."""
    t = label_tables(readings, truth, prompts, k)
    est.n_labelled = t.n_labelled
    note = check_labels(t, group)
    if note:
        est.label_note = note
        return
    L, U = t.L.sum(0), t.U.sum(0)
    reps = resample_tables(t, cfg.bootstrap, np.random.default_rng(int(rng.integers(2**31))), cfg.estimand)
    est.ppi, est.ppi_reps = ppi_shares(L, U), ppi_shares(reps.L, reps.U)  # on the simplex already
    est.ppi_n = ppi_interval_n(L, U)  # the interval's binomial floor: labels and lambda-weighted readings
    est.lab_conf, est.lab_conf_reps = confusion_shares(L, U, cfg.method), confusion_shares(reps.L, reps.U, cfg.method)


def truths_from_labels(labels, probes, image_ids) -> dict[str, np.ndarray]:
    """Probe name -> per-image label index from a labels table (image_id, attribute, label): the class
    index, -1 for 'unsure' / 'no person' (dropped by the estimators), ``NOT_LABELLED`` elsewhere. A
    joint probe (presentation|skin) gets a label where both attributes are labelled."""
    ids = {str(i): j for j, i in enumerate(image_ids)}
    by_attr: dict[str, dict[int, str]] = {}
    for iid, attr, lab in zip(labels["image_id"].astype(str), labels["attribute"].astype(str),
                              labels["label"].astype(str)):
        if iid in ids:
            by_attr.setdefault(attr, {})[ids[iid]] = lab
    out = {}
    for p in probes:
        attrs = p.attribute.split(JOINT_SEP)
        if not all(a in by_attr for a in attrs):
            continue
        truth = np.full(len(ids), NOT_LABELLED, dtype=np.int64)
        index = {c: i for i, c in enumerate(p.classes)}
        for j in set.intersection(*(set(by_attr[a]) for a in attrs)):
            cls = "|".join(by_attr[a][j] for a in attrs)
            truth[j] = index.get(cls, -1)
        out[p.name] = truth
    return out
