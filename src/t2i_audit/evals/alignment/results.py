"""The alignment rows compare and gate read: ``alignment.<score>[<skill>]`` metric keys.

One function, :func:`alignment_rows`, reads RUN/alignment/summary.json and returns flat rows
{metric, value, ci_low, ci_high, n, n_prompts, method}: ``alignment.tifa`` (overall scores),
``alignment.accuracy[relation]`` (judge-raw share right per skill) and
``alignment.calibrated[relation]`` (label-calibrated). No file: no rows.
"""

from __future__ import annotations

import json
from pathlib import Path


def alignment_rows(run_dir: str | Path) -> list[dict]:
    p = Path(run_dir) / "alignment" / "summary.json"
    if not p.is_file():
        return []
    s = json.loads(p.read_text())
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
    return rows
