"""Robustness and counterfactual-fairness results: files, gate estimates, findings, Markdown, HTML.

``OUT/robustness/`` (default RUN_PERTURBED/robustness, or RUN/robustness for fairness alone) holds
``deltas.parquet`` (:data:`reports.robustness.DELTA_COLUMNS`), ``fairness.parquet``
(:data:`reports.fairness.FAIRNESS_COLUMNS`), ``robustness.json`` (summary, gate estimates, findings)
and ``report.md`` / ``report.html``. Gate keys: ``robustness.<metric>[<perturbation>]``,
``robustness.<metric>[<perturbation>:<category>]``, ``fairness.<metric>.max_disparity[<attribute>]``
and ``fairness.<metric>[<attribute>=<value>]``.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd

from t2i_audit.core.io import atomic_write_json, atomic_write_parquet, atomic_write_text
from t2i_audit.reports.md_safe import md_table, no_raw_html
from t2i_audit.reports.tables import fmt_ci, fmt_num

SCHEMA = "t2i-audit/robustness/1"
DIR = "robustness"
MATERIAL_PP = 0.05  # a finding needs |delta| >= 5 pp (or 5% of the source value for non-shares)


def _f(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def gate_estimates(deltas: pd.DataFrame | None, fairness: pd.DataFrame | None) -> list[dict]:
    """Gateable numbers: {name, group, value, ci_low, ci_high, n}."""
    out = []
    for r in (deltas.itertuples() if deltas is not None else ()):
        group = r.perturbation if r.group == "all" else f"{r.perturbation}:{r.group.split('=', 1)[1]}"  # category or change
        out.append({"name": f"robustness.{r.metric}", "group": group, "value": _f(r.delta), "ci_low": _f(r.ci_low),
                    "ci_high": _f(r.ci_high), "n": int(r.n)})
    for r in (fairness.itertuples() if fairness is not None else ()):
        if r.kind == "identity":
            out.append({"name": f"fairness.{r.metric}", "group": f"{r.attribute}={r.group}", "value": _f(r.value),
                        "ci_low": _f(r.ci_low), "ci_high": _f(r.ci_high), "n": int(r.n)})
        elif r.kind == "max_disparity":
            flip = (_f(r.value) or 0.0) < 0  # |difference|: the interval of the pair in the larger-first order
            lo, hi = (_f(-r.ci_high), _f(-r.ci_low)) if flip else (_f(r.ci_low), _f(r.ci_high))
            out.append({"name": f"fairness.{r.metric}.max_disparity", "group": str(r.attribute),
                        "value": abs(_f(r.value) or 0.0), "ci_low": lo, "ci_high": hi,
                        "n": int(r.n), "pair": str(r.group), "p_holm": _f(r.p_holm)})
    return out


def _material(delta: float, source: float, metric: str) -> bool:
    scale = 1.0 if metric in ("skills", "skill") or metric.startswith(("adherence.", "share.")) else abs(source)
    return abs(delta) >= MATERIAL_PP * (scale or 1.0)


def _pct(metric: str) -> bool:
    return metric in ("skills", "skill") or metric.startswith(("adherence.", "share."))


def _num(v, metric: str, signed: bool = False) -> str:
    if _pct(metric):
        return f"{100 * v:+.1f} pp" if signed else f"{100 * v:.1f}%"
    return f"{v:+.3g}" if signed else fmt_num(v)


def _ci(lo, hi, metric: str) -> str:
    if _pct(metric):
        return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return fmt_ci(lo, hi)


def findings(deltas: pd.DataFrame | None, fairness: pd.DataFrame | None, source_run: str | None = None) -> list[str]:
    """Sentences from numbers: per perturbation the largest material delta whose interval excludes 0,
    and per attribute the flagged largest disparity."""
    out = []
    if deltas is not None and len(deltas):
        d = deltas[(deltas["group"] == "all") & ((deltas["ci_low"] > 0) | (deltas["ci_high"] < 0))]
        d = d[[_material(r.delta, r.source, r.metric) for r in d.itertuples()]] if len(d) else d
        d = d[~d["metric"].str.startswith("share.")] if len(d) else d
        for pert, g in d.groupby("perturbation", sort=True):
            size = [abs(x.delta) if _pct(x.metric) else abs(x.delta) / max(abs(x.source), 1e-9) for x in g.itertuples()]
            r = g.iloc[max(range(len(size)), key=size.__getitem__)]
            way = "lowers" if r.delta < 0 else "raises"
            by = f"{100 * abs(r.delta):.1f} pp" if _pct(r.metric) else f"{abs(r.delta):.3g}"
            out.append(f"Perturbation {pert} {way} {r.metric} by {by} ({_num(r.source, r.metric)} → {_num(r.perturbed, r.metric)}; "
                       f"paired delta {_num(r.delta, r.metric, True)} {_ci(r.ci_low, r.ci_high, r.metric)}, "
                       f"n={int(r.n)} image pairs over {int(r.n_prompts)} source prompts).")
    if fairness is not None and len(fairness):
        f = fairness[(fairness["kind"] == "max_disparity") & fairness["flagged"].astype(bool)]
        for r in f.itertuples():
            out.append(f"{r.metric} differs by {r.attribute}: {r.group} = {_num(r.value, r.metric, True)} "
                       f"{_ci(r.ci_low, r.ci_high, r.metric)} (Holm p = {r.p_holm:.3g}, n={int(r.n)} images in "
                       f"{int(r.n_prompts)} prompt families{f'; run {source_run}' if source_run else ''}).")
    return out


def write_results(out: str | Path, deltas: pd.DataFrame | None, fairness: pd.DataFrame | None,
                  summary: dict) -> dict:
    """Write the result files and the report; returns robustness.json's content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if deltas is not None:
        atomic_write_parquet(out / "deltas.parquet", deltas)
    if fairness is not None:
        atomic_write_parquet(out / "fairness.parquet", fairness)
    meta = {"schema": SCHEMA, **summary, "gate": gate_estimates(deltas, fairness),
            "findings": findings(deltas, fairness, summary.get("source_run"))}
    atomic_write_json(out / "robustness.json", meta)
    atomic_write_text(out / "report.md", markdown(deltas, fairness, meta), fsync=False)
    atomic_write_text(out / "report.html", html_page(deltas, fairness, meta), fsync=False)
    return meta


