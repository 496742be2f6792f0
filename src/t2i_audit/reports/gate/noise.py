"""Noise floors: how much a metric moves between two runs of one checkpoint that differ only in seeds.

``t2i-audit gate calibrate RUN...`` reads A/A runs (one checkpoint, one suite, the same evaluators,
``sample --seed-offset N`` with another N for each) and writes a noise file
(``t2i-audit/noise/1``, JSON). For every gateable key (``reports.gate.index``) with a finite value in
every run it records:

- ``spread``: the sample standard deviation of the runs' point estimates (ddof 1);
- ``se``: the root mean square of the runs' standard errors implied by their 95% intervals
  (half-width / 1.96): what each run's own interval says one run's estimate varies by;
- ``noise``: the noise floor, the standard deviation of the difference of two such runs,
  ``√2 · max(spread, se)``. The larger of the two: with a handful of A/A runs the observed spread
  alone is a poor estimate (2 degrees of freedom for 3 runs), while the runs' intervals miss
  variation they do not model (nondeterministic kernels, seed effects the bootstrap does not see).

A rule margin ``3 noise`` is 3 × this number for the rule's key (``gate --noise FILE``). The report
shows both units. :func:`images_needed` gives, for an inconclusive check, the images per group at
which the difference's interval would be narrow enough to decide it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from t2i_audit.reports.gate.rules import GateRuleError
from t2i_audit.reports.results import RunResults, load_run

NOISE_SCHEMA = "t2i-audit/noise/1"
Z95 = 1.959963984540054


def _estimates(res: RunResults) -> dict:
    from t2i_audit.reports.gate.index import MetricIndex

    out = {}
    for groups in MetricIndex(res).names.values():
        for est in groups.values():
            out[est.key] = est
    return out


def _check_aa(runs: list[RunResults]) -> None:
    """A/A runs: one suite, one generator config, one way of measuring, other seeds."""
    from t2i_audit.reports.gate.fingerprint import run_fingerprint

    first = runs[0]
    fp0 = run_fingerprint(first)["measures"]
    gen0 = (first.run.get("generator") or {}).get("config_hash")
    seen = {}
    for r in runs:
        gen = (r.run.get("generator") or {}).get("config_hash")
        if gen != gen0:
            raise GateRuleError(f"gate calibrate: {r.root} was sampled from another generator (config hash {gen}) "
                                f"than {first.root} ({gen0}); A/A runs are one checkpoint with other seeds")
        fp = run_fingerprint(r)["measures"]
        diff = [k for k in sorted(set(fp) & set(fp0)) if fp[k] != fp0[k]]
        if diff:
            raise GateRuleError(f"gate calibrate: {r.root} differs from {first.root} in {diff[0]}; measure every "
                                "A/A run the same way")
        seeds = json.dumps(r.run.get("seed_policy"), sort_keys=True)
        if seeds in seen:
            raise GateRuleError(f"gate calibrate: {r.root} and {seen[seeds]} used the same seeds; sample each A/A "
                                "run with another `--seed-offset`")
        seen[seeds] = r.root


def calibrate(paths: list[str | Path]) -> dict:
    """The noise file's content from A/A run directories (at least 2, ideally 3 or more)."""
    if len(paths) < 2:
        raise GateRuleError("gate calibrate: give at least 2 A/A runs (3 or more recommended)")
    runs = [load_run(p) for p in paths]
    _check_aa(runs)
    ests = [_estimates(r) for r in runs]
    metrics = {}
    for key in sorted(set.intersection(*(set(e) for e in ests))):
        vals = np.array([e[key].value for e in ests], dtype=float)
        if not np.all(np.isfinite(vals)):
            continue
        half = np.array([(e[key].ci_high - e[key].ci_low) / 2 for e in ests], dtype=float)
        se = float(np.sqrt(np.mean((half / Z95) ** 2))) if np.all(np.isfinite(half)) else 0.0
        spread = float(np.std(vals, ddof=1))
        metrics[key] = {"noise": math.sqrt(2) * max(spread, se), "spread": spread, "se": se,
                        "mean": float(vals.mean()), "n": int(np.mean([e[key].n for e in ests]))}
    suite = runs[0].run.get("suite") if isinstance(runs[0].run.get("suite"), dict) else {}
    return {"schema": NOISE_SCHEMA, "suite": {"name": suite.get("name"), "hash": runs[0].suite_hash},
            "runs": [r.run_id for r in runs], "n_runs": len(runs),
            "definition": "noise = sqrt(2) * max(spread, se): the SD of the difference of two A/A runs",
            "metrics": metrics}


class NoiseFloors:
    """A loaded noise file: ``floor(key)`` in the metric's own units."""

    def __init__(self, data: dict, source: str):
        self.data, self.source = data, source
        self.metrics = data.get("metrics") or {}

    @classmethod
    def load(cls, path: str | Path) -> NoiseFloors:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GateRuleError(f"--noise {p}: not found; write it with `t2i-audit gate calibrate RUN... --out {p}`"
                                ) from None
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise GateRuleError(f"--noise {p}: not a noise file ({str(e)[:80]})") from None
        if not isinstance(data, dict) or data.get("schema") != NOISE_SCHEMA or not isinstance(data.get("metrics"),
                                                                                                dict):
            raise GateRuleError(f"--noise {p}: schema is not {NOISE_SCHEMA!r}; write it with `t2i-audit gate "
                                "calibrate`")
        return cls(data, str(p))

    @property
    def suite_hash(self) -> str | None:
        return (self.data.get("suite") or {}).get("hash")

    def floor(self, key: str, where: str) -> float:
        entry = self.metrics.get(key)
        v = entry.get("noise") if isinstance(entry, dict) else None
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise GateRuleError(f"{where}: --noise {self.source} has no noise floor for {key}; calibrate with A/A "
                                "runs that have this result")
        return float(v)


def images_needed(n: int, lo: float, hi: float, boundary: float, value: float | None = None,
                  share: bool = False, level: float = 0.95) -> int | None:
    """Images per group at which the difference's interval could no longer hold both 0 and the margin
    ``boundary``: its width must drop below |boundary|. Width scales as 1/√n (``(hi − lo)/|b|)²·n``);
    for a class share, the two-sample size of ``stats.power.plan`` (gap |b|, 80% power) where larger.
    None when the margin is 0 (a true difference of 0 never decides such a rule)."""
    b = abs(boundary)
    if b <= 0 or not (math.isfinite(lo) and math.isfinite(hi)) or n <= 0:
        return None
    need = math.ceil(n * ((hi - lo) / b) ** 2)
    if share and value is not None and 0 < value < 1 and b < 1:
        from t2i_audit.stats.power import PlanConfig, plan

        base = min(max(value, 0.01), 0.99)
        try:
            pl = plan(PlanConfig(gap=b, base=base, design="two-sample", alpha=1 - level).validate())
            need = max(need, int(pl.images_per_group))
        except Exception:  # noqa: BLE001 - the scaling above stands where plan refuses the inputs
            pass
    return max(need, n + 1)
