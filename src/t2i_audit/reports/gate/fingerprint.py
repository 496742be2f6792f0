"""A run's fingerprint, assembled from what each stage recorded, and the gate's like-for-like check.

Two parts (flat ``key -> text`` maps, keys prefixed by the result group that records them):

- ``measures`` (what measured; a difference makes a comparison unlike): ``suite``;
  ``scores.evaluator.<role>`` (the evaluator id, which carries its weights hash and hub revision),
  ``scores.method.<metric>`` (estimand and interval method of each aggregate),
  ``scores.settings`` (bootstrap replicates and seed, reference set); for each audit
  (``bias``, ``memorization``, ``diversity``, ``safety``, ``robustness``, ``alignment``):
  ``<audit>.probe`` / ``<audit>.judge`` (the probe or judge spec), ``<audit>.calibration.<probe>``
  (a hash of the calibration counts), ``<audit>.settings`` (its config, estimand and interval
  method) and ``<audit>.file.<config key>`` (sha256 of each file its config names: labels,
  probe and judge files).
- ``runs`` (what ran; differences are listed, not refused): package version, git hash, Python,
  numpy and torch versions, device and dtype of ``sample`` (``sample.*``) and of each later stage
  (``scores.*``, ``bias.*``, ...).

:func:`compare` checks the measures the rules read (the suite, plus the groups of the rules'
metrics): a difference is an input error naming the first key, unless ``--allow-drift KEY`` (a
key or a dotted prefix of one) allows it; allowed measure differences and every ``runs``
difference are returned for the verdict. Torch-free.
"""

from __future__ import annotations

import hashlib
import json

from t2i_audit.reports.gate.rules import GateRuleError
from t2i_audit.reports.results import RunResults

AUDITS = ("bias", "memorization", "diversity", "safety", "robustness", "alignment")
# config keys that change how fast or where, not what is measured
NOT_MEASURES = {"progress", "batch_size", "threads", "cache", "cache_dir", "out", "run", "run_dir", "metrics",
                "workers", "device", "num_workers", "resume", "labels_out", "html", "port"}
SCORE_SETTINGS = ("reps", "dist_reps", "seed", "reference", "reference_n", "reference_seed", "kid_subsets",
                  "kid_subset_size", "fd_inf_points")
WHAT = {"evaluator": "evaluator", "method": "estimand/interval method", "settings": "settings",
        "probe": "probe", "judge": "judge", "calibration": "calibration labels", "file": "input file",
        "suite": "suite"}


def _text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


def _digest(v) -> str:
    return hashlib.sha256(_text(v).encode()).hexdigest()[:16]


def _stage_runs(out: dict, stage: str, fp: dict | None) -> None:
    for k, v in ((fp or {}).get("runs") or {}).items():
        if v is not None:
            out[f"{stage}.{k}"] = _text(v)


def _audit_measures(m: dict, name: str, meta: dict | None) -> None:
    if not isinstance(meta, dict):
        return
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    for key in ("probe", "judge"):
        if meta.get(key) is not None:
            m[f"{name}.{key}"] = _text(meta[key])
    cal = meta.get("calibration")
    if isinstance(cal, dict):
        for probe, c in cal.items():
            if isinstance(c, dict) and c.get("counts") is not None:
                m[f"{name}.calibration.{probe}"] = _digest(c["counts"])
    settings = {k: v for k, v in cfg.items() if k not in NOT_MEASURES}
    for key in ("estimand", "method", "interval"):
        if key in meta and not isinstance(meta[key], (dict, list)):
            settings.setdefault(key, meta[key])
    if settings:
        m[f"{name}.settings"] = _text(settings)
    for k, h in ((meta.get("fingerprint") or {}).get("files") or {}).items():
        if k.split(".")[0] not in NOT_MEASURES:
            m[f"{name}.file.{k}"] = h


