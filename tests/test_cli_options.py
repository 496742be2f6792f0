"""Every long-running command shares --progress/--no-progress and, where it computes, --threads
(declared once: commands/options.py). The quick commands are listed here by name, so that a new
command must either take the shared options or be added to QUICK with its reason."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main

# command path -> why it finishes within seconds
QUICK = {
    "suites ls": "lists the bundled suites",
    "suites show": "prints one suite's prompts",
    "suites validate": "parses one suite file",
    "suites plan": "expands a suite without drawing",
    "audit plan": "closed-form sample sizes (--simulate: a few thousand binomial draws)",
    "world sheet": "draws one contact sheet",
    "judge validate": "rank statistics over one CSV of ratings",
    "gate calibrate": "reads the result files of a few A/A runs",
    "track": "reads result files of the runs and writes tables and plots; no per-image work",
    "export": "logs one run's result files to MLflow / TensorBoard",
}
# long-running commands that compute nothing in torch or BLAS: --progress only
NO_THREADS = {"report", "compare", "gate check", "label", "world check", "world stats", "world render", "robustness"}


def _commands(group: click.Group = main, prefix: str = ""):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{path} ")
        else:
            yield path, cmd


COMMANDS = dict(_commands())


def test_the_walk_sees_the_whole_tree():
    assert {"train", "sample", "score", "run", "report", "audit diversity", "audit bias", "suites ls"} <= set(COMMANDS)
    assert set(QUICK) <= set(COMMANDS)  # a command another change may not have registered


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_long_running_commands_take_the_shared_options(path):
    if path in QUICK:
        return
    params = {p.name: p for p in COMMANDS[path].params}
    progress = params.get("progress")
    assert progress is not None and progress.opts == ["--progress"] and progress.secondary_opts == ["--no-progress"], (
        f"`t2i-audit {path}` runs long: decorate it with @long_running() (commands/options.py) or list it in QUICK")
    assert "no_progress" not in params
    if path in NO_THREADS:
        assert "threads" not in params
        return
    threads = params.get("threads")
    assert threads is not None and threads.opts == ["--threads"] and isinstance(threads.type, click.IntRange), (
        f"`t2i-audit {path}` computes: give it --threads through @long_running()")


def test_no_progress_parses_on_the_commands_that_lacked_it():
    for path in ("audit diversity", "report", "gate check", "label", "compare", "audit safety", "audit memorization"):
        cmd = COMMANDS[path]
        ctx = cmd.make_context(path, [*_minimal_args(cmd), "--no-progress"])
        assert ctx.params["progress"] is False


def _minimal_args(cmd: click.Command):
    args = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            args.append("x")
        elif p.required:
            args += [p.opts[0], "x"]
    return args


def test_bad_threads_is_one_line_exit_2(tmp_path):
    res = CliRunner().invoke(main, ["audit", "diversity", str(tmp_path), "--no-progress", "--threads", "0"])
    assert res.exit_code == 2 and "--threads" in res.stderr and len(res.stderr.strip().splitlines()) == 1
