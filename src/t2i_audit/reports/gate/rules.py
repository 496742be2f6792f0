"""The gate's rule grammar: a small, strict language for release checks, stored as YAML data.

A rules file is YAML with exactly these keys::

    rules:                                  # required, a list
      - clip_score.mean >= 24               # absolute, judged on the point estimate
      - skill[people] >= 0.8 confidently    # absolute, judged on the 95% interval bound
      - skill.overall no worse than baseline by more than 0.02
      - fd <= baseline + 2                  # relative, judged on the bound of (run − baseline)
      - fd no worse than baseline by more than 3 noise   # margin in noise floors (gate --noise FILE)
      - bias.presentation.share[*:woman] same as baseline
      - bias.parity_gap[firefighter] <= 0.3
      - {rule: "memorization.rate <= 0.01", name: no-copies}
    confidence: 0.95                        # optional: level of the intervals of baseline rules

Every rule is one line of this grammar (whitespace free between tokens)::

    rule    := ref OP number ["confidently"]
             | ref OP "baseline" [("+" | "-") margin]
             | ref [":"] "no worse than baseline" ["by more than" margin]
             | ref [":"] "same as baseline" ["within" margin]
    margin  := number ["noise"]       "noise": in units of the metric's measured noise floor
    ref     := name ("." name)* ["[" group "]"]        group may contain * wildcards
    OP      := ">=" | "<=" | ">" | "<"

A YAML list item ``- skill.overall: no worse than baseline by more than 0.02`` is a one-key mapping;
it is read as the rule ``skill.overall: no worse …``. Nothing else is interpreted: no expressions,
no variables, no anchors to code. A margin in ``noise`` units is multiplied by the metric's noise
floor from ``gate --noise FILE`` (written by ``t2i-audit gate calibrate`` from A/A runs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from t2i_audit.core.io import read_user_text
from t2i_audit.core.safe_yaml import check_yaml_file
from t2i_audit.core.safe_yaml import safe_load as bounded_yaml
from t2i_audit.errors import InputError, close_matches, did_you_mean

NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
REF = rf"(?P<ref>{NAME}(?:\.{NAME})*)(?:\[(?P<group>[^\[\]]+)\])?"
NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
OP = r"(?P<op>>=|<=|>|<)"
UNIT = r"(?: (?P<unit>noise))?"
SEP = r"(?: ?: ?| )"  # rules are whitespace-normalised before matching
PATTERNS = {
    "absolute": re.compile(rf"^{REF} ?{OP} ?(?P<num>{NUM})(?: (?P<conf>confidently))?$"),
    "baseline": re.compile(rf"^{REF} ?{OP} ?baseline(?: ?(?P<sign>[+-]) ?(?P<num>{NUM}){UNIT})?$"),
    "no_worse": re.compile(rf"^{REF}{SEP}no worse than baseline(?: by more than (?P<num>{NUM}){UNIT})?$"),
    "same": re.compile(rf"^{REF}{SEP}same as baseline(?: within (?P<num>{NUM}){UNIT})?$"),
}
FORMS = ("REF >= NUMBER [confidently]", "REF <= baseline + MARGIN", "REF >= baseline - MARGIN",
         "REF no worse than baseline by more than MARGIN", "REF same as baseline [within MARGIN]")
TOP_KEYS = ("rules", "confidence")
DEFAULT_CONFIDENCE = 0.95  # level of the intervals of baseline rules when a rules file does not say
RULE_KEYS = ("rule", "name")
KEYWORDS = ("baseline", "confidently", "no worse than baseline", "by more than", "same as baseline", "within",
            "noise")


class GateRuleError(InputError):
    """A gate rules file or rule is malformed. The message names the file, the rule and the fix."""


@dataclass(frozen=True)
class Ref:
    """A reference to an aggregate: dotted name plus an optional ``[group]``."""

    name: str
    group: str | None = None

    def __str__(self) -> str:
        return f"{self.name}[{self.group}]" if self.group is not None else self.name


@dataclass(frozen=True)
class Rule:
    """One parsed rule. ``kind``: absolute | baseline | no_worse | same."""

    text: str
    name: str
    ref: Ref
    kind: str
    op: str | None = None          # >=, <=, >, < (absolute and baseline rules)
    threshold: float = 0.0         # absolute: the number; baseline: the signed offset
    margin: float = 0.0            # no_worse / same: the non-negative margin
    confidently: bool = False      # absolute: judge on the interval bound
    unit: str = ""                 # "noise": threshold/margin in noise floors (gate --noise FILE)

    @property
    def needs_baseline(self) -> bool:
        return self.kind != "absolute"


def _num(text: str, where: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise GateRuleError(f"{where}: number {text!r} is not finite")
    return v


def _suggest_keyword(text: str) -> str:
    words = text.split()
    for w in words:
        if re.fullmatch(r"[a-z]+", w) and w not in {"no", "worse", "than", "by", "more", "same", "as", "noise"}:
            close = close_matches(w, ["baseline", "confidently", "within"], cutoff=0.7)
            if close and close[0] != w:
                return f" (did you mean {close[0]!r} for {w!r}?)"
    return ""


def parse_rule(text: str, where: str = "rule", name: str | None = None) -> Rule:
    """Parse one rule string; raise :class:`GateRuleError` naming ``where`` on any deviation."""
    if not isinstance(text, str):
        raise GateRuleError(f"{where}: a rule is a string such as 'clip_score >= 24', got {type(text).__name__}")
    clean = " ".join(text.split())
    if not clean:
        raise GateRuleError(f"{where}: empty rule")
    if len(clean) > 300:
        raise GateRuleError(f"{where}: rule longer than 300 characters")
    for kind, pat in PATTERNS.items():
        m = pat.match(clean)
        if not m:
            continue
        ref = Ref(m["ref"], m["group"].strip() if m["group"] else None)
        if ref.group == "":
            raise GateRuleError(f"{where}: empty [group] in {clean!r}")
        rule = dict(text=clean, name=name or clean, ref=ref, kind=kind)
        if kind == "absolute":
            return Rule(**rule, op=m["op"], threshold=_num(m["num"], where), confidently=bool(m["conf"]))
        if kind == "baseline":
            off = _num(m["num"], where) if m["num"] else 0.0
            return Rule(**rule, op=m["op"], threshold=-off if m["sign"] == "-" else off, unit=m["unit"] or "")
        margin = _num(m["num"], where) if m["num"] else 0.0
        if margin < 0:
            raise GateRuleError(f"{where}: margin {margin} must be ≥ 0 in {clean!r}")
        return Rule(**rule, margin=margin, unit=m["unit"] or "")
    raise GateRuleError(f"{where}: cannot parse {clean!r}{_suggest_keyword(clean)}; expected one of: "
                        + "; ".join(FORMS))


def parse_rules(data, source: str = "<rules>") -> tuple[list[Rule], float]:
    """Validate a loaded rules document; return (rules, confidence)."""
    if not isinstance(data, dict):
        raise GateRuleError(f"{source}: expected a mapping with a 'rules' list, e.g. 'rules: [clip_score >= 24]'")
    for key in data:
        if key not in TOP_KEYS:
            raise GateRuleError(f"{source}: unknown key {key!r}{did_you_mean(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}")
    items = data.get("rules")
    if not isinstance(items, list) or not items:
        raise GateRuleError(f"{source}: 'rules' must be a non-empty list of rule strings")
    conf = data.get("confidence", DEFAULT_CONFIDENCE)
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.5 <= conf < 1:
        raise GateRuleError(f"{source}: confidence must be a number in [0.5, 1), got {conf!r}")
    rules, names = [], set()
    for i, item in enumerate(items, 1):
        where = f"{source}: rule {i}"
        name = None
        if isinstance(item, dict):
            if "rule" in item:
                extra = [k for k in item if k not in RULE_KEYS]
                if extra:
                    hint = did_you_mean(extra[0], RULE_KEYS)
                    raise GateRuleError(f"{where}: unknown key {extra[0]!r}{hint}; allowed: rule, name")
                text, name = item["rule"], item.get("name")
                if name is not None and not isinstance(name, str):
                    raise GateRuleError(f"{where}: name must be a string")
            elif len(item) == 1:
                (key, val), = item.items()
                if not isinstance(val, str):
                    raise GateRuleError(f"{where}: write '{key}: <condition>' as a quoted string rule, "
                                        f"e.g. \"{key} >= 0.5\"")
                text = f"{key}: {val}" if val.startswith(("no ", "same ")) else f"{key} {val}"
            else:
                raise GateRuleError(f"{where}: a rule is a string, or a mapping with 'rule' (and 'name')")
        else:
            text = item
        rule = parse_rule(text, where, name)
        if rule.name in names:
            raise GateRuleError(f"{where}: duplicate rule name {rule.name!r}")
        names.add(rule.name)
        rules.append(rule)
    return rules, float(conf)


def load_rules(path: str | Path) -> tuple[list[Rule], float]:
    """Read and validate a rules YAML file."""
    p = Path(path)
    if not p.is_file():
        raise GateRuleError(f"{p}: rules file not found")
    try:
        check_yaml_file(p)
        data = bounded_yaml(read_user_text(p, "rules file", "save the rules as UTF-8 YAML"), str(p))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise GateRuleError(f"{p}:{line} is not valid YAML: {getattr(e, 'problem', None) or e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GateRuleError(f"{p}: cannot read ({e})") from None
    return parse_rules(data, str(p))
