"""t2i_audit.reports: tables, the self-contained HTML report, compare and gate, from result files only.

Nothing here imports torch or a model. Entry points:

- :func:`render_report` (``report.py``): one call renders a run directory's report.
- :func:`compare_runs` / :func:`write_compare` (``compare.py``): paired comparison of two runs.
- :func:`gate_run_dir` / :func:`evaluate` (``gate/``), :func:`load_rules` / :func:`parse_rules`
  : the release gate.
"""

from t2i_audit.reports.compare import compare_runs, write_compare
from t2i_audit.reports.gate.rules import load_rules, parse_rules
from t2i_audit.reports.gate.run import GateResult, evaluate, gate_run_dir
from t2i_audit.reports.report import ReportConfig, ReportPaths, render_report
from t2i_audit.reports.results import RunResults, check_complete, load_run

__all__ = ["GateResult", "ReportConfig", "ReportPaths", "RunResults", "check_complete", "compare_runs",
           "evaluate", "gate_run_dir", "load_rules", "load_run", "parse_rules", "render_report", "write_compare"]
