"""The alignment rows compare and gate read: ``alignment.<score>[<skill>]`` metric keys.

One function, :func:`alignment_rows`, reads RUN/alignment/summary.json and returns flat rows
{metric, value, ci_low, ci_high, n, n_prompts, method}: ``alignment.tifa`` (overall scores),
``alignment.accuracy[relation]`` (judge-raw share right per skill) and
``alignment.calibrated[relation]`` (label-calibrated) and ``alignment.oracle[relation]`` (the
PictoWorld oracle's truth on every pair, when the run has it). No file: no rows.
:func:`side_by_side` gives the per-skill judge-raw / label-calibrated / oracle-truth table the main
job's summary and the report show. Torch-free (reports import it).
"""

from __future__ import annotations

import json
from pathlib import Path


def read_summary(run_dir: str | Path) -> dict | None:
    p = Path(run_dir) / "alignment" / "summary.json"
    return json.loads(p.read_text()) if p.is_file() else None


def alignment_rows(run_dir: str | Path) -> list[dict]:
    s = read_summary(run_dir)
    if s is None:
        return []
    rows = [{"metric": f"alignment.{name}", **{k: e.get(k) for k in ("value", "ci_low", "ci_high", "n", "n_prompts",
                                                                     "method")}}
            for name, e in s.get("scores", {}).items()]
    for e in s.get("skills", []):
        stat = "accuracy" if e["statistic"] == "accuracy" else "soft_tifa"
        rows.append({"metric": f"alignment.{stat}[{e['skill']}]", **{k: e.get(k) for k in (
            "value", "ci_low", "ci_high", "n", "n_prompts", "method")}})
    for e in s.get("calibrated", []) or []:
        rows.append({"metric": f"alignment.calibrated[{e['skill']}]", "value": e["calibrated"],
                     "ci_low": e["calibrated_ci_low"], "ci_high": e["calibrated_ci_high"], "n": e["n_pairs"],
                     "n_prompts": e["n_prompts"], "method": s.get("calibrated_method", "")})
    for e in s.get("oracle_truth", []) or []:
        rows.append({"metric": f"alignment.oracle[{e['skill']}]", **{k: e.get(k) for k in (
            "value", "ci_low", "ci_high", "n", "n_prompts", "method")}})
    return rows


SIDE_HEADER = ["skill", "pairs", "judge-raw", "95% CI", "label-calibrated", "95% CI", "labels n",
               "judge accuracy on labels", "oracle truth", "95% CI"]


def _ci(lo, hi) -> str:
    ok = lo is not None and hi is not None and lo == lo and hi == hi
    return f"[{lo:.3f}, {hi:.3f}]" if ok else "n/a"


def _v(x) -> str:
    return f"{x:.3f}" if x is not None and x == x else "n/a"


def side_by_side(s: dict) -> list[list]:
    """Per skill: pairs, judge-raw share right [CI], label-calibrated [CI], labels n, the judge's
    accuracy on the labels, oracle truth [CI] (cells 'n/a' where the run lacks one)."""
    raw = {e["skill"]: e for e in s.get("skills", []) if e["statistic"] == "accuracy"}
    cal = {e["skill"]: e for e in s.get("calibrated", []) or []}
    tru = {e["skill"]: e for e in s.get("oracle_truth", []) or []}
    rows = []
    for k in sorted(raw):
        r, c, t = raw[k], cal.get(k, {}), tru.get(k, {})
        acc = c.get("judge_accuracy")
        rows.append([k, r["n"], _v(r["value"]), _ci(r["ci_low"], r["ci_high"]), _v(c.get("calibrated")),
                     _ci(c.get("calibrated_ci_low"), c.get("calibrated_ci_high")), c.get("n_labelled", 0),
                     f"{_v(acc)} {_ci(c.get('judge_accuracy_ci_low'), c.get('judge_accuracy_ci_high'))}"
                     if c else "n/a", _v(t.get("value")), _ci(t.get("ci_low"), t.get("ci_high"))])
    return rows


def methodology(s: dict) -> list[str]:
    """The lines that say what was measured: judge, normalisation, labels, estimand, methods."""
    j = s.get("judge", {})
    lab = s.get("labels", {})
    out = [f"judge: {j.get('spec')} (revision {j.get('revision')}); P(yes) normalisation: {j.get('normalisation')}"
           f"; soft scores: {'yes' if j.get('soft') else 'no'}",
           f"pairs: {s.get('n_pairs')} (image, question) pairs, {s.get('n_images')} images, {s.get('n_prompts')} "
           "prompts; judge-raw = share of pairs the judge answers as expected (95% cluster bootstrap over prompts)"]
    if lab.get("n_labels"):
        out.append(f"labels: {lab['n_labels']} by {lab.get('labeller', 'hand')} ({lab.get('design', lab.get('file', ''))}"
                   f"; {lab.get('n_unsure', 0)} unsure); label-calibrated: {s.get('calibrated_method', '')}")
    if s.get("oracle_truth"):
        out.append(f"oracle truth: {s['oracle_truth'][0]['method']}")
    out.append(f"estimand: {s.get('estimand', '')}")
    return out


def alignment_items(run_dir: str | Path, manifest) -> object:
    """Per-image alignment values as compare's items (prompt_id, seed, metric, value, category):
    ``alignment.<score>`` from RUN/alignment/scores.parquet and ``alignment.accuracy[<skill>]`` (the
    image's share of the skill's questions the judge answers as expected) from answers.parquet, so
    ``compare`` pairs them per (prompt, seed) like any other per-image metric. None: no alignment."""
    import numpy as np
    import pandas as pd

    d = Path(run_dir) / "alignment"
    if manifest is None or not (d / "scores.parquet").is_file():
        return None
    m = manifest[["image_id", "prompt_id", "seed"] + (["category"] if "category" in manifest else [])]
    img = pd.read_parquet(d / "scores.parquet")
    scores = [c for c in ("vqascore", "tifa", "dsg", "dsg_gated", "soft_tifa_am", "soft_tifa_gm") if c in img]
    long = img.melt(id_vars=["image_id"], value_vars=scores, var_name="metric", value_name="value")
    long["metric"] = "alignment." + long["metric"]
    parts = [long]
    if (d / "answers.parquet").is_file():
        a = pd.read_parquet(d / "answers.parquet", columns=["image_id", "skill", "answer", "p_yes"])
        yes = a["answer"].astype(str).str.lower().eq("yes").to_numpy()
        a["value"] = (np.where(yes, a["p_yes"], 1 - a["p_yes"]) >= 0.5).astype(float)
        acc = a.groupby(["image_id", "skill"], sort=True)["value"].mean().reset_index()
        acc["metric"] = "alignment.accuracy[" + acc["skill"] + "]"
        parts.append(acc[["image_id", "metric", "value"]])
    out = pd.concat(parts, ignore_index=True).dropna(subset=["value"]).merge(m, on="image_id")
    if "category" not in out:
        out["category"] = "all"
    return out[["prompt_id", "seed", "metric", "value", "category"]]
