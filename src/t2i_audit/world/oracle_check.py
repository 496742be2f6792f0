"""Scoring oracle readings against ground truth from a PictoWorld manifest.

Truth comes from the manifest columns written by ``world render`` (kind, n_objects, shapes,
colors, positions, profession, presentation, skin, clothing). Per attribute, the table gives the accuracy on
the answered (non-abstained) items with a 95% Wilson interval, the abstention rate and n.
Objects are matched to the truth by their centre against the true slot centres (Hungarian
assignment, at most 6 canvas units apart); a true object with no match counts as wrong for shape,
colour and position (a miss is an error, not an abstention).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from t2i_audit.core.images import open_image
from t2i_audit.stats.resampling import wilson_interval
from t2i_audit.world.oracle import UNKNOWN, Reading
from t2i_audit.world.vocab import SLOT_CENTRES

ATTRIBUTES = ("kind", "count", "shape", "color", "position", "profession", "presentation", "skin",
              "clothing")
PERSON_ATTRIBUTES = ("profession", "presentation", "skin", "clothing")
MATCH_MAX_DIST = 6.0


def _as_list(v) -> list:
    if v is None:
        return []
    return list(v)


def truth_from_row(row) -> dict:
    """The ground truth of one manifest row (a dict or pandas Series)."""
    kind = "person" if row["kind"] == "person" else "shapes"
    t = {"kind": kind}
    if kind == "person":
        t.update(profession=row["profession"], presentation=row["presentation"], skin=row["skin"])
        if row.get("clothing") is not None:  # manifests written before clothing was recorded lack it
            t["clothing"] = row["clothing"]
    else:
        t["objects"] = [{"shape": s, "color": c, "position": p} for s, c, p in
                        zip(_as_list(row["shapes"]), _as_list(row["colors"]), _as_list(row["positions"]))]
        t["count"] = int(row["n_objects"])
    return t


def score(reading: Reading, truth: dict) -> dict[str, list[bool | None]]:
    """Per attribute, a list of outcomes: True (correct), False (wrong), None (abstained)."""
    out: dict[str, list[bool | None]] = {a: [] for a in ATTRIBUTES}
    out["kind"].append(None if reading.kind == UNKNOWN else reading.kind == truth["kind"])
    if truth["kind"] == "person":
        for a in PERSON_ATTRIBUTES:
            if a not in truth:
                continue
            v = getattr(reading, a)
            if reading.kind == UNKNOWN or v == UNKNOWN:
                out[a].append(None)
            else:
                out[a].append(v == truth[a])
        return out
    c = reading.count
    out["count"].append(None if c == UNKNOWN else c == truth["count"])
    objs = truth["objects"]
    read = reading.objects
    match: dict[int, int] = {}
    if objs and read:
        cost = np.array([[math.dist(SLOT_CENTRES[o["position"]], (r["x"], r["y"])) for r in read]
                         for o in objs])
        for i, j in zip(*linear_sum_assignment(cost)):
            if cost[i, j] <= MATCH_MAX_DIST:
                match[int(i)] = int(j)
    for i, o in enumerate(objs):
        for a in ("shape", "color", "position"):
            if i not in match:
                out[a].append(None if reading.kind == UNKNOWN else False)
                continue
            v = read[match[i]][a]
            out[a].append(None if v == UNKNOWN else v == o[a])
    return out


def tabulate(outcomes: Iterable[dict[str, list[bool | None]]]) -> list[dict]:
    """Aggregate per-image outcomes into rows: attribute, n, answered, correct, accuracy, CI,
    abstain_rate."""
    acc: dict[str, list[int]] = {a: [0, 0, 0] for a in ATTRIBUTES}  # n, answered, correct
    for o in outcomes:
        for a, vals in o.items():
            for v in vals:
                acc[a][0] += 1
                if v is not None:
                    acc[a][1] += 1
                    acc[a][2] += bool(v)
    rows = []
    for a in ATTRIBUTES:
        n, ans, cor = acc[a]
        if n == 0:
            continue
        lo, hi = wilson_interval(cor, ans, nan_if_empty=True)
        rows.append({"attribute": a, "n": n, "answered": ans, "correct": cor,
                     "accuracy": cor / ans if ans else float("nan"), "ci_low": lo, "ci_high": hi,
                     "abstain_rate": 1 - ans / n})
    return rows


def format_table(rows: list[dict], title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'attribute':<13}{'accuracy':>9}  {'95% CI':<17}{'abstain':>8}{'n':>8}")
    for r in rows:
        ci = f"[{100 * r['ci_low']:.2f}, {100 * r['ci_high']:.2f}]" if r["answered"] else "-"
        accs = f"{100 * r['accuracy']:.2f}%" if r["answered"] else "-"
        lines.append(f"{r['attribute']:<13}{accs:>9}  {ci:<17}{100 * r['abstain_rate']:>7.2f}%{r['n']:>8}")
    return "\n".join(lines)


def check_dataset(directory, corruptions: list[str] | None = None, *, seed: int = 0,
                  config=None, progress: bool = True) -> dict:
    """Run the oracle over a rendered data set (manifest.parquet + images) and score it against
    the manifest's truth columns, clean and under each corruption spec. Returns a JSON-able dict
    with one table per condition."""
    from pathlib import Path

    from tqdm import tqdm

    from t2i_audit.errors import InputError
    from t2i_audit.world.corrupt import corrupt, parse
    from t2i_audit.world.dataset import load_manifest
    from t2i_audit.world.oracle import ORACLE_VERSION, OracleConfig, read_image

    directory = Path(directory)
    try:
        df = load_manifest(directory)
    except FileNotFoundError as e:
        raise InputError(str(e)) from None
    missing = [c for c in ("file", "kind", "n_objects", "shapes", "colors", "positions", "profession",
                           "presentation", "skin") if c not in df.columns]
    if missing:
        raise InputError(f"{directory}/manifest.parquet: missing columns {', '.join(missing)}; "
                         "is it a `t2i-audit world render` data set?")
    conds = ["clean"] + [str(s) for s in (corruptions or [])]
    parsed = {c: (None if c == "clean" else parse(c)) for c in conds}
    cfg = config or OracleConfig()
    outcomes: dict[str, list] = {c: [] for c in conds}
    rows = df.to_dict("records")
    for i, row in enumerate(tqdm(rows, desc="oracle", unit="img", disable=not progress)):
        path = directory / row["file"]
        if not path.is_file():
            raise InputError(f"{path}: image listed in the manifest is missing; re-render the data set")
        with open_image(path) as im:
            img = im.convert("RGB")
        truth = truth_from_row(row)
        for c in conds:
            x = img if parsed[c] is None else corrupt(img, parsed[c], seed=seed + i)
            outcomes[c].append(score(read_image(x, cfg), truth))
    return {
        "schema": "t2i-audit/world-check/1",
        "directory": str(directory),
        "n_images": len(rows),
        "seed": seed,
        "oracle_version": ORACLE_VERSION,
        "oracle_config": cfg.__dict__,
        "method": "accuracy on non-abstained items with 95% Wilson interval; abstain_rate = share "
                  "'unknown'; objects matched to true slots by Hungarian assignment (<= 6 units), "
                  "a missed object counts as wrong; person attributes scored on person scenes, "
                  "count/shape/colour/position on shape scenes",
        "tables": {c: tabulate(outcomes[c]) for c in conds},
    }
