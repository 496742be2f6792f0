"""Report tables: every result of a run as a pandas long table, written as CSV, Parquet and JSON.

Tables (each only when its input exists): ``aggregates`` (metric, group, value, 95% CI, n, method),
``items`` (one row per image and metric, with the prompt text and the check's detail), ``bias``
(raw and corrected class shares with intervals against the reference), ``bias_stats``,
``memorization`` (top pairs) and ``methodology`` (source, key, text) listing every methodology
string found in the result files. JSON files carry ``schema: t2i-audit/table/1``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from t2i_audit.core.io import atomic_write_bytes, atomic_write_parquet
from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.reports.results import RunResults

TABLE_SCHEMA = "t2i-audit/table/1"
FORMATS = ("md", "html", "csv", "parquet", "json")
TABLE_FORMATS = ("csv", "parquet", "json")


def fmt_num(v, digits: int = 3) -> str:
    """A number for people: 3 significant decimals for small values, fewer for big ones."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if v != 0 and (abs(v) >= 1000 or abs(v) < 10 ** -digits):
        return f"{v:.{digits}g}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 10:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def bias_headline(row) -> tuple[float, float, float]:
    """(share, ci_low, ci_high) a bias row leads with: label-calibrated (PPI++) where the audit had
    labels, else corrected through the calibration set, else raw (the audit's headline rule)."""
    import math

    def finite(name: str) -> bool:
        v = getattr(row, name, None)
        return v is not None and isinstance(v, (int, float)) and math.isfinite(v)

    for pre, lo, hi in (("ppi", "ppi_ci_low", "ppi_ci_high"), ("corrected", "corr_ci_low", "corr_ci_high"),
                        ("raw", "raw_ci_low", "raw_ci_high")):
        if finite(pre):
            return getattr(row, pre), getattr(row, lo), getattr(row, hi)
    return row.raw, row.raw_ci_low, row.raw_ci_high


def fmt_ci(lo, hi) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "–"
    return f"[{fmt_num(lo)}, {fmt_num(hi)}]"


def _flatten(prefix: str, value) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return out
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return [(prefix, "; ".join(str(v) for v in value))]
        out = []
        for i, v in enumerate(value):
            out += _flatten(f"{prefix}[{i}]", v)
        return out
    return [(prefix, str(value))]


def methodology_rows(res: RunResults) -> pd.DataFrame:
    """Every methodology string in the result files: (source, key, text), in file order."""
    rows: list[tuple[str, str, str]] = []
    run = res.run
    for key in ("suite", "generator", "params", "seed_policy", "images_per_prompt", "package_version",
                "git_hash"):
        if key in run and key != "generator":
            rows += [("run.json", k, v) for k, v in _flatten(key, run[key])]
        elif key == "generator" and isinstance(run.get(key), dict):
            gen = {k: v for k, v in run[key].items() if k != "config"}
            rows += [("run.json", k, v) for k, v in _flatten(key, gen)]
    if res.scores_meta:
        for part in ("evaluators", "methodology"):
            rows += [("scores/results.json", k, v) for k, v in _flatten(part, res.scores_meta.get(part, {}))]
    if res.aggregates is not None:
        for (metric, method), _ in res.aggregates.groupby(["metric", "method"], sort=False):
            rows.append(("scores/aggregates.parquet", f"method.{metric}", str(method)))
    if res.bias_meta:
        for part, value in res.bias_meta.items():
            if part != "schema":
                rows += [("audits/bias.json", k, v) for k, v in _flatten(part, value)]
    if res.bias is not None:
        for probe in res.bias["probe"].dropna().unique():
            rows.append(("audits/bias.parquet", "probe", str(probe)))
    if res.memorization_meta:
        for part, value in res.memorization_meta.items():
            if part != "schema":
                rows += [("audits/memorization.json", k, v) for k, v in _flatten(part, value)]
    df = pd.DataFrame(rows, columns=["source", "key", "text"])
    return df.drop_duplicates(ignore_index=True)


def build_tables(res: RunResults) -> dict[str, pd.DataFrame]:
    """The long tables of a run (only those whose inputs exist), each with a ``run_id`` column."""
    tables: dict[str, pd.DataFrame] = {}
    rid = res.run_id

    def tag(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if "run_id" in df.columns:
            df = df.drop(columns="run_id")
        df.insert(0, "run_id", rid)
        return df.reset_index(drop=True)

    if res.aggregates is not None:
        tables["aggregates"] = tag(res.aggregates)
    if res.items is not None:
        items = res.items
        if res.manifest is not None:
            items = items.merge(res.manifest[["image_id", "text", "path"]], on="image_id", how="left")
        cols = [c for c in ("prompt_id", "image_id", "seed", "category", "metric", "value", "detail",
                            "text", "path") if c in items.columns]
        items = items[cols].sort_values(["metric", "prompt_id", "seed"], kind="stable")
        tables["items"] = tag(items)
    if res.bias is not None:
        tables["bias"] = tag(res.bias.sort_values(["attribute", "group", "cls"], kind="stable"))
    if res.bias_stats is not None:
        tables["bias_stats"] = tag(res.bias_stats.sort_values(["attribute", "group", "statistic"],
                                                              kind="stable"))
    if res.memorization is not None:
        tables["memorization"] = tag(res.memorization)
    tables["methodology"] = tag(methodology_rows(res))
    return tables


def table_json(name: str, df: pd.DataFrame) -> dict:
    rows = json.loads(df.to_json(orient="records", double_precision=15, force_ascii=False))
    return {"schema": TABLE_SCHEMA, "table": name, "columns": list(df.columns), "rows": rows}


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path,
                 formats: tuple[str, ...] = TABLE_FORMATS) -> list[Path]:
    """Write each table as ``<out>/<name>.<fmt>`` for fmt in csv/parquet/json. Returns the paths."""
    out = Path(out)
    bad = [f for f in formats if f not in TABLE_FORMATS]
    if bad:
        raise InputError(f"unknown table format {bad[0]!r}; choose from {', '.join(TABLE_FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        if "csv" in formats:
            p = out / f"{name}.csv"
            atomic_write_bytes(p, df.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode(),
                               fsync=False)
            written.append(p)
        if "parquet" in formats:
            p = out / f"{name}.parquet"
            atomic_write_parquet(p, df)
            written.append(p)
        if "json" in formats:
            p = out / f"{name}.json"
            atomic_write_bytes(p, (json.dumps(table_json(name, df), indent=1, ensure_ascii=False) + "\n").encode(),
                               fsync=False)
            written.append(p)
    return written


def parse_formats(text: str) -> tuple[str, ...]:
    """``"md,html,csv"`` → ('md', 'html', 'csv'), with a clear error for unknown names."""
    items = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    if not items:
        raise InputError(f"--format: empty; choose from {', '.join(FORMATS)}")
    for f in items:
        if f not in FORMATS:
            raise InputError(f"--format: unknown format {f!r}{did_you_mean(f, FORMATS)}; choose from {', '.join(FORMATS)}")
    return items
