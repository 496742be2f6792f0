"""The self-contained HTML report: one file, no scripts, images and plots inline as data URIs.

Sections: summary (gate verdict, metrics with 95% CI and n), per-category accuracy, bias per
profession (raw vs corrected vs reference), distribution metrics against N, image grids per prompt
with each image's reading, memorization pairs, methodology. A section whose inputs are missing says
so. A Content-Security-Policy forbids scripts and remote loads, on top of escaping all user text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from t2i_audit.reports import plots
from t2i_audit.reports.alignment import alignment_html
from t2i_audit.reports.diversity import diversity_html, label_cells
from t2i_audit.reports.findings import findings_html
from t2i_audit.reports.html_images import esc, image_grids, memorization_pairs, pass_fail_metrics
from t2i_audit.reports.html_style import CSP, CSS, _table
from t2i_audit.reports.markdown import run_header
from t2i_audit.reports.results import RunResults
from t2i_audit.reports.robustness_report import run_section_html as robustness_html
from t2i_audit.reports.safety import safety_html
from t2i_audit.reports.tables import fmt_ci, fmt_num, methodology_rows


def _img(uri: str | None, alt: str) -> str:
    return f'<p><img src="{uri}" alt="{esc(alt)}"></p>' if uri else ""


def _missing(text: str) -> str:
    return f"<p class='missing'>{esc(text)}</p>"


def section_summary(res: RunResults) -> str:
    out = ["<h2 id='summary'>Summary</h2>", _table(["", ""], [list(r) for r in run_header(res)])]
    if res.gate:
        ok = bool(res.gate.get("passed"))
        out.append(f"<p>Gate: <span class='verdict {'pass' if ok else 'fail'}'>{'PASS' if ok else 'FAIL'}</span>"
                   f" <span class='note'>{esc(res.gate.get('rules_file', ''))}</span></p>")
        rows = [[r.get("rule", ""), fmt_num(r.get("value")), fmt_ci(r.get("ci_low"), r.get("ci_high")),
                 r.get("threshold_text", ""), r.get("judged_on", ""), str(r.get("verdict", "")).upper()]
                for r in res.gate.get("rules", [])]
        out.append(_table(["rule", "value", "95% CI", "threshold", "judged on", "verdict"], rows, {1}))
    else:
        out.append("<p class='note'>No gate result in this run (run <code>t2i-audit gate</code>).</p>")
    agg = res.aggregates
    if agg is None:
        out.append(_missing("No scores: scores/aggregates.parquet is missing (run `t2i-audit score`)."))
    else:
        o = agg[agg["group"] == "overall"]
        rows = [[r.metric, fmt_num(r.value), fmt_ci(r.ci_low, r.ci_high), int(r.n_prompts), int(r.n_images),
                 r.method] for r in o.itertuples()]
        out.append("<h3>Metrics (overall, 95% intervals)</h3>")
        out.append(_table(["metric", "value", "95% CI", "n prompts", "n images", "method"], rows, {1, 3, 4}))
    if res.bias_stats is not None:
        s = res.bias_stats[res.bias_stats["statistic"] == "parity_gap"]
        if len(s):
            out.append("<h3>Bias at a glance (parity gap)</h3>")
            out.append(glance_table(s))
    return "".join(out)


def glance_table(s: pd.DataFrame) -> str:
    """Parity gaps, one row per (probe, shares, attribute, group): a run audited with several probes
    (the main job: the CLIP probe and the oracle) or bases lists each group once per probe, so a
    column names which probe and which shares every row is."""
    keys = [(c, head) for c, head in (("probe", "probe"), ("basis", "shares")) if c in s.columns]
    return _table([head for _, head in keys] + ["attribute", "group", "parity gap", "95% CI", "n"],
                  [[getattr(r, c) for c, _ in keys] + [r.attribute, r.group, fmt_num(r.value),
                                                       fmt_ci(r.ci_low, r.ci_high), int(r.n)]
                   for r in s.itertuples()], {len(keys) + 2, len(keys) + 4})


def section_categories(res: RunResults) -> str:
    out = ["<h2 id='skills'>Accuracy and scores per category</h2>"]
    agg = res.aggregates
    if agg is None:
        return "".join(out) + _missing("No scores for this run.")
    cats = agg[agg["group"].astype(str).str.startswith("category=")]
    if cats.empty:
        return "".join(out) + _missing("The aggregates have no per-category groups.")
    pf = pass_fail_metrics(res.items) if res.items is not None else []
    metrics = sorted(cats["metric"].unique(), key=lambda m: (m not in pf, m))
    for metric in metrics:
        d = cats[cats["metric"] == metric]
        out.append(f"<h3>{esc(metric)}{' (pass rate)' if metric in pf else ''}</h3>")
        out.append(_img(plots.category_bars(agg, metric), f"{metric} by category"))
        out.append(_table(["category", "value", "95% CI", "n prompts", "n images"],
                          [[g.split("=", 1)[1], fmt_num(r.value), fmt_ci(r.ci_low, r.ci_high), int(r.n_prompts),
                            int(r.n_images)] for g, r in zip(d["group"], d.itertuples())], {1, 3, 4}))
    return "".join(out)


def section_bias(res: RunResults) -> str:
    out = ["<h2 id='bias'>Bias</h2>"]
    if res.bias is None:
        return "".join(out) + _missing("No bias audit: audits/bias.parquet is missing (run `t2i-audit audit bias`).")
    out.append("<p class='note'>Share of each class per group: raw (classifier output) and corrected for the "
               "classifier's measured errors, with 95% intervals; red ticks mark the reference distribution.</p>")
    b = res.bias.sort_values(["attribute", "group", "cls"], kind="stable")
    multi = "probe" in b.columns and b["probe"].nunique() > 1
    keys = list(dict.fromkeys(zip(b["probe"] if multi else [None] * len(b), b["attribute"])))
    for probe, attr in keys:
        d = b[(b["attribute"] == attr) & ((b["probe"] == probe) if multi else True)]
        title = f"{attr} (probe {probe})" if multi else attr
        out.append(f"<h3>{esc(title)}</h3>")
        out.append(_img(plots.bias_chart(d, attr), f"{title} shares per group"))
        lab = ["label-calibrated (PPI++) [95% CI]"] if "ppi" in d.columns else []
        out.append(_table(["group", "class", *lab, "corrected", "95% CI", "raw", "95% CI", "reference", "n images",
                           "n prompts", "abstain"],
                          [[r.group, r.cls, *label_cells(r), fmt_num(r.corrected), fmt_ci(r.corr_ci_low, r.corr_ci_high),
                            fmt_num(r.raw), fmt_ci(r.raw_ci_low, r.raw_ci_high), fmt_num(r.reference),
                            int(r.n_images), int(r.n_prompts), fmt_num(r.abstain_rate)] for r in d.itertuples()],
                          {2, 4, 6, 7, 8, 9}))
    if res.bias_stats is not None:
        s = res.bias_stats.sort_values(["attribute", "group", "statistic"], kind="stable")
        has_probe = "probe" in s.columns
        out.append("<details><summary>Statistics per group</summary>")
        out.append(_table((["probe"] if has_probe else []) + ["attribute", "group", "statistic", "value", "95% CI", "n"],
                          [([r.probe] if has_probe else []) + [r.attribute, r.group, r.statistic, fmt_num(r.value),
                                                               fmt_ci(r.ci_low, r.ci_high), int(r.n)]
                           for r in s.itertuples()], {4, 6} if has_probe else {3, 5}))
        out.append("</details>")
    else:
        out.append(_missing("audits/bias_stats.parquet is missing."))
    return "".join(out)


def section_fd(res: RunResults) -> str:
    out = ["<h2 id='fd'>Distribution metrics against sample size</h2>"]
    uri = plots.fd_vs_n(res.aggregates) if res.aggregates is not None else None
    if uri is None:
        return "".join(out) + _missing("No distribution metric was measured at several sample sizes "
                                       "(aggregates with groups n=<N>).")
    return "".join(out) + _img(uri, "distribution metrics against 1/N")


def section_methodology(res: RunResults) -> str:
    meth = methodology_rows(res)
    out = ["<h2 id='methodology'>Methodology</h2>",
           "<p class='note'>Every methodology string found in this run's result files: evaluator models, "
           "probe prompts, thresholds, truncation, interval methods.</p>",
           _table(["source", "key", "text"], meth.values.tolist())]
    if res.missing:
        out.append("<h3>Missing inputs</h3><ul>" + "".join(f"<li><code>{esc(m)}</code></li>"
                                                            for m in res.missing) + "</ul>")
    return "".join(out)


def html_report(res: RunResults, *, max_prompts: int = 200, max_per_prompt: int = 8,
                reveal_unsafe: bool = False, out: Path | None = None) -> str:
    """The whole report as one HTML string (deterministic for the same result files), to be written
    in ``out`` (default RUN/report): images are embedded as thumbnails and link their originals
    relative to it."""
    sections = [
        findings_html(res, esc),
        section_summary(res),
        section_categories(res),
        section_bias(res),
        diversity_html(res.diversity_meta, _table),
        alignment_html(res.root, _table),
        safety_html(res, _table, reveal_unsafe),
        section_fd(res),
        robustness_html(res.root),
        "<h2 id='images'>Images per prompt</h2>"
        + image_grids(res, max_prompts, max_per_prompt, reveal_unsafe, out),
        "<h2 id='memorization'>Memorization</h2>" + memorization_pairs(res),
        section_methodology(res),
    ]
    nav = " · ".join(f"<a href='#{a}'>{t}</a>" for a, t in (
        ("findings", "findings"), ("summary", "summary"), ("skills", "categories"), ("bias", "bias"),
        ("diversity", "diversity"), ("alignment", "alignment"), ("fd", "FD vs N"),
        ("images", "images"), ("memorization", "memorization"), ("methodology", "methodology")))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>t2i-audit report: {esc(res.run_id)}</title><style>{CSS}</style></head><body>"
            f"<h1>t2i-audit report: {esc(res.run_id)}</h1><p class='note'>{nav}</p>"
            + "".join(sections) + "</body></html>\n")


def frame_html(df: pd.DataFrame) -> str:
    """Any frame as an escaped HTML table (used by compare)."""
    return _table(list(df.columns), [[fmt_num(v) if isinstance(v, float) else v for v in r] for r in df.values])
