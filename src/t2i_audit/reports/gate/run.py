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

Three verdicts (issue 38): a baseline rule passes when the difference's interval stays clear of its
bad side, and is *inconclusive* when the interval holds both 0 and the margin's boundary (the run
is too small to tell; each such check names the images per group that would decide it), else it
fails. ``same as baseline`` with no margin keeps two verdicts (fail only on a shown shift).
``inconclusive`` = pass | warn (default: exit 0 and a visible warning) | fail. Margins may be in
noise floors (``reports.gate.noise``); the candidate and baseline must be measured alike
(``reports.gate.fingerprint``) unless ``allow_drift`` names the difference.
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
from t2i_audit.reports.gate.noise import NoiseFloors, images_needed
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
    verdict: str                      # pass | fail | inconclusive
    baseline: float | None = None
    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_value: float | None = None
    level: float | None = None
    method: str | None = None
    margin_noise: float | None = None  # the margin in noise floors, when the rule gave it so
    noise: float | None = None         # the key's noise floor (metric units)
    images_needed: int | None = None   # inconclusive: images per group that would decide the rule

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "inconclusive"


@dataclass
class GateResult:
    run_id: str
    checks: list[Check]
    baseline_run_id: str | None = None
    rules_file: str = ""
    confidence: float = DEFAULT_CONFIDENCE
    warnings: list[str] = field(default_factory=list)
    inconclusive_policy: str = "warn"  # pass | warn | fail
    drift: list[str] = field(default_factory=list)       # allowed differences in what measures
    runs_drift: list[str] = field(default_factory=list)  # differences in what ran (listed only)
    noise_file: str | None = None

    @property
    def n_failed(self) -> int:
        return sum(c.verdict == "fail" for c in self.checks)

    @property
    def n_inconclusive(self) -> int:
        return sum(c.inconclusive for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.n_failed == 0 and not (self.n_inconclusive and self.inconclusive_policy == "fail")

    @property
    def verdict(self) -> str:
        if self.n_failed:
            return "fail"
        return "inconclusive" if self.n_inconclusive and self.inconclusive_policy != "pass" else "pass"

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        rules = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(c).items()}
                 for c in self.checks]
        return {"schema": GATE_SCHEMA, "run_id": self.run_id, "baseline_run_id": self.baseline_run_id,
                "rules_file": self.rules_file, "confidence": self.confidence, "passed": self.passed,
                "n_rules": len(self.checks), "n_failed": self.n_failed, "n_inconclusive": self.n_inconclusive,
                "verdict": self.verdict, "inconclusive_policy": self.inconclusive_policy, "noise_file": self.noise_file,
                "drift": self.drift, "runs_drift": self.runs_drift, "warnings": self.warnings, "rules": rules}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_junit(self) -> str:
        pol = self.inconclusive_policy
        failed = self.n_failed + (self.n_inconclusive if pol == "fail" else 0)
        skipped = self.n_inconclusive if pol == "warn" else 0
        suites = ET.Element("testsuites", name="t2i-audit gate", tests=str(len(self.checks)),
                            failures=str(failed), errors="0")
        suite = ET.SubElement(suites, "testsuite", name=f"t2i-audit gate: {self.run_id}",
                              tests=str(len(self.checks)), failures=str(failed), errors="0", skipped=str(skipped))
        props = ET.SubElement(suite, "properties")
        for k, v in (("run_id", self.run_id), ("baseline_run_id", self.baseline_run_id or ""),
                     ("rules_file", self.rules_file), ("confidence", str(self.confidence)),
                     ("verdict", self.verdict), ("inconclusive_policy", pol),
                     *((f"drift {i}", d) for i, d in enumerate(self.drift + self.runs_drift, 1))):
            ET.SubElement(props, "property", name=k, value=v)
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname="t2i_audit.gate", name=f"{c.name} :: {c.key}")
            text = describe(c)
            if c.verdict == "fail" or (c.inconclusive and pol == "fail"):
                ET.SubElement(case, "failure", message=f"{c.key}: {text}", type="GateFailure").text = text
            elif c.inconclusive and pol == "warn":
                ET.SubElement(case, "skipped", message=f"inconclusive: {c.key}: {text}").text = text
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
        n = len(self.checks)
        verdict = {"pass": "PASS", "fail": f"FAIL ({self.n_failed} of {n})",
                   "inconclusive": f"INCONCLUSIVE ({self.n_inconclusive} of {n})"}[self.verdict]
        if self.verdict != "fail" and not self.passed:
            verdict += " (--inconclusive fail)"
        methods = list(dict.fromkeys(c.method for c in self.checks if c.method))
        notes = [f"difference interval: {m}" for m in methods]
        notes += [f"inconclusive: {c.key}: needs ≈ {c.images_needed} images per group to decide" if c.images_needed
                  else f"inconclusive: {c.key}: a margin of 0 cannot be decided when nothing changed; set a margin"
                  for c in self.checks if c.inconclusive]
        notes += [f"drift allowed (--allow-drift): {d}" for d in self.drift]
        notes += [f"environment differs: {d}" for d in self.runs_drift]
        return "\n".join(lines + [""] + notes + [f"gate: {verdict}"])


