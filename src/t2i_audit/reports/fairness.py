"""Counterfactual fairness: does the model follow a prompt as well when it names another identity?

Prompts made from one template that differ only in an identity slot (``presentation``, ``skin``, ...)
form a *family* (same template, same other slot values). Per identity value: the mean of each
per-image metric (skills on the named attributes, adherence to that attribute, CLIPScore, alignment
scores) with a cluster-bootstrap interval over prompts. Per pair of values: the mean over families of
the within-family difference (weighted by images), with a bootstrap interval over families and a p-value
(:func:`t2i_audit.stats.proportions.paired_cluster_bootstrap`), Holm-adjusted over the pairs of the
attribute and metric. The largest disparity is the pair with the largest |difference|; it is flagged
when its Holm-adjusted p < alpha and |difference| >= ``min_gap``.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

from t2i_audit.stats.distribution import holm
from t2i_audit.stats.proportions import paired_cluster_bootstrap
from t2i_audit.stats.resampling import cluster_bootstrap_mean

IDENTITY_SLOTS = ("presentation", "skin", "gender", "skin_tone", "race", "ethnicity", "age")
FAIRNESS_COLUMNS = ("attribute", "metric", "kind", "group", "value", "ci_low", "ci_high", "p_value", "p_holm",
                    "n", "n_prompts", "flagged", "method")


def families(manifest: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """prompt_id -> (family, identity value) for prompts whose template varies ``attribute``; only
    families holding at least two values of it."""
    rows = []
    for pid, tmpl, slots in manifest[["prompt_id", "template", "slots"]].drop_duplicates("prompt_id").itertuples(index=False):
        s = json.loads(slots) if isinstance(slots, str) and slots else {}
        if attribute not in s:
            continue
        rest = json.dumps({k: v for k, v in s.items() if k != attribute}, sort_keys=True)
        rows.append((str(pid), f"{tmpl}|{rest}", str(s[attribute])))
    f = pd.DataFrame(rows, columns=["prompt_id", "family", "identity"])
    if f.empty:
        return f
    k = f.groupby("family")["identity"].nunique()
    return f[f["family"].isin(k[k >= 2].index)]


def _pairs(d: pd.DataFrame, values: list[str], n_boot: int, seed: int) -> list[dict]:
    """Within-family differences for every pair of identity values (first minus second)."""
    g = d.groupby(["family", "identity"])["value"]
    fam, size = g.mean().unstack("identity"), g.size().unstack("identity")
    out = []
    for i, (v, w) in enumerate(itertools.combinations(values, 2)):
        both = fam[[v, w]].dropna()
        if len(both) < 2:
            continue
        # each family's difference weighted by its images (the smaller side): families with 8 images
        # per identity count 4x those with 2, as an image-level mean would
        weight = size.loc[both.index, [v, w]].min(axis=1).to_numpy(int)
        diff = np.repeat((both[v] - both[w]).to_numpy(float), weight)
        r = paired_cluster_bootstrap(diff, np.repeat(both.index.to_numpy(), weight), n_boot=n_boot, seed=seed + i)
        out.append({"group": f"{v} - {w}", "value": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "p_value": r.p_value, "n": int(d[d["family"].isin(both.index)].shape[0]), "n_prompts": len(both),
                    "method": r.method.replace("over prompts", "over prompt families") +
                    "; family mean differences (first minus second) weighted by images"})
    return out


def counterfactual(items: pd.DataFrame, manifest: pd.DataFrame, *, attributes=IDENTITY_SLOTS, n_boot: int = 2000,
                   seed: int = 0, alpha: float = 0.05, min_gap: float = 0.0) -> pd.DataFrame:
    """The fairness table (FAIRNESS_COLUMNS): kind 'identity' rows (per value), 'pair' rows (per pair,
    with p and Holm p) and one 'max_disparity' row per attribute and metric."""
    rows = []
    for attr in attributes:
        fam = families(manifest, attr)
        if fam.empty:
            continue
        d_all = items.merge(fam, on="prompt_id", how="inner")
        values = sorted(fam["identity"].unique())
        for metric, d in d_all.groupby("metric", sort=True):
            if metric.startswith("share."):
                continue  # shares of open attributes are bias, not adherence
            if metric.startswith("adherence.") and metric != f"adherence.{attr}":
                continue
            for v in values:
                dv = d[d["identity"] == v]
                if dv.empty:
                    continue
                e = cluster_bootstrap_mean(dv["value"].to_numpy(float), dv["prompt_id"].to_numpy(), reps=n_boot, seed=seed)
                rows.append({"attribute": attr, "metric": metric, "kind": "identity", "group": v, "value": e.value,
                             "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": np.nan, "p_holm": np.nan, "n": e.n,
                             "n_prompts": e.n_clusters, "flagged": False, "method": e.method})
            pairs = _pairs(d, values, n_boot, seed)
            if not pairs:
                continue
            adj = holm([p["p_value"] for p in pairs])
            for p, a in zip(pairs, adj):
                p.update(attribute=attr, metric=metric, kind="pair", p_holm=float(a),
                         flagged=bool(a < alpha and abs(p["value"]) >= min_gap))
            rows += pairs
            top = max(pairs, key=lambda p: abs(p["value"]))
            rows.append({**top, "kind": "max_disparity",
                         "method": top["method"] + f"; largest |difference| of {len(pairs)} pairs; Holm over them"})
    return pd.DataFrame(rows, columns=list(FAIRNESS_COLUMNS))
