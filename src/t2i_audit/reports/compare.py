"""Compare two runs image by image: ``compare_runs(A, B)``.

Images are paired by (prompt_id, seed) from scores/items.parquet. For every metric (overall and per
category) the difference B − A of the mean over paired images gets a 95% percentile interval from a
cluster bootstrap over prompts (pairs of one prompt are resampled together) and a bootstrap p-value;
pass/fail metrics (all values 0/1) also get the exact McNemar test on the discordant pairs, whose
p-value is then the one reported. A run with a safety audit adds two pass/fail items per image from
audits/safety_items.parquet -- ``safety.unsafe_or_blocked`` and ``safety.blocked`` (raw detector
readings; a blocked image is never safe) -- so a concept-erasure or fine-tune comparison gets paired
differences and McNemar tests per category. Bias shifts per (attribute, group, class) compare the corrected
shares of both runs' bias audits (independent intervals combined in quadrature).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.errors import InputError
from t2i_audit.reports.html_images import esc, pass_fail_metrics
from t2i_audit.reports.md_safe import no_raw_html
from t2i_audit.reports.results import RunResults, load_run
from t2i_audit.reports.tables import fmt_ci, fmt_num
from t2i_audit.stats.proportions import independent_difference, mcnemar_exact, paired_cluster_bootstrap


class CompareWarning(UserWarning):
    """The runs can be compared, but not quite like for like (e.g. different suite hashes)."""


@dataclass
class CompareResult:
    run_a: str
    run_b: str
    metrics: pd.DataFrame          # one row per (metric, group)
    bias_shifts: pd.DataFrame      # one row per (attribute, group, class); empty if no bias audits
    n_pairs: int
    n_unpaired_a: int
    n_unpaired_b: int
    warnings: list[str] = field(default_factory=list)
    n_boot: int = 2000
    seed: int = 0


def _items(r: RunResults) -> pd.DataFrame:
    """Per-image items of a run: scores/items.parquet and the safety audit's 0/1 readings."""
    cols = ["prompt_id", "seed", "metric", "value", "category"]
    parts = [] if r.items is None else [r.items[cols]]
    s = r.safety_items
    if s is not None:
        for metric, v in (("safety.unsafe_or_blocked", s["reading"].isin(["unsafe", "blocked"])),
                          ("safety.blocked", s["reading"] == "blocked")):
            parts.append(pd.DataFrame({"prompt_id": s["prompt_id"], "seed": s["seed"], "metric": metric,
                                       "value": v.astype(float), "category": s["category"]}))
    from t2i_audit.evals.alignment.results import alignment_items

    al = alignment_items(r.root, r.manifest)  # alignment.<score> and alignment.accuracy[<skill>] per image
    parts += [] if al is None or al.empty else [al]
    if not parts:
        raise InputError(f"{r.root}: scores/items.parquet is missing; run `t2i-audit score` (or "
                         "`audit safety`) on it first")
    return pd.concat(parts, ignore_index=True)


def _paired_items(ia: pd.DataFrame, ib: pd.DataFrame) -> pd.DataFrame:
    ia = ia.drop_duplicates(["prompt_id", "seed", "metric"])
    ib = ib.drop_duplicates(["prompt_id", "seed", "metric"])
    return ia.merge(ib.drop(columns="category"), on=["prompt_id", "seed", "metric"], suffixes=("_a", "_b"))


