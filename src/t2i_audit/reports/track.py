"""Trend across checkpoints: many runs of one suite (e.g. every N training steps) as one report.

``track_runs(runs, out, x="step")`` loads the runs, refuses runs of other suites or measured
another way (the gate's fingerprint check, ``reports.gate.fingerprint``), orders them by ``x``
(``step``: the run's ``params.step``, else the generator config's ``step``, else the last number
in the run directory's name; ``created``: run.json's time; ``name``), and for each tracked key
(the rules' keys with ``--rules``, else every ungrouped metric all runs share) writes:

- the value and 95% interval at every checkpoint (the band in the plots);
- the best checkpoint (by the key's direction, ``reports.gate.index.direction``);
- the difference to the previous and to the best checkpoint, with the gate's difference machinery
  (``reports.gate.run._difference``: counts for bias shares, the two intervals otherwise) at
  level 1 − 0.05/(checkpoints − 1) per key (Bonferroni over the comparisons), flagged a
  regression when the interval lies wholly on the worse side of 0.

Outputs: ``track.csv`` and ``track.parquet`` (tidy, one row per checkpoint and key),
``track.md`` and a self-contained ``track.html`` with one plot per key (no scripts).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import pandas as pd

from t2i_audit.errors import InputError
from t2i_audit.reports.gate.index import MetricIndex, direction
from t2i_audit.reports.md_safe import no_raw_html
from t2i_audit.reports.results import RunResults, load_run
from t2i_audit.reports.tables import fmt_ci, fmt_num


def _x(res: RunResults, how: str):
    if how == "name":
        return res.root.name
    if how == "created":
        return str(res.run.get("created") or "")
    for src in (res.run.get("params"), (res.run.get("generator") or {}).get("config")):
        if isinstance(src, dict) and isinstance(src.get("step"), (int, float)):
            return int(src["step"])
    nums = re.findall(r"\d+", res.root.name)
    if not nums:
        raise InputError(f"{res.root}: no step (params.step, generator config step or a number in the name); "
                         "use --x created or --x name")
    return int(nums[-1])


def _estimates(res: RunResults) -> dict:
    return {e.key: e for groups in MetricIndex(res).names.values() for e in groups.values()}


def _keys(runs: list[RunResults], rules: Path | None) -> list[str]:
    if rules is not None:
        from t2i_audit.reports.gate.rules import load_rules

        parsed, _ = load_rules(rules)
        keys = []
        for i, r in enumerate(parsed, 1):
            keys += [e.key for e in MetricIndex(runs[0]).resolve(r.ref, f"{rules}: rule {i}")]
        return list(dict.fromkeys(keys))
    common = set.intersection(*(set(k for g in MetricIndex(r).names.values() for k in
                                    [e.key for gg, e in g.items() if gg is None]) for r in runs))
    if not common:
        raise InputError("track: the runs share no ungrouped metric; score them alike or pass --rules")
    return sorted(common)


def _compare(runs, keys, allow):
    from t2i_audit.reports.gate.fingerprint import compare

    for r in runs[1:]:
        if r.suite_hash != runs[0].suite_hash:
            raise InputError(f"track: {r.root} is a run of suite hash {r.suite_hash}, {runs[0].root} of "
                             f"{runs[0].suite_hash}; track runs of one suite")
        need = tuple(sorted({k.split(".")[0] if k.split(".")[0] in ("bias", "safety", "memorization",
                            "diversity", "alignment", "robustness") else "scores" for k in keys}))
        compare(r, runs[0], need, allow)


def track_table(paths: list[str | Path], x: str = "step", rules: Path | None = None,
                allow_drift: tuple[str, ...] = ()) -> pd.DataFrame:
    from t2i_audit.reports.gate.run import _difference

    if len(paths) < 2:
        raise InputError("track: give at least 2 runs")
    runs = [load_run(p) for p in paths]
    runs.sort(key=lambda r: _x(r, x))
    keys = _keys(runs, rules)
    _compare(runs, keys, allow_drift)
    ests = [_estimates(r) for r in runs]
    level = 1 - 0.05 / max(len(runs) - 1, 1)
    rows = []
    for key in keys:
        seq = [e.get(key) for e in ests]
        d = direction(key.split("[")[0])
        vals = [s.value if s is not None else math.nan for s in seq]
        best = None
        if d is not None and any(math.isfinite(v) for v in vals):
            best = max((i for i, v in enumerate(vals) if math.isfinite(v)), key=lambda i: d * vals[i])
        for i, (r, s) in enumerate(zip(runs, seq)):
            row = {"x": _x(r, x), "run_id": r.run_id, "run": str(r.root), "key": key, "direction": d,
                   "value": vals[i], "ci_low": s.ci_low if s else math.nan, "ci_high": s.ci_high if s else math.nan,
                   "n": s.n if s else 0, "best": i == best}
            for tag, j in (("prev", i - 1), ("best", best)):
                row.update(_vs(runs, seq, i, j, level, d, tag, _difference))
            rows.append(row)
    return pd.DataFrame(rows)


def _vs(runs, seq, i, j, level, d, tag, difference) -> dict:
    out = {f"vs_{tag}_diff": math.nan, f"vs_{tag}_low": math.nan, f"vs_{tag}_high": math.nan,
           f"regression_vs_{tag}": False}
    if j is None or j < 0 or j == i or seq[i] is None or seq[j] is None:
        return out
    diff = difference(runs[i], runs[j], seq[i], seq[j], level, [])
    out.update({f"vs_{tag}_diff": diff.estimate, f"vs_{tag}_low": diff.ci_low, f"vs_{tag}_high": diff.ci_high})
    if d is not None:
        out[f"regression_vs_{tag}"] = bool(diff.ci_high < 0 if d > 0 else diff.ci_low > 0)
    return out


def _plot(df: pd.DataFrame, key: str) -> str:
    from t2i_audit.reports.plots import _plt, fig_to_data_uri

    plt = _plt()
    sub = df[df["key"] == key]
    xs = list(range(len(sub))) if sub["x"].dtype == object else sub["x"].tolist()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.fill_between(xs, sub["ci_low"], sub["ci_high"], alpha=0.25, label="95% CI")
    ax.plot(xs, sub["value"], marker="o", label=key)
    reg = sub["regression_vs_prev"] | sub["regression_vs_best"]
    ax.scatter([x for x, f in zip(xs, reg) if f], sub["value"][reg], color="red", zorder=3, s=60, label="regression")
    ax.set_xticks(xs, [str(v) for v in sub["x"]], rotation=30, fontsize=7)
    ax.set_title(key, fontsize=9)
    ax.legend(fontsize=7)
    return fig_to_data_uri(fig)


def _md(df: pd.DataFrame) -> str:
    lines = ["# t2i-audit track", "", f"{df['run'].nunique()} checkpoints, {df['key'].nunique()} metrics.", ""]
    for key, sub in df.groupby("key", sort=False):
        lines += [f"## `{key}`", "", "| x | run | value [95% CI] | n | vs previous [CI] | vs best [CI] | flag |",
                  "|---|---|---|---:|---|---|---|"]
        for r in sub.itertuples():
            flag = ("**regression vs previous** " if r.regression_vs_prev else "") + (
                "**regression vs best** " if r.regression_vs_best else "") + ("best" if r.best else "")
            lines.append(f"| {r.x} | {r.run_id} | {fmt_num(r.value)} {fmt_ci(r.ci_low, r.ci_high)} | {r.n} | "
                         f"{fmt_num(r.vs_prev_diff)} {fmt_ci(r.vs_prev_low, r.vs_prev_high)} | "
                         f"{fmt_num(r.vs_best_diff)} {fmt_ci(r.vs_best_low, r.vs_best_high)} | {flag.strip()} |")
        lines.append("")
    return no_raw_html("\n".join(lines))


def track_runs(paths, out: str | Path, x: str = "step", rules: Path | None = None,
               allow_drift: tuple[str, ...] = ()) -> tuple[pd.DataFrame, Path]:
    """Write the trend report under ``out``; return (tidy table, the HTML path)."""
    from t2i_audit.core.io import atomic_write_parquet, atomic_write_text

    df = track_table(paths, x, rules, allow_drift)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "track.csv", index=False)
    atomic_write_parquet(out / "track.parquet", df.assign(x=df["x"].astype(str)))
    md = _md(df)
    atomic_write_text(out / "track.md", md)
    body = [f"<h2>{html.escape(k)}</h2><img alt='{html.escape(k, quote=True)}' src='{_plot(df, k)}'>"
            for k in df["key"].unique()]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
            "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\"><title>t2i-audit track"
            "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}img{max-width:100%}</style>"
            "</head><body><h1>t2i-audit track</h1>" + "".join(body) + "<pre>" + html.escape(md) + "</pre></body></html>")
    atomic_write_text(out / "track.html", page)
    return df, out / "track.html"
