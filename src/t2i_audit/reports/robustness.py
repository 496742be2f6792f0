"""Robustness: paired differences between a run and its perturbed twin, from result files only.

A perturbed run (``t2i-audit sample --perturb ...``) records, per prompt, its source prompt and the
perturbation (RUN/perturb/prompts.parquet). Its images pair with the source run's by (source
prompt, seed). For every per-image metric both runs hold -- scores/items.parquet (skills,
clip_score, alignment scores) and, from audits/bias_items.parquet, per-attribute adherence where the
prompt names the attribute and class shares where it leaves it open -- the paired difference
(perturbed - source) is estimated per perturbation and per category with a cluster bootstrap over
source prompts (:func:`t2i_audit.stats.proportions.paired_cluster_bootstrap`).

Only prompts the perturbation changed enter a delta; unchanged ones are counted (n_unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from t2i_audit.core.rundir import read_run
from t2i_audit.errors import InputError
from t2i_audit.stats.proportions import paired_cluster_bootstrap

DELTA_COLUMNS = ("perturbation", "metric", "group", "source", "perturbed", "delta", "ci_low", "ci_high",
                 "p_value", "n", "n_prompts", "n_unchanged", "n_unpaired", "method")
UNREAD = ("unknown", "abstain", "", "none")


def _expects(manifest: pd.DataFrame) -> dict[str, dict]:
    out = {}
    if "expect" not in manifest:
        return out
    for pid, e in zip(manifest["prompt_id"], manifest["expect"]):
        if isinstance(e, str) and e:
            try:
                out[str(pid)] = json.loads(e) or {}
            except ValueError:
                raise InputError(f"manifest expect of {pid}: not valid JSON") from None
    return out


def _readings(root: Path) -> pd.DataFrame | None:
    """One probe per single attribute from audits/bias_items.parquet (an oracle probe first)."""
    path = root / "audits" / "bias_items.parquet"
    if not path.is_file():
        return None
    b = pd.read_parquet(path)
    b = b[~b["attribute"].astype(str).str.contains("×")]
    keep = []
    for _, d in b.groupby("attribute", sort=True):
        probes = sorted(d["probe"].astype(str).unique(), key=lambda p: (not p.startswith("oracle"), p))
        keep.append(d[d["probe"].astype(str) == probes[0]])
    return pd.concat(keep) if keep else None


def item_values(run_dir: str | Path) -> pd.DataFrame:
    """Per-image values of every metric a run holds: prompt_id, seed, category, metric, value."""
    root = Path(run_dir)
    _, manifest = read_run(root, require_complete=True, require_images=True)
    frames = []
    items_path = root / "scores" / "items.parquet"
    if items_path.is_file():
        it = pd.read_parquet(items_path)
        it = it[pd.to_numeric(it["value"], errors="coerce").notna()]
        frames.append(it[["prompt_id", "seed", "category", "metric", "value"]].astype({"value": float}))
    rd = _readings(root)
    if rd is not None and len(rd):
        expects = _expects(manifest)
        meta = manifest.set_index("image_id")[["seed", "category"]]
        rd = rd[rd["image_id"].isin(meta.index)]
        rows = []
        classes = {a: sorted(set(d["reading"].astype(str)) - set(UNREAD)) for a, d in rd.groupby("attribute")}
        for r in rd.itertuples():
            person = (expects.get(str(r.prompt_id)) or {}).get("person") or {}
            seed, cat = meta.loc[r.image_id, "seed"], meta.loc[r.image_id, "category"]
            attr, reading = str(r.attribute), str(r.reading)
            if attr in person:
                rows.append((r.prompt_id, seed, cat, f"adherence.{attr}", float(reading == person[attr])))
            else:
                rows += [(r.prompt_id, seed, cat, f"share.{attr}={c}", float(reading == c)) for c in classes[attr]]
        frames.append(pd.DataFrame(rows, columns=["prompt_id", "seed", "category", "metric", "value"]))
    if not frames or all(f.empty for f in frames):
        raise InputError(f"{root}: no per-image results; run `t2i-audit score {root}` (and `t2i-audit audit bias`) first")
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"prompt_id": str, "seed": "int64", "category": str, "metric": str})


def prompt_table(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """RUN/perturb/prompts.parquet and perturb.json of a perturbed run."""
    root = Path(run_dir) / "perturb"
    if not (root / "prompts.parquet").is_file() or not (root / "perturb.json").is_file():
        raise InputError(f"{run_dir}: not a perturbed run (no perturb/prompts.parquet); sample it with "
                         f"`t2i-audit sample --perturb NAME[:ARG] ...`")
    try:
        meta = json.loads((root / "perturb.json").read_text())
    except ValueError:
        raise InputError(f"{root / 'perturb.json'}: not valid JSON; re-run the same `t2i-audit sample`") from None
    return pd.read_parquet(root / "prompts.parquet"), meta


def paired_deltas(source_run: str | Path, perturbed_run: str | Path, *, n_boot: int = 2000,
                  seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The delta table (DELTA_COLUMNS) and a summary (source/perturbed ids, notes)."""
    table, pmeta = prompt_table(perturbed_run)
    src_meta, _ = read_run(source_run)
    want = (pmeta.get("source_suite") or {}).get("hash")
    have = (src_meta.get("suite") or {}).get("hash")
    if want and have and want != have:
        raise InputError(f"{source_run}: suite hash {have} but {perturbed_run} perturbed suite hash {want}; "
                         "give the run the perturbed one was derived from")
    deltas = compute_deltas(item_values(source_run), item_values(perturbed_run), table, n_boot=n_boot, seed=seed)
    if deltas.empty:
        raise InputError(f"{perturbed_run}: no image pairs with {source_run} on (source prompt, seed) and a metric "
                         "both runs hold; sample both with the same --images-per-prompt and --limit, and score both")
    summary = {"source_run": str(src_meta.get("run_id")), "perturbations": pmeta.get("perturbations", []),
               "perturb_seed": pmeta.get("seed"), "counts": pmeta.get("counts", {}), "notes": pmeta.get("notes", [])}
    return deltas, summary