def compare_runs(run_a: str | Path | RunResults, run_b: str | Path | RunResults, *, n_boot: int = 2000,
                 seed: int = 0) -> CompareResult:
    """Paired comparison of two scored runs (difference = B − A)."""
    a = run_a if isinstance(run_a, RunResults) else load_run(run_a)
    b = run_b if isinstance(run_b, RunResults) else load_run(run_b)
    notes: list[str] = []
    if a.suite_hash != b.suite_hash:
        notes.append(f"suite hash differs ({a.suite_hash} vs {b.suite_hash}): prompts with the same id may "
                     "not be the same prompt")
    if a.manifest is not None and b.manifest is not None:
        ta = a.manifest.drop_duplicates("prompt_id").set_index("prompt_id")["text"]
        tb = b.manifest.drop_duplicates("prompt_id").set_index("prompt_id")["text"]
        common = ta.index.intersection(tb.index)
        differ = [p for p in common if ta[p] != tb[p]]
        if differ:
            notes.append(f"{len(differ)} shared prompt id(s) have different text, e.g. {differ[0]}")
    for n in notes:
        warnings.warn(n, CompareWarning, stacklevel=2)
    items_a, items_b = _items(a), _items(b)
    pairs = _paired_items(items_a, items_b)
    if pairs.empty:
        raise InputError(f"{a.root} and {b.root} share no (prompt_id, seed) pairs; compare runs of the same "
                         "suite and seeds")
    keys_a = set(zip(items_a["prompt_id"], items_a["seed"]))
    keys_b = set(zip(items_b["prompt_id"], items_b["seed"]))
    shared = keys_a & keys_b
    pf = set(pass_fail_metrics(items_a)) & set(pass_fail_metrics(items_b))
    rows = []
    for metric, d in pairs.groupby("metric", sort=True):
        groups = [("overall", d)] + [(f"category={c}", g) for c, g in d.groupby("category", sort=True)]
        for gname, g in groups:
            diff = g["value_b"].to_numpy(float) - g["value_a"].to_numpy(float)
            res = paired_cluster_bootstrap(diff, g["prompt_id"].to_numpy(), n_boot=n_boot, seed=seed)
            row = {"metric": metric, "group": gname, "n_pairs": len(g), "n_prompts": res.n_clusters,
                   "mean_a": float(g["value_a"].mean()), "mean_b": float(g["value_b"].mean()),
                   "difference": res.estimate, "ci_low": res.ci_low, "ci_high": res.ci_high,
                   "p_value": res.p_value, "test": "paired cluster bootstrap", "mcnemar_b": np.nan,
                   "mcnemar_c": np.nan, "method": res.method}
            if metric in pf:  # discordant counts shown; the p-value stays the clustered one (prompts vary)
                nb, nc, _ = mcnemar_exact(g["value_a"].to_numpy() >= 1, g["value_b"].to_numpy() >= 1)
                row.update(mcnemar_b=nb, mcnemar_c=nc,
                           method=res.method + f"; discordant pairs: A-only passes {nb}, B-only passes {nc}")
            rows.append(row)
    metrics = pd.DataFrame(rows)
    return CompareResult(a.run_id, b.run_id, metrics, bias_shifts(a, b), len(shared),
                         len(keys_a - keys_b), len(keys_b - keys_a), notes, n_boot, seed)


BIAS_KEYS = ["probe", "section", "attribute", "group", "cls"]
HEADLINE = (("ppi", "ppi_ci_low", "ppi_ci_high", "label-calibrated (PPI++)"),
            ("corrected", "corr_ci_low", "corr_ci_high", "corrected"), ("raw", "raw_ci_low", "raw_ci_high", "raw"))


def _headline(row: pd.Series, suffix: str) -> tuple[float, float, float, str]:
    """(share, lo, hi, basis) of one bias row on its headline basis: label-calibrated where labelled,
    else corrected, else raw (the basis the audit's statistics and the gate use)."""
    for col, lo, hi, basis in HEADLINE:
        v = row.get(col + suffix)
        if v is not None and np.isfinite(v):
            return float(v), float(row[lo + suffix]), float(row[hi + suffix]), basis
    return float("nan"), float("nan"), float("nan"), "none"


def _bias_items(r: RunResults) -> pd.DataFrame | None:
    path = r.root / "audits" / "bias_items.parquet"
    if not path.is_file() or r.manifest is None or "seed" not in r.manifest:
        return None
    items = pd.read_parquet(path)
    seeds = r.manifest[["image_id", "seed"]].astype({"image_id": str})
    return items.astype({"image_id": str}).merge(seeds, on="image_id")


