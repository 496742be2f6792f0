"""Markdown summary of a run: the headline metrics with intervals and n, per category, bias,
memorization, gate verdicts and the methodology. User text is escaped for Markdown tables."""

from __future__ import annotations

import pandas as pd

from t2i_audit.reports.alignment import alignment_md
from t2i_audit.reports.diversity import diversity_md, label_cells
from t2i_audit.reports.findings import findings_md
from t2i_audit.reports.md_safe import md_escape, md_table, no_raw_html
from t2i_audit.reports.results import RunResults, expected_images, memorization_summary
from t2i_audit.reports.safety import safety_md
from t2i_audit.reports.tables import fmt_ci, fmt_num, methodology_rows


def split_group(group: str) -> tuple[str, str]:
    """``category=people`` → ('category', 'people'); ``overall`` → ('overall', '')."""
    key, _, val = str(group).partition("=")
    return (key, val) if val else (key, "")


def run_header(res: RunResults) -> list[tuple[str, str]]:
    run = res.run
    suite = run.get("suite") if isinstance(run.get("suite"), dict) else {}
    gen = run.get("generator") if isinstance(run.get("generator"), dict) else {}
    n_img = len(res.manifest) if res.manifest is not None else None
    want = expected_images(res)
    images = "–" if n_img is None else (f"{n_img}" + (f" of {want} promised" if want and want != n_img else ""))
    n_prompts = res.manifest["prompt_id"].nunique() if res.manifest is not None else "–"
    return [
        ("run", res.run_id),
        ("suite", f"{suite.get('name', '?')} v{suite.get('version', '?')} (hash {suite.get('hash', '?')})"),
        ("generator", f"{gen.get('id', '?')} ({gen.get('kind', '?')}, config {gen.get('config_hash', '?')})"),
        ("params", ", ".join(f"{k}={v}" for k, v in (run.get("params") or {}).items()) or "–"),
        ("prompts × images", f"{n_prompts} prompts, {images} images, "
                              f"{run.get('images_per_prompt') or 'the suite default number of images'} per prompt"),
        ("created", str(run.get("created", "–"))),
    ]


def gate_rows(gate: dict) -> list[list]:
    return [[r.get("rule", ""), fmt_num(r.get("value")), fmt_ci(r.get("ci_low"), r.get("ci_high")),
             r.get("threshold_text", ""), r.get("verdict", "").upper()] for r in gate.get("rules", [])]


def markdown_summary(res: RunResults) -> str:
    out = [f"# t2i-audit report: {md_escape(res.run_id)}", ""]
    out += [md_table(["", ""], [list(r) for r in run_header(res)]), ""]
    out += findings_md(res)
    if res.gate:
        verdict = "PASS" if res.gate.get("passed") else "FAIL"
        out += [f"## Gate: {verdict}", "",
                md_table(["rule", "value", "95% CI", "threshold", "verdict"], gate_rows(res.gate)), ""]
    agg = res.aggregates
    if agg is None:
        out += ["## Metrics", "", "_No scores: scores/aggregates.parquet is missing (run `t2i-audit score`)._", ""]
    else:
        overall = agg[agg["group"] == "overall"]
        out += ["## Metrics (overall)", "",
                md_table(["metric", "value", "95% CI", "n prompts", "n images", "method"],
                         [[r.metric, fmt_num(r.value), fmt_ci(r.ci_low, r.ci_high), int(r.n_prompts),
                           int(r.n_images), r.method] for r in overall.itertuples()]), ""]
        by = agg[agg["group"] != "overall"]
        if len(by):
            out += ["## By group", "",
                    md_table(["metric", "group", "value", "95% CI", "n prompts", "n images"],
                             [[r.metric, r.group, fmt_num(r.value), fmt_ci(r.ci_low, r.ci_high),
                               int(r.n_prompts), int(r.n_images)] for r in by.itertuples()]), ""]
    out += (_bias_md(res) + diversity_md(res.diversity_meta, md_table) + alignment_md(res.root, md_table)
            + safety_md(res, md_table)
            + _memorization_md(res) + _robustness_md(res))
    meth = methodology_rows(res)
    out += ["## Methodology", "", md_table(["source", "key", "text"], meth.values.tolist()), ""]
    if res.missing:
        out += ["## Missing inputs", "", *[f"- `{m}`" for m in res.missing], ""]
    return no_raw_html("\n".join(out))  # user text in lists, headings and code spans too