def compute_deltas(a: pd.DataFrame, b: pd.DataFrame, table: pd.DataFrame, *, n_boot: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """DELTA_COLUMNS from source items ``a``, perturbed items ``b`` (prompt_id, seed, category, metric,
    value) and the prompt table (prompt_id, source_prompt_id, perturbation, changed, category)."""
    link = table[table["changed"].astype(bool)][["prompt_id", "source_prompt_id", "perturbation"]].copy()
    # identity swaps run both ways (man→woman and woman→man): each direction is a group of its own,
    # since a gap between identities cancels in the pooled delta
    link["direction"] = [_direction(pert, ch) for pert, ch in
                         zip(link["perturbation"], table.loc[link.index, "changes"] if "changes" in table else [None] * len(link))]
    b = b.merge(link, on="prompt_id", how="inner")
    a = a.rename(columns={"prompt_id": "source_prompt_id", "value": "value_src"})
    m = b.merge(a[["source_prompt_id", "seed", "metric", "value_src"]], on=["source_prompt_id", "seed", "metric"],
                how="left")
    rows = []
    for (pert, metric), d in m.groupby(["perturbation", "metric"], sort=True):
        unchanged = table[(table["perturbation"] == pert) & ~table["changed"].astype(bool)]
        dirs = [(f"change={c}", x) for c, x in d.groupby("direction", sort=True) if c]
        for group, g in [("all", d), *((f"category={c}", x) for c, x in d.groupby("category", sort=True)), *dirs]:
            ok = g[g["value_src"].notna()]
            n_unpaired = int(len(g) - len(ok))
            n_unch = int(len(unchanged) if group == "all" else (unchanged["category"] == group[9:]).sum()
                         if group.startswith("category=") else 0)
            if ok.empty:
                continue
            diff = ok["value"].to_numpy(float) - ok["value_src"].to_numpy(float)
            r = paired_cluster_bootstrap(diff, ok["source_prompt_id"].to_numpy(), n_boot=n_boot, seed=seed)
            rows.append({"perturbation": pert, "metric": metric, "group": group,
                         "source": float(ok["value_src"].mean()), "perturbed": float(ok["value"].mean()),
                         "delta": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value,
                         "n": r.n, "n_prompts": r.n_clusters, "n_unchanged": n_unch, "n_unpaired": n_unpaired,
                         "method": r.method + "; clusters: source prompts"})
    return pd.DataFrame(rows, columns=list(DELTA_COLUMNS))


def _direction(perturbation: str, changes) -> str:
    """``man→woman`` for a swap that changed one kind of word (lower case); '' otherwise."""
    if not str(perturbation).startswith("swap") or not isinstance(changes, str):
        return ""
    try:
        kinds = {c.lower() for c in json.loads(changes)}
    except ValueError:
        return ""
    return kinds.pop() if len(kinds) == 1 else ""
