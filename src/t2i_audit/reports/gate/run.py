"""Release gate: evaluate rules on a run's aggregates (optionally against a baseline run).

``gate_run_dir(run, rules, baseline)`` loads the result files, refuses incomplete runs, evaluates
every rule and returns a :class:`GateResult` (exit code 0 pass / 1 fail); input problems raise
:class:`~t2i_audit.errors.InputError` (the CLI's exit code 2). Results are written as JSON
(``t2i-audit/gate/1``, also saved as RUN/gate.json for the report) and JUnit XML.

Baseline rules judge the interval of the difference run − baseline. For bias class shares it is a
two-sample difference of proportions computed from the two runs' counts (``reports.gate.bias``: Newcombe's
hybrid score interval, images pooled over the group's prompts, a shared calibration counted once).
For every other aggregate, each estimate's standard error comes from its reported 95% interval and
the two are combined in quadrature (independent runs; conservative when the runs share prompts and
seeds). A rule whose group has a wildcard expanding to k groups uses intervals at level
1 − (1 − confidence)/k (Bonferroni), so a family of "same as baseline" checks raises a false alarm
with probability ≤ 1 − confidence.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2i_audit.core.io import atomic_write_text
from t2i_audit.reports.gate.bias import share_difference
from t2i_audit.reports.gate.index import GateEstimate, MetricIndex, direction
from t2i_audit.reports.gate.rules import DEFAULT_CONFIDENCE, GateRuleError, Rule, load_rules
from t2i_audit.reports.results import RunResults, check_complete, load_run
from t2i_audit.reports.tables import fmt_ci, fmt_num
from t2i_audit.stats.proportions import independent_difference

GATE_SCHEMA = "t2i-audit/gate/1"
_OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


@dataclass
class Check:
    """The verdict of one rule on one estimate (a wildcard rule gives several checks)."""

    rule: str
    name: str
    key: str
    kind: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    threshold_text: str
    judged_on: str
    verdict: str                      # pass | fail
    baseline: float | None = None
    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_value: float | None = None
    level: float | None = None
    method: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass
class GateResult:
    run_id: str
    checks: list[Check]
    baseline_run_id: str | None = None
    rules_file: str = ""
    confidence: float = DEFAULT_CONFIDENCE
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        rules = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(c).items()}
                 for c in self.checks]
        return {"schema": GATE_SCHEMA, "run_id": self.run_id, "baseline_run_id": self.baseline_run_id,
                "rules_file": self.rules_file, "confidence": self.confidence, "passed": self.passed,
                "n_rules": len(self.checks), "n_failed": sum(not c.passed for c in self.checks),
                "warnings": self.warnings, "rules": rules}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_junit(self) -> str:
        failed = sum(not c.passed for c in self.checks)
        suites = ET.Element("testsuites", name="t2i-audit gate", tests=str(len(self.checks)),
                            failures=str(failed), errors="0")
        suite = ET.SubElement(suites, "testsuite", name=f"t2i-audit gate: {self.run_id}",
                              tests=str(len(self.checks)), failures=str(failed), errors="0", skipped="0")
        props = ET.SubElement(suite, "properties")
        for k, v in (("run_id", self.run_id), ("baseline_run_id", self.baseline_run_id or ""),
                     ("rules_file", self.rules_file), ("confidence", str(self.confidence))):
            ET.SubElement(props, "property", name=k, value=v)
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname="t2i_audit.gate", name=f"{c.name} :: {c.key}")
            text = describe(c)
            if not c.passed:
                ET.SubElement(case, "failure", message=f"{c.key}: {text}", type="GateFailure").text = text
            ET.SubElement(case, "system-out").text = text
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

    def table(self) -> str:
        rows = [("rule", "key", "value [95% CI]", "baseline", "diff [CI]", "threshold", "verdict")]
        for c in self.checks:
            diff = "–" if c.diff is None else f"{fmt_num(c.diff)} {fmt_ci(c.diff_ci_low, c.diff_ci_high)}"
            rows.append((c.name, c.key, f"{fmt_num(c.value)} {fmt_ci(c.ci_low, c.ci_high)}",
                         "–" if c.baseline is None else fmt_num(c.baseline), diff, c.threshold_text,
                         c.verdict.upper()))
        widths = [min(max(len(r[i]) for r in rows), 60) for i in range(len(rows[0]))]
        lines = ["  ".join(str(v)[:w].ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        verdict = "PASS" if self.passed else f"FAIL ({sum(not c.passed for c in self.checks)} of {len(self.checks)})"
        methods = list(dict.fromkeys(c.method for c in self.checks if c.method))
        notes = [f"difference interval: {m}" for m in methods]
        return "\n".join(lines + [""] + notes + [f"gate: {verdict}"])


def describe(c: Check) -> str:
    if c.diff is None:
        return (f"value {fmt_num(c.value)} {fmt_ci(c.ci_low, c.ci_high)} (n={c.n}); required {c.threshold_text}, "
                f"judged on {c.judged_on}: {c.verdict}")
    return (f"value {fmt_num(c.value)} vs baseline {fmt_num(c.baseline)}; difference {fmt_num(c.diff)} "
            f"{fmt_ci(c.diff_ci_low, c.diff_ci_high)} ({(c.level or 0) * 100:.4g}% CI, p={fmt_num(c.p_value)}); "
            f"required {c.threshold_text}, judged on {c.judged_on}: {c.verdict}"
            + (f"; interval: {c.method}" if c.method else ""))


def _needs(rules: list[Rule]) -> tuple[str, ...]:
    need = set()
    for r in rules:
        head = r.ref.name.split(".")[0]
        need.add(head if head in ("bias", "memorization", "diversity", "safety", "robustness", "fairness")
                 else "scores")
    return tuple(sorted(need))


def _finite(est: GateEstimate, where: str, need_ci: bool) -> None:
    if not math.isfinite(est.value):
        raise GateRuleError(f"{where}: {est.key} is not a finite number in {est.source}; re-run that step")
    if need_ci and not (math.isfinite(est.ci_low) and math.isfinite(est.ci_high)):
        raise GateRuleError(f"{where}: {est.key} has no 95% interval in {est.source}; this rule needs one")


def evaluate(res: RunResults, rules: list[Rule], baseline: RunResults | None = None, *,
             confidence: float = DEFAULT_CONFIDENCE, source: str = "rules") -> GateResult:
    """Evaluate parsed rules on loaded results (no completeness check; see :func:`gate_run_dir`)."""
    idx = MetricIndex(res)
    bidx = MetricIndex(baseline) if baseline is not None else None
    result = GateResult(res.run_id, [], baseline.run_id if baseline is not None else None, source, confidence)
    if baseline is not None and res.suite_hash != baseline.suite_hash:
        result.warnings.append(f"suite hash differs: run {res.suite_hash} vs baseline {baseline.suite_hash}; "
                               "baseline comparisons may not be like for like")
    for i, rule in enumerate(rules, 1):
        where = f"{source}: rule {i} ({rule.text!r})"
        ests = idx.resolve(rule.ref, where)
        if rule.needs_baseline and bidx is None:
            raise GateRuleError(f"{where}: compares with a baseline; pass --baseline RUN")
        level = 1 - (1 - confidence) / len(ests)
        for est in ests:
            _finite(est, where, rule.confidently or rule.needs_baseline)
            base = dict(rule=rule.text, name=rule.name, key=est.key, kind=rule.kind, value=est.value,
                        ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)
            if rule.kind == "absolute":
                if rule.confidently:
                    upper = rule.op in ("<=", "<")
                    v, judged = (est.ci_high, "95% CI upper bound") if upper else (est.ci_low, "95% CI lower bound")
                else:
                    v, judged = est.value, "point estimate"
                ok = _OPS[rule.op](v, rule.threshold)
                result.checks.append(Check(**base, threshold_text=f"{rule.op} {fmt_num(rule.threshold)}",
                                           judged_on=judged, verdict="pass" if ok else "fail"))
                continue
            b = _baseline_estimate(bidx, est, rule, where)
            d = _difference(res, baseline, est, b, level, result.warnings)
            ok, thr, judged = _judge(rule, d.ci_low, d.ci_high, where, idx, est)
            result.checks.append(Check(**base, threshold_text=thr, judged_on=judged,
                                       verdict="pass" if ok else "fail", baseline=b.value, diff=d.estimate,
                                       diff_ci_low=d.ci_low, diff_ci_high=d.ci_high, p_value=d.p_value,
                                       level=level, method=d.method))
    return result


def _difference(res: RunResults, baseline: RunResults, est: GateEstimate, b: GateEstimate, level: float,
                warnings: list[str]):
    """run − baseline: from counts for bias class shares (reports.gate.bias), else from the two intervals."""
    if est.detail is not None:
        d, why = share_difference(res, baseline, est.detail, level)
        if d is not None:
            return d
        warnings.append(f"{est.key}: difference from the two reported intervals ({why})")
    return independent_difference(est.value, est.ci_low, est.ci_high, b.value, b.ci_low, b.ci_high,
                                  level=level, n=est.n)


def _baseline_estimate(bidx: MetricIndex, est: GateEstimate, rule: Rule, where: str) -> GateEstimate:
    for groups in bidx.names.values():
        for e in groups.values():
            if e.key == est.key:
                _finite(e, where + " [baseline]", True)
                return e
    raise GateRuleError(f"{where}: the baseline run {bidx.res.run_id!r} has no {est.key}; score/audit it the "
                        "same way as the run")


def _judge(rule: Rule, lo: float, hi: float, where: str, idx: MetricIndex, est: GateEstimate):
    if rule.kind == "baseline":
        t = rule.threshold
        thr = f"run − baseline {rule.op} {fmt_num(t) if t else 0}"
        if rule.op in (">=", ">"):
            return _OPS[rule.op](lo, t), thr, "CI lower bound of the difference"
        return _OPS[rule.op](hi, t), thr, "CI upper bound of the difference"
    if rule.kind == "no_worse":
        name = est.key.split("[")[0]
        d = direction(name)
        if d is None:
            raise GateRuleError(f"{where}: t2i-audit does not know whether higher or lower {name!r} is better; "
                                f"write '{rule.ref} >= baseline - {rule.margin}' or '{rule.ref} <= baseline + "
                                f"{rule.margin}'")
        if d > 0:
            return lo >= -rule.margin, f"run − baseline ≥ −{fmt_num(rule.margin)}", "CI lower bound of the difference"
        return hi <= rule.margin, f"run − baseline ≤ {fmt_num(rule.margin)}", "CI upper bound of the difference"
    # same as baseline: fail only on evidence of a shift larger than the margin
    ok = not (lo > rule.margin or hi < -rule.margin)
    return ok, f"|run − baseline| not shown > {fmt_num(rule.margin)}", "CI of the difference"


def gate_run_dir(run: str | Path, rules_path: str | Path, baseline: str | Path | None = None, *,
                 save: bool = True) -> GateResult:
    """Load RUN (and BASELINE), refuse incomplete results, evaluate the rules file; save RUN/gate.json."""
    rules, confidence = load_rules(rules_path)
    res = load_run(run)
    need = _needs(rules)
    check_complete(res, need)
    base = None
    if baseline is not None:
        base = load_run(baseline)
        check_same_suite(res, base)
        check_complete(base, need)
    result = evaluate(res, rules, base, confidence=confidence, source=str(rules_path))
    if save:
        write_text(res.root / "gate.json", result.to_json())
    return result


def check_same_suite(res: RunResults, baseline: RunResults) -> None:
    """A baseline must be a run of the same suite (same content hash): otherwise prompts with one id may
    ask different things and every baseline rule compares unlike with like. An input error."""
    if res.suite_hash == baseline.suite_hash:
        return

    def suite(r: RunResults) -> str:
        s = r.run.get("suite") if isinstance(r.run.get("suite"), dict) else {}
        return f"suite {s.get('name', '?')!r} (hash {r.suite_hash})"

    raise GateRuleError(f"--baseline {baseline.root}: a run of {suite(baseline)}, but {res.root} is a run of "
                        f"{suite(res)}; gate against a baseline sampled from the same suite")


def error_junit(run: str | Path, message: str) -> str:
    """JUnit XML for a gate that could not run (an input error): one testcase with an ``<error>``, so that
    CI shows the reason where it shows gate results."""
    suites = ET.Element("testsuites", name="t2i-audit gate", tests="1", failures="0", errors="1")
    suite = ET.SubElement(suites, "testsuite", name=f"t2i-audit gate: {Path(run).name}", tests="1", failures="0",
                          errors="1", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="t2i_audit.gate", name="gate inputs")
    ET.SubElement(case, "error", message=message, type="GateInputError").text = message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_text(path: str | Path, text: str) -> None:
    from t2i_audit.errors import InputError

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, text, fsync=False)
    except OSError as e:
        raise InputError(f"{p}: cannot write ({e.strerror}); choose a writable path") from None