def _bias_md(res: RunResults) -> list[str]:
    if res.bias is None:
        return ["## Bias", "", "_No bias audit: audits/bias.parquet is missing (run `t2i-audit audit bias`)._", ""]
    b = res.bias.sort_values(["attribute", "group", "cls"], kind="stable")
    by_probe = "probe" in b.columns  # a column names each row's probe (the main job audits with two)
    labelled = "ppi" in b.columns
    rows = [[*([r.probe] if by_probe else []), r.attribute, r.group, r.cls, *label_cells(r),
             f"{fmt_num(r.corrected)} {fmt_ci(r.corr_ci_low, r.corr_ci_high)}",
             f"{fmt_num(r.raw)} {fmt_ci(r.raw_ci_low, r.raw_ci_high)}", fmt_num(r.reference),
             int(r.n_images), fmt_num(r.abstain_rate)] for r in b.itertuples()]
    out = [f"## Bias (class shares: {'label-calibrated vs ' if labelled else ''}corrected vs raw vs reference)", "",
           md_table([*(["probe"] if by_probe else []), "attribute", "group", "class",
                     *(["label-calibrated [95% CI]"] if labelled else []),
                     "corrected [95% CI]", "raw [95% CI]", "reference", "n images", "abstain"], rows), ""]
    if res.bias_stats is not None:
        s = res.bias_stats.sort_values(["attribute", "group", "statistic"], kind="stable")
        by_probe = "probe" in s.columns
        out += ["### Bias statistics", "",
                md_table([*(["probe"] if by_probe else []), "attribute", "group", "statistic", "value", "95% CI", "n"],
                         [[*([r.probe] if by_probe else []), r.attribute, r.group, r.statistic, fmt_num(r.value),
                           fmt_ci(r.ci_low, r.ci_high), int(r.n)] for r in s.itertuples()]), ""]
    return out


def _memorization_md(res: RunResults) -> list[str]:
    meta, pairs = res.memorization_meta, res.memorization
    if meta is None and pairs is None:
        return ["## Memorization", "", "_No memorization audit (run `t2i-audit audit memorization`)._", ""]
    out = ["## Memorization", ""]
    if meta:
        m = memorization_summary(meta)
        out += [f"Near-copy rate {fmt_num(m['rate'])} {fmt_ci(m['ci_low'], m['ci_high'])}, "
                f"n = {m['n']}, threshold {m['threshold']}.", ""]
    if pairs is not None and len(pairs):
        cols = [c for c in pairs.columns if "path" not in c]
        rows = [[fmt_num(v) if isinstance(v, float) else v for v in r] for r in pairs[cols].head(10).values]
        out += [md_table(cols, rows), ""]
    return out


def summary_frame(res: RunResults) -> pd.DataFrame:
    """The overall aggregates as a small frame (for CLI printing)."""
    if res.aggregates is None:
        return pd.DataFrame(columns=["metric", "value", "ci", "n_images"])
    o = res.aggregates[res.aggregates["group"] == "overall"]
    return pd.DataFrame({"metric": o["metric"], "value": [fmt_num(v) for v in o["value"]],
                         "95% CI": [fmt_ci(a, b) for a, b in zip(o["ci_low"], o["ci_high"])],
                         "n_images": o["n_images"]})


def _robustness_md(res: RunResults) -> list[str]:
    from t2i_audit.reports.robustness_report import run_section_md

    return run_section_md(res.root)