def _same_readings(ia: pd.DataFrame | None, ib: pd.DataFrame | None) -> set[tuple[str, str]]:
    """(probe, group) cells whose per-image readings agree on every shared (prompt, seed) pair and
    cover the same pairs: their estimates come from the same data, so the paired shift is exactly 0."""
    if ia is None or ib is None:
        return set()
    keys = ["probe", "group", "prompt_id", "seed"]
    m = ia.merge(ib, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    m["same"] = (m["_merge"] == "both") & (m["reading_a"] == m["reading_b"])
    agg = m.groupby(["probe", "group"])["same"].all()
    cells = {k for k, v in agg.items() if v}
    # a probe whose readings agree on every pair of every group: its pooled ('all') and explicit
    # ('asked=...') cells come from the same data too
    whole = m.groupby("probe")["same"].all()
    return cells | {(p, "*") for p, v in whole.items() if v}


def bias_shifts(a: RunResults, b: RunResults) -> pd.DataFrame:
    """Shift B − A of each (probe, section, attribute, group, class) share on the headline basis.
    Cells whose readings agree on every shared (prompt, seed) pair are paired: shift 0, zero-width
    interval. Otherwise the difference of independent estimates from their intervals (conservative
    for paired runs), with the basis and pairing named in ``method``."""
    cols = [*BIAS_KEYS, "basis", "share_a", "share_b", "shift", "ci_low", "ci_high", "p_value", "n_a", "n_b",
            "estimand", "method"]
    if a.bias is None or b.bias is None:
        return pd.DataFrame(columns=cols)
    keys = [k for k in BIAS_KEYS if k in a.bias and k in b.bias]
    m = a.bias.merge(b.bias, on=keys, suffixes=("_a", "_b"))
    same = _same_readings(_bias_items(a), _bias_items(b))
    rows = []
    for _, r in m.iterrows():
        va, la, ha, basis_a = _headline(r, "_a")
        vb, lb, hb, basis_b = _headline(r, "_b")
        est_a, est_b = r.get("estimand_a", "prompts"), r.get("estimand_b", "prompts")
        if basis_a != basis_b or est_a != est_b:
            d, method = None, f"not compared: bases {basis_a} vs {basis_b}, estimands {est_a} vs {est_b}"
        elif ((r.get("probe"), r["group"]) in same or (r.get("probe"), "*") in same) and va == vb:
            d, method = (0.0, 0.0, 0.0, 1.0), f"{basis_a}; paired: same readings on every (prompt, seed) pair"
        else:
            x = independent_difference(vb, lb, hb, va, la, ha)
            d, method = (x.estimate, x.ci_low, x.ci_high, x.p_value), f"{basis_a}; {x.method}"
        d = d or (float("nan"),) * 4
        rows.append([*(r.get(k, "") for k in BIAS_KEYS), basis_a, va, vb, *d, int(r.n_images_a),
                     int(r.n_images_b), est_a, method])
    return pd.DataFrame(rows, columns=cols).sort_values(BIAS_KEYS, kind="stable", ignore_index=True)


def compare_markdown(c: CompareResult) -> str:
    from t2i_audit.reports.md_safe import md_table

    out = [f"# t2i-audit compare: {c.run_b} − {c.run_a}", "",
           f"{c.n_pairs} (prompt, seed) pairs shared; {c.n_unpaired_a} only in A, {c.n_unpaired_b} only in B. "
           "Difference = B − A; 95% interval from a cluster bootstrap over prompts "
           f"(B={c.n_boot}, seed {c.seed}); pass/fail metrics keep the clustered test (an exact McNemar test on "
           "images would answer 'these prompts' only).", ""]
    out += [f"> warning: {w}" for w in c.warnings] + ([""] if c.warnings else [])
    out += ["## Metrics", "", md_table(
        ["metric", "group", "n pairs", "A", "B", "B − A", "95% CI", "p", "test"],
        [[r.metric, r.group, r.n_pairs, fmt_num(r.mean_a), fmt_num(r.mean_b), fmt_num(r.difference),
          fmt_ci(r.ci_low, r.ci_high), fmt_num(r.p_value), r.test] for r in c.metrics.itertuples()]), ""]
    if len(c.bias_shifts):
        out += ["## Bias shifts (headline basis: label-calibrated where labelled, else corrected)", "", md_table(
            ["probe", "section", "attribute", "group", "class", "basis", "A", "B", "B − A", "95% CI", "p"],
            [[r.probe, r.section, r.attribute, r.group, r.cls, r.basis, fmt_num(r.share_a), fmt_num(r.share_b),
              fmt_num(r.shift), fmt_ci(r.ci_low, r.ci_high), fmt_num(r.p_value)]
             for r in c.bias_shifts.itertuples()]), ""]
    else:
        out += ["## Bias shifts", "", "_One or both runs have no bias audit._", ""]
    return no_raw_html("\n".join(out))


def compare_html(c: CompareResult) -> str:
    from t2i_audit.reports import plots
    from t2i_audit.reports.html_style import CSP, CSS, _table

    m = c.metrics
    chart = plots.difference_chart(m, label=f"{c.run_b} − {c.run_a}")
    parts = [f"<h1>t2i-audit compare: {esc(c.run_b)} − {esc(c.run_a)}</h1>",
             f"<p>{c.n_pairs} (prompt, seed) pairs shared; {c.n_unpaired_a} only in A, {c.n_unpaired_b} only in "
             "B. Difference = B − A with a 95% cluster-bootstrap interval over prompts; pass/fail metrics keep "
             "the clustered test.</p>"]
    parts += [f"<p class='missing'>warning: {esc(w)}</p>" for w in c.warnings]
    if chart:
        parts.append(f"<p><img src='{chart}' alt='differences with 95% intervals'></p>")
    parts.append(_table(["metric", "group", "n pairs", "A", "B", "B − A", "95% CI", "p", "test"],
                        [[r.metric, r.group, r.n_pairs, fmt_num(r.mean_a), fmt_num(r.mean_b), fmt_num(r.difference),
                          fmt_ci(r.ci_low, r.ci_high), fmt_num(r.p_value), r.test] for r in m.itertuples()],
                        {2, 3, 4, 5, 7}))
    parts.append("<h2>Bias shifts (headline basis)</h2>")
    if len(c.bias_shifts):
        parts.append(_table(["probe", "section", "attribute", "group", "class", "basis", "A", "B", "B − A",
                             "95% CI", "p"],
                            [[r.probe, r.section, r.attribute, r.group, r.cls, r.basis, fmt_num(r.share_a),
                              fmt_num(r.share_b), fmt_num(r.shift), fmt_ci(r.ci_low, r.ci_high), fmt_num(r.p_value)]
                             for r in c.bias_shifts.itertuples()],
                            {6, 7, 8, 10}))
    else:
        parts.append("<p class='missing'>One or both runs have no bias audit.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<title>t2i-audit compare</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def write_compare(c: CompareResult, out: str | Path, formats: tuple[str, ...] = ("md", "html", "csv", "json")
                  ) -> list[Path]:
    """Write compare.md / compare.html and the metric and bias-shift tables."""
    from t2i_audit.reports.report import _write_text
    from t2i_audit.reports.tables import TABLE_FORMATS, write_tables

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create the output directory ({e.strerror})") from None
    written = []
    if "md" in formats:
        _write_text(out / "compare.md", compare_markdown(c))
        written.append(out / "compare.md")
    if "html" in formats:
        _write_text(out / "compare.html", compare_html(c))
        written.append(out / "compare.html")
    tf = tuple(f for f in formats if f in TABLE_FORMATS)
    if tf:
        tables = {"compare_metrics": c.metrics.assign(run_a=c.run_a, run_b=c.run_b),
                  "compare_bias": c.bias_shifts.assign(run_a=c.run_a, run_b=c.run_b)}
        written += write_tables(tables, out, tf)
    return written
