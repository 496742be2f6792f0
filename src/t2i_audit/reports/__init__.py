"""t2i_audit.reports: tables, the self-contained HTML report, compare and gate, from result files only.

Nothing here imports torch or a model. Entry points:

- :func:`render_report` (``report.py``): one call renders a run directory's report.
- :func:`compare_runs` / :func:`write_compare` (``compare.py``): paired comparison of two runs.
- :func:`gate_run_dir` / :func:`evaluate` (``gate.py``), :func:`load_rules` / :func:`parse_rules`
  (``gate_rules.py``): the release gate.
"""

from .compare import compare_runs, write_compare
from .gate import GateResult, evaluate, gate_run_dir
from .gate_rules import load_rules, parse_rules
from .report import ReportConfig, ReportPaths, render_report
from .results import RunResults, check_complete, load_run

__all__ = ["GateResult", "ReportConfig", "ReportPaths", "RunResults", "check_complete", "compare_runs",
           "evaluate", "gate_run_dir", "load_rules", "load_run", "parse_rules", "render_report", "write_compare"]
