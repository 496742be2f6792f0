"""The names a gate rule can use, built from a run's result files, and their resolution.

Canonical keys (``docs/reports.md`` lists them with examples):

- scores: ``<metric>`` (group ``overall``; aliases ``<metric>.overall`` and, for per-item metrics,
  ``<metric>.mean``) and ``<metric>[<group>]`` (``skill[category=people]`` or ``skill[people]``);
- bias statistics: ``bias.<attribute>.<statistic>[<group>]`` (``bias.<statistic>[<group>]`` when
  only one attribute has that statistic);
- bias class shares: ``bias.<attribute>.share[<group>:<class>]`` (corrected) and ``.raw_share``;
- memorization: ``memorization.rate``;
- alignment: ``alignment.<score>`` (``alignment.tifa``, ``alignment.vqascore``) and
  ``alignment.<statistic>[<skill>]`` (``alignment.calibrated[relation]``; statistics ``accuracy``,
  ``soft_tifa``, ``calibrated``, ``oracle``);
- safety: ``safety.<statistic>[<category>]`` (``safety.rate[violence]``, ``safety.blocked_rate[all]``,
  ``safety.raw_rate_sexual[all]``); without a group, the pooled 'all'.

A group may hold ``*`` wildcards (``bias.presentation.share[*:woman]``), expanding to one check per
match. Unknown names and groups raise errors with did-you-mean suggestions.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field

from t2i_audit.errors import did_you_mean
from t2i_audit.reports.gate.rules import GateRuleError, Ref
from t2i_audit.reports.results import RunResults, memorization_summary
from t2i_audit.reports.tables import bias_headline


@dataclass(frozen=True)
class GateEstimate:
    """One gateable number with its 95% interval."""

    key: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    source: str
    # for class shares of bias.parquet: attribute, group, cls, probe, kind (share | raw_share)
    detail: dict | None = field(default=None, compare=False, hash=False)


def _clean(name) -> str:
    """A statistic or probe name as a rule name part: ``amplification[woman]`` → ``amplification_woman``."""
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", str(name)).strip("_") or "_"


def _f(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


class MetricIndex:
    """All gateable estimates of one run: ``name -> {group or None: GateEstimate}``."""

    def __init__(self, res: RunResults):
        self.res = res
        self.names: dict[str, dict[str | None, GateEstimate]] = {}
        self.aliases: dict[str, str] = {}
        self.sources: dict[str, str] = {}   # name -> result group: scores | bias | memorization
        agg = res.aggregates
        if agg is not None:
            per_item = set(res.items["metric"].unique()) if res.items is not None else set()
            for r in agg.itertuples():
                m, g = str(r.metric), str(r.group)
                key = m if g == "overall" else f"{m}[{g}]"
                est = GateEstimate(key, _f(r.value), _f(r.ci_low), _f(r.ci_high), int(r.n_images),
                               "scores/aggregates.parquet")
                self._add(m, None if g == "overall" else g, est, "scores")
                if g == "overall":
                    self.aliases[f"{m}.overall"] = m
                    if m in per_item:
                        self.aliases[f"{m}.mean"] = m
        self.short_bias: dict[tuple[str, str], set] = {}
        self.ambiguous: dict[str, list[str]] = {}
        if res.bias_stats is not None:
            for r in res.bias_stats.itertuples():
                stat = _clean(r.statistic)
                for name in self._bias_names(r, stat):
                    est = GateEstimate(f"{name}[{r.group}]", _f(r.value), _f(r.ci_low), _f(r.ci_high), int(r.n),
                                   "audits/bias_stats.parquet")
                    self._add(name, str(r.group), est, "bias")
                self.short_bias.setdefault((stat, str(r.group)), set()).add(str(r.attribute))
        if res.bias is not None:
            for r in res.bias.itertuples():
                probe = getattr(r, "probe", None)
                probe = None if probe is None or (isinstance(probe, float) and math.isnan(probe)) else str(probe)
                for kind, v, lo, hi in (("share", *bias_headline(r)),
                                        ("raw_share", r.raw, r.raw_ci_low, r.raw_ci_high)):
                    g = f"{r.group}:{r.cls}"
                    detail = {"attribute": str(r.attribute), "group": str(r.group), "cls": str(r.cls),
                              "probe": probe, "kind": kind}
                    for name in self._bias_names(r, kind):
                        self._add(name, g, GateEstimate(f"{name}[{g}]", _f(v), _f(lo), _f(hi), int(r.n_images),
                                                    "audits/bias.parquet", detail), "bias")
        # unqualified bias names that several probes fill are ambiguous: the probe must be named
        for name, qualified in self.ambiguous.items():
            if len(qualified) > 1:
                self.names.pop(name, None)
        self._add_diversity(res.diversity_meta)
        self._add_robustness(res)
        self._add_alignment(res)
        for r in (res.bias_meta or {}).get("calibration_shift") or []:
            if r.get("detected") is not None:  # 1 = the calibration set does not fit the audited images
                name = "bias.calibration_shift"
                self._add(name, str(r["probe"]), GateEstimate(f"{name}[{r['probe']}]", float(bool(r["detected"])),
                                                              math.nan, math.nan, int(r.get("n_run") or 0),
                                                              "audits/bias.json"), "bias")
        if res.safety is not None:
            self._add_safety(res.safety)
        meta = memorization_summary(res.memorization_meta)
        if meta and meta["rate"] is not None:
            self._add("memorization.rate", None,
                      GateEstimate("memorization.rate", _f(meta["rate"]), _f(meta["ci_low"]), _f(meta["ci_high"]),
                               int(meta["n"] or 0), "audits/memorization.json"), "memorization")

    def _add_diversity(self, meta: dict | None) -> None:
        """``diversity.<statistic>[<attribute>]`` (all groups pooled) and ``[<attribute>:<group>]``,
        e.g. ``diversity.missing_modes[clothing:*] <= 0``."""
        for f in (meta or {}).get("findings", []):
            g = f["attribute"] if f["group"] == "all" else f"{f['attribute']}:{f['group']}"
            name = f"diversity.{_clean(f['statistic'])}"
            self._add(name, g, GateEstimate(f"{name}[{g}]", _f(f["value"]), _f(f.get("ci_low")), _f(f.get("ci_high")),
                                        int(f.get("n") or 0), "audits/diversity.json"), "diversity")
    def _add_robustness(self, res: RunResults) -> None:
        """``robustness.<metric>[<perturbation>]``, ``fairness.<metric>.max_disparity[<attribute>]`` and
        ``fairness.<metric>[<attribute>=<value>]`` from RUN/robustness/robustness.json."""
        from t2i_audit.reports.robustness_report import read_results

        for e in (read_results(res.root) or {}).get("gate", []):
            self._add(e["name"], e["group"], GateEstimate(f"{e['name']}[{e['group']}]", _f(e["value"]), _f(e["ci_low"]),
                                                          _f(e["ci_high"]), int(e["n"]), "robustness/robustness.json"),
                      "robustness")

    def _add_alignment(self, res: RunResults) -> None:
        """``alignment.<score>`` (``alignment.tifa``) and ``alignment.<statistic>[<skill>]``
        (``accuracy``, ``soft_tifa``, ``calibrated``, ``oracle``) from RUN/alignment/summary.json."""
        from t2i_audit.evals.alignment.results import alignment_rows

        for r in alignment_rows(res.root):
            name, _, g = r["metric"].partition("[")
            group = g[:-1] if g else None
            self._add(name, group, GateEstimate(r["metric"], _f(r["value"]), _f(r["ci_low"]), _f(r["ci_high"]),
                                                int(r["n"] or 0), "alignment/summary.json"), "alignment")

    def _add_safety(self, rates) -> None:
        """``safety.<statistic>[<category>]`` from audits/safety.parquet; group 'all' also ungrouped."""
        for r in rates.itertuples():
            name = f"safety.{_clean(r.statistic)}"
            est = GateEstimate(f"{name}[{r.group}]", _f(r.value), _f(r.ci_low), _f(r.ci_high), int(r.n),
                           "audits/safety.parquet")
            self._add(name, str(r.group), est, "safety")
            if str(r.group) == "all":
                self._add(name, None, est, "safety")

    def _bias_names(self, r, what: str) -> list[str]:
        """``bias.<attribute>.<what>`` and, with a probe column, ``bias.<probe>.<attribute>.<what>``."""
        plain = f"bias.{r.attribute}.{what}"
        probe = getattr(r, "probe", None)
        if probe is None or (isinstance(probe, float) and math.isnan(probe)):
            return [plain]
        qual = f"bias.{_clean(probe)}.{r.attribute}.{what}"
        seen = self.ambiguous.setdefault(plain, [])
        if qual not in seen:
            seen.append(qual)
        return [plain, qual]

    def _add(self, name: str, group: str | None, est: GateEstimate, source: str) -> None:
        self.names.setdefault(name, {})[group] = est
        self.sources[name] = source

    # ------------------------------------------------------------------ resolution
    def all_names(self) -> list[str]:
        return sorted(set(self.names) | set(self.aliases))

    def resolve_name(self, name: str, where: str) -> str:
        if name in self.names:
            return name
        if name in self.aliases:
            return self.aliases[name]
        if len(self.ambiguous.get(name, [])) > 1:
            raise GateRuleError(f"{where}: {name!r} is measured by several probes; name one: "
                                f"{', '.join(self.ambiguous[name])}")
        raise GateRuleError(f"{where}: unknown metric {name!r}{self._hint(name, self.all_names())}"
                            f"{self._available()}")

    def _available(self) -> str:
        names = self.all_names()
        if not names:
            return "; this run has no gateable results (score or audit it first)"
        shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
        return f"; available: {shown}"

    @staticmethod
    def _hint(x: str, options) -> str:
        return did_you_mean(x, list(options))

    def _short_bias(self, ref: Ref, where: str) -> str | None:
        """``bias.<statistic>`` → ``bias.<attribute>.<statistic>`` when exactly one attribute fits."""
        parts = ref.name.split(".")
        if len(parts) != 2 or parts[0] != "bias":
            return None
        stat = parts[1]
        attrs = {a for (s, g), a_set in self.short_bias.items() if s == stat
                 and (ref.group is None or fnmatch.fnmatchcase(g, ref.group)) for a in a_set}
        if not attrs:
            return None
        if len(attrs) > 1:
            opts = ", ".join(f"bias.{a}.{stat}" for a in sorted(attrs))
            raise GateRuleError(f"{where}: {ref.name!r} is ambiguous: name the attribute ({opts})")
        return f"bias.{attrs.pop()}.{stat}"

    def resolve(self, ref: Ref, where: str) -> list[GateEstimate]:
        """The estimates a reference names (several for a wildcard group)."""
        name = self._short_bias(ref, where) or self.resolve_name(ref.name, where)
        groups = self.names[name]
        if ref.group is None:
            if None in groups:
                return [groups[None]]
            gl = sorted(g for g in groups if g is not None)
            raise GateRuleError(f"{where}: {name!r} needs a [group]; available groups: {', '.join(gl[:12])}")
        want = ref.group
        if want == "overall" and None in groups:
            return [groups[None]]
        named = {g: e for g, e in groups.items() if g is not None}
        if any(ch in want for ch in "*?["):
            hits = [e for g, e in sorted(named.items())
                    if fnmatch.fnmatchcase(g, want) or fnmatch.fnmatchcase(g.partition("=")[2] or g, want)]
            if not hits:
                raise GateRuleError(f"{where}: group pattern [{want}] matches no group of {name!r}; "
                                    f"available: {', '.join(sorted(named)[:12])}")
            return hits
        if want in named:
            return [named[want]]
        short = [g for g in named if "=" in g and g.split("=", 1)[1] == want]
        if len(short) == 1:
            return [named[short[0]]]
        if len(short) > 1:
            raise GateRuleError(f"{where}: group [{want}] of {name!r} is ambiguous: {', '.join(sorted(short))}")
        options = sorted(set(named) | {g.split("=", 1)[1] for g in named if "=" in g})
        raise GateRuleError(f"{where}: unknown group [{want}] for {name!r}{self._hint(want, options)}; "
                            f"available: {', '.join(options[:12])}")

    def source_of(self, ref: Ref, where: str) -> str:
        name = self._short_bias(ref, where) or self.resolve_name(ref.name, where)
        return self.sources[name]


# Which way is better, for "no worse than baseline" rules. Matched on the last name part.
HIGHER_IS_BETTER = ("skill", "accuracy", "clip_score", "clipscore", "adherence", "precision", "recall",
                    "normalized_entropy", "entropy", "pass_rate", "entropy_ratio", "vendi", "coverage", "density")
LOWER_IS_BETTER = ("fd", "fid", "fd_inf", "kid", "cmmd", "parity_gap", "tv_to_reference", "tv", "kl",
                   "kl_to_reference", "heim_abs_dev", "abs_dev", "amplification", "rate", "abstain_rate",
                   "missing_modes", "tv_to_training",
                   "raw_rate", "ppi_rate", "label_confusion_rate", "unsafe_or_blocked_rate")


def direction(name: str) -> int | None:
    """+1 if higher is better, −1 if lower is better, None if unknown (canonical names)."""
    if name.startswith("alignment."):  # every alignment score and share right: higher is better
        return 1
    for key in (name, name.split(".")[-1]):
        if key in HIGHER_IS_BETTER or key.startswith(("skill", "accuracy")):
            return 1
        if key in LOWER_IS_BETTER:
            return -1
    return None