def describe(c: Check) -> str:
    if c.diff is None:
        return (f"value {fmt_num(c.value)} {fmt_ci(c.ci_low, c.ci_high)} (n={c.n}); required {c.threshold_text}, "
                f"judged on {c.judged_on}: {c.verdict}")
    return (f"value {fmt_num(c.value)} vs baseline {fmt_num(c.baseline)}; difference {fmt_num(c.diff)} "
            f"{fmt_ci(c.diff_ci_low, c.diff_ci_high)} ({(c.level or 0) * 100:.4g}% CI, p={fmt_num(c.p_value)}); "
            f"required {c.threshold_text}, judged on {c.judged_on}: {c.verdict}"
            + (f" (≈ {c.images_needed} images per group would decide it)" if c.images_needed else "")
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
             confidence: float = DEFAULT_CONFIDENCE, source: str = "rules", noise: NoiseFloors | None = None,
             inconclusive: str = "warn") -> GateResult:
    """Evaluate parsed rules on loaded results (no completeness check; see :func:`gate_run_dir`)."""
    idx = MetricIndex(res)
    bidx = MetricIndex(baseline) if baseline is not None else None
    result = GateResult(res.run_id, [], baseline.run_id if baseline is not None else None, source, confidence,
                        inconclusive_policy=inconclusive, noise_file=noise.source if noise else None)
    if baseline is not None and res.suite_hash != baseline.suite_hash:
        result.warnings.append(f"suite hash differs: run {res.suite_hash} vs baseline {baseline.suite_hash}; "
                               "baseline comparisons may not be like for like")
    for i, rule in enumerate(rules, 1):
        where = f"{source}: rule {i} ({rule.text!r})"
        ests = idx.resolve(rule.ref, where)
        if rule.needs_baseline and bidx is None:
            raise GateRuleError(f"{where}: compares with a baseline; pass --baseline RUN")
        if rule.unit == "noise" and noise is None:
            raise GateRuleError(f"{where}: a margin in noise floors needs --noise FILE (from `t2i-audit gate "
                                "calibrate`)")
        level = 1 - (1 - confidence) / len(ests)
        for est in ests:
            _finite(est, where, rule.confidently or rule.needs_baseline)
            base = dict(rule=rule.text, name=rule.name, key=est.key, kind=rule.kind, value=est.value,
                        ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)
            if rule.kind == "absolute":
                result.checks.append(_absolute(rule, est, base))
                continue
            scale = noise.floor(est.key, where) if rule.unit == "noise" else 1.0
            b = _baseline_estimate(bidx, est, rule, where)
            d = _difference(res, baseline, est, b, level, result.warnings)
            if not all(math.isfinite(x) for x in (d.estimate, d.ci_low, d.ci_high)):
                raise GateRuleError(f"{where}: the difference {est.key} − baseline is not a finite interval "
                                    f"({d.ci_low}, {d.ci_high}); the rule cannot be judged")
            verdict, thr, judged, bound = _judge(rule, d.ci_low, d.ci_high, where, est, scale)
            if rule.unit == "noise":
                thr += f" ({fmt_num(rule.margin or abs(rule.threshold))} noise × {fmt_num(scale)})"
            need = (images_needed(est.n, d.ci_low, d.ci_high, bound, est.value, est.detail is not None, level)
                    if verdict == "inconclusive" else None)
            result.checks.append(Check(**base, threshold_text=thr, judged_on=judged, verdict=verdict,
                                       baseline=b.value, diff=d.estimate, diff_ci_low=d.ci_low,
                                       diff_ci_high=d.ci_high, p_value=d.p_value, level=level, method=d.method,
                                       margin_noise=(rule.margin or abs(rule.threshold)) if rule.unit else None,
                                       noise=scale if rule.unit else None, images_needed=need))
    return result


