"""The release gate: rules (`rules`), the metric index they read (`index`), bias-share differences
(`bias`), the verdict with JUnit/JSON output (`run`) and its Markdown summary (`summary`)."""

from t2i_audit.reports.gate.rules import load_rules, parse_rules
from t2i_audit.reports.gate.run import GateResult, evaluate, gate_run_dir
from t2i_audit.reports.gate.summary import summary_markdown

__all__ = ["GateResult", "evaluate", "gate_run_dir", "load_rules", "parse_rules", "summary_markdown"]