def run_fingerprint(res: RunResults) -> dict[str, dict[str, str]]:
    """``{"measures": {...}, "runs": {...}}`` of a loaded run (see the module docstring)."""
    m: dict[str, str] = {}
    r: dict[str, str] = {}
    suite = res.run.get("suite") if isinstance(res.run.get("suite"), dict) else {}
    m["suite"] = f"{suite.get('name', '?')} (hash {res.suite_hash})"
    env = res.run.get("environment") if isinstance(res.run.get("environment"), dict) else {}
    for k, v in {**{k: v for k, v in env.items() if k != "threads"}, "package_version": res.run.get("package_version"),
                 "git_hash": res.run.get("git_hash"), "device": res.run.get("device"),
                 "dtype": res.run.get("dtype")}.items():
        if v is not None and k != "package":
            r[f"sample.{k}"] = _text(v)
    sm = res.scores_meta or {}
    for role, ident in (sm.get("evaluators") or {}).items():
        m[f"scores.evaluator.{role}"] = _text(ident)
    if res.aggregates is not None and "method" in res.aggregates.columns:
        for metric, methods in res.aggregates.groupby("metric")["method"]:
            m[f"scores.method.{metric}"] = " | ".join(sorted({str(x) for x in methods}))
    cfg = sm.get("config") if isinstance(sm.get("config"), dict) else {}
    if cfg:
        m["scores.settings"] = _text({k: cfg.get(k) for k in SCORE_SETTINGS if k in cfg})
    for k, h in ((sm.get("fingerprint") or {}).get("files") or {}).items():
        m[f"scores.file.{k}"] = h
    _stage_runs(r, "scores", sm.get("fingerprint"))
    metas = {"bias": res.bias_meta, "memorization": res.memorization_meta, "diversity": res.diversity_meta,
             "safety": res.safety_meta, **_extra_metas(res)}
    for name, meta in metas.items():
        _audit_measures(m, name, meta)
        _stage_runs(r, name, (meta or {}).get("fingerprint") if isinstance(meta, dict) else None)
    return {"measures": m, "runs": r}


def _extra_metas(res: RunResults) -> dict:
    """alignment/summary.json and robustness/robustness.json where present (read as plain JSON)."""
    out = {}
    for name, rel in (("alignment", "alignment/summary.json"), ("robustness", "robustness/robustness.json")):
        p = res.root / rel
        if p.is_file():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                out[name] = data
    return out


def _allowed(key: str, allow: tuple[str, ...]) -> bool:
    return any(key == a or key.startswith(a + ".") or key.endswith("." + a) for a in allow)


def _what(key: str) -> str:
    parts = key.split(".")
    return next((WHAT[p] for p in parts[1:2] + parts[:1] if p in WHAT), "setting")


def compare(run: RunResults, base: RunResults, need: tuple[str, ...], allow: tuple[str, ...] = ()
            ) -> tuple[list[str], list[str]]:
    """Refuse unlike measures (GateRuleError naming the first); return (allowed measure drift, runs drift)."""
    a, b = run_fingerprint(run), run_fingerprint(base)
    scope = ("suite",) + tuple(need)
    drift = []
    for key in sorted(set(a["measures"]) & set(b["measures"])):
        if key.split(".")[0] not in scope:
            continue
        x, y = a["measures"][key], b["measures"][key]
        if x == y:
            continue
        line = f"{key}: {_short(x)} in {run.run_id} vs {_short(y)} in the baseline {base.run_id}"
        if not _allowed(key, allow):
            raise GateRuleError(f"--baseline {base.root}: {_what(key)} differs, {line}; "
                                f"measure both runs the same way or pass --allow-drift {key}")
        drift.append(line)
    runs = [f"{k}: {_short(a['runs'].get(k, '–'))} vs {_short(b['runs'].get(k, '–'))}"
            for k in sorted(set(a["runs"]) | set(b["runs"]))
            if k.split(".")[0] in ("sample",) + scope and a["runs"].get(k) != b["runs"].get(k)]
    return drift, runs


def _short(v: str, n: int = 90) -> str:
    v = " ".join(str(v).split())
    return repr(v if len(v) <= n else v[: n - 1] + "…")