def _absolute(rule: Rule, est: GateEstimate, base: dict) -> Check:
    if rule.confidently:
        upper = rule.op in ("<=", "<")
        v, judged = (est.ci_high, "95% CI upper bound") if upper else (est.ci_low, "95% CI lower bound")
    else:
        v, judged = est.value, "point estimate"
    ok = _OPS[rule.op](v, rule.threshold)
    return Check(**base, threshold_text=f"{rule.op} {fmt_num(rule.threshold)}", judged_on=judged,
                 verdict="pass" if ok else "fail")


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


def _verdict(ok: bool, lo: float, hi: float, boundary: float) -> str:
    """pass; inconclusive when the interval holds both 0 and the margin's boundary; else fail."""
    if ok:
        return "pass"
    return "inconclusive" if lo <= 0 <= hi and lo <= boundary <= hi else "fail"


def _judge(rule: Rule, lo: float, hi: float, where: str, est: GateEstimate, scale: float = 1.0):
    """(verdict, threshold text, judged on, the margin's boundary) of a baseline rule."""
    if rule.kind == "baseline":
        t = rule.threshold * scale
        thr = f"run − baseline {rule.op} {fmt_num(t) if t else 0}"
        if rule.op in (">=", ">"):
            return _verdict(_OPS[rule.op](lo, t), lo, hi, t), thr, "CI lower bound of the difference", t
        return _verdict(_OPS[rule.op](hi, t), lo, hi, t), thr, "CI upper bound of the difference", t
    m = rule.margin * scale
    if rule.kind == "no_worse":
        name = est.key.split("[")[0]
        d = direction(name)
        if d is None:
            raise GateRuleError(f"{where}: t2i-audit does not know whether higher or lower {name!r} is better; "
                                f"write '{rule.ref} >= baseline - {rule.margin}' or '{rule.ref} <= baseline + "
                                f"{rule.margin}'")
        if d > 0:
            return (_verdict(lo >= -m, lo, hi, -m), f"run − baseline ≥ −{fmt_num(m)}",
                    "CI lower bound of the difference", -m)
        return _verdict(hi <= m, lo, hi, m), f"run − baseline ≤ {fmt_num(m)}", "CI upper bound of the difference", m
    if m == 0:  # same as baseline: fail only on a shown shift
        ok = not (lo > 0 or hi < 0)
        return ("pass" if ok else "fail"), f"|run − baseline| not shown > {fmt_num(m)}", "CI of the difference", 0.0
    bound = m if hi > m else -m
    return (_verdict(-m <= lo and hi <= m, lo, hi, bound), f"|run − baseline| ≤ {fmt_num(m)}",
            "CI of the difference", bound)


def gate_run_dir(run: str | Path, rules_path: str | Path, baseline: str | Path | None = None, *,
                 save: bool = True, allow_drift: tuple[str, ...] = (), noise: str | Path | None = None,
                 inconclusive: str = "warn") -> GateResult:
    """Load RUN (and BASELINE), refuse incomplete or unlike results, evaluate the rules file; save
    RUN/gate.json. ``allow_drift``: fingerprint keys (or prefixes) whose difference is listed, not refused."""
    from t2i_audit.reports.gate.fingerprint import compare

    if inconclusive not in ("pass", "warn", "fail"):
        raise GateRuleError(f"--inconclusive {inconclusive!r}: use pass, warn or fail")
    rules, confidence = load_rules(rules_path)
    floors = NoiseFloors.load(noise) if noise is not None else None
    res = load_run(run)
    need = _needs(rules)
    check_complete(res, need)
    base, drift, runs_drift = None, [], []
    if baseline is not None:
        base = load_run(baseline)
        if not any(a == "suite" for a in allow_drift):
            check_same_suite(res, base)
        check_complete(base, need)
        drift, runs_drift = compare(res, base, need, tuple(allow_drift))
    if floors is not None and floors.suite_hash not in (None, res.suite_hash):
        raise GateRuleError(f"--noise {floors.source}: calibrated on suite hash {floors.suite_hash}, but {res.root} "
                            f"is a run of suite hash {res.suite_hash}; calibrate with A/A runs of this suite")
    result = evaluate(res, rules, base, confidence=confidence, source=str(rules_path), noise=floors,
                      inconclusive=inconclusive)
    result.drift, result.runs_drift = drift, runs_drift
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