def read_results(run_dir: str | Path) -> dict | None:
    """RUN/robustness/robustness.json, or None (for findings and the gate)."""
    p = Path(run_dir) / DIR / "robustness.json"
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_text())
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and str(meta.get("schema", "")).startswith("t2i-audit/robustness/") else None


def _delta_rows(deltas: pd.DataFrame) -> list[list]:
    return [[r.perturbation, r.metric, r.group, fmt_num(r.source), fmt_num(r.perturbed), fmt_num(r.delta),
             fmt_ci(r.ci_low, r.ci_high), fmt_num(r.p_value), int(r.n), int(r.n_prompts), int(r.n_unchanged)]
            for r in deltas.itertuples()]


DELTA_HEAD = ["perturbation", "metric", "group", "source", "perturbed", "delta", "95% CI", "p", "n pairs",
              "source prompts", "unchanged prompts"]
FAIR_HEAD = ["attribute", "metric", "kind", "identity / pair", "value", "95% CI", "p", "Holm p", "n", "prompts",
             "flagged"]


def _fair_rows(fairness: pd.DataFrame) -> list[list]:
    return [[r.attribute, r.metric, r.kind, r.group, fmt_num(r.value), fmt_ci(r.ci_low, r.ci_high),
             fmt_num(r.p_value), fmt_num(r.p_holm), int(r.n), int(r.n_prompts), "yes" if r.flagged else ""]
            for r in fairness.itertuples()]


def markdown(deltas, fairness, meta: dict) -> str:
    lines = ["# Robustness and counterfactual fairness", ""]
    if meta.get("findings"):
        lines += ["## Findings", "", *[f"{i}. {t}" for i, t in enumerate(meta["findings"], 1)], ""]
    lines += [f"Source run: {meta.get('source_run', '–')}; perturbed run: {meta.get('perturbed_run', '–')}.", ""]
    lines += [f"- {n}" for n in meta.get("notes", [])] + ([""] if meta.get("notes") else [])
    if deltas is not None and len(deltas):
        lines += ["## Paired deltas (perturbed − source)", "",
                  "Images paired by (source prompt, seed); only prompts the perturbation changed; 95% intervals "
                  "from a cluster bootstrap over source prompts.", "", md_table(DELTA_HEAD, _delta_rows(deltas)), ""]
    if fairness is not None and len(fairness):
        lines += ["## Counterfactual fairness", "",
                  "Prompts from one template differing only in an identity slot; pair rows are the mean "
                  "within-family difference (first − second), intervals over prompt families, Holm over pairs.", "",
                  md_table(FAIR_HEAD, _fair_rows(fairness)), ""]
    return no_raw_html("\n".join(lines))


def _html_table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def html_section(deltas, fairness, meta: dict) -> str:
    parts = []
    if meta.get("findings"):
        items = "".join(f"<li>{html.escape(t)}</li>" for t in meta["findings"])
        parts.append(f"<h2 id='robustness-findings'>Findings</h2><ol class='findings'>{items}</ol>")
    if meta.get("notes"):
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in meta["notes"]) + "</ul>")
    if deltas is not None and len(deltas):
        parts.append("<h2 id='robustness'>Paired deltas (perturbed − source)</h2>"
                     "<p>Images paired by (source prompt, seed); 95% cluster-bootstrap intervals over source prompts.</p>"
                     + _html_table(DELTA_HEAD, _delta_rows(deltas)))
    if fairness is not None and len(fairness):
        parts.append("<h2 id='fairness'>Counterfactual fairness</h2><p>Within-family differences between "
                     "identities; intervals over prompt families; Holm over pairs.</p>"
                     + _html_table(FAIR_HEAD, _fair_rows(fairness)))
    return "".join(parts)


def html_page(deltas, fairness, meta: dict) -> str:
    from t2i_audit.reports.html_style import CSP, CSS

    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\"><title>Robustness</title>"
            f"<style>{CSS}</style></head><body><h1>Robustness and counterfactual fairness</h1>"
            f"{html_section(deltas, fairness, meta)}</body></html>")


def _frames(root: Path):
    d = Path(root) / DIR
    return tuple(pd.read_parquet(d / f) if (d / f).is_file() else None for f in ("deltas.parquet", "fairness.parquet"))


def run_section_html(root: str | Path) -> str:
    """The robustness section of a run's main report ('' when the run has no robustness results);
    findings go to the report's own Findings list."""
    meta = read_results(root)
    if meta is None:
        return ""
    deltas, fairness = _frames(Path(root))
    return "<section id='robustness-section'>" + html_section(deltas, fairness, {**meta, "findings": []}) + "</section>"


def run_section_md(root: str | Path) -> list[str]:
    meta = read_results(root)
    if meta is None:
        return []
    deltas, fairness = _frames(Path(root))
    body = markdown(deltas, fairness, {**meta, "findings": []}).split("\n")[2:]  # drop the page title
    return [line.replace("## ", "## Robustness: ", 1) if line.startswith("## ") else line for line in body]
