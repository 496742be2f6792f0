"""The GitHub Actions recipe's `t2i-audit ...` commands name real subcommands and options and parse."""

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from t2i_audit.cli import main

RECIPE = Path(__file__).parents[1] / "examples/github-actions/audit-gate.yml"


# the loop variables the recipe's scripts set, with values of their kind
LOCAL = {"off": "1000000", "run": "runs/aa-1000000", "ckpt": "ckpt/step-1000",
         "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}


def _expand(line: str, env: dict) -> str:
    line = re.sub(r"\$\{\{[^}]*\}\}", "1", line)  # ${{ github... }} expressions
    return re.sub(r"\$(\w+)", lambda m: str({**env, **LOCAL}.get(m.group(1), m.group(0))), line)


def _commands() -> list[str]:
    wf = yaml.safe_load(RECIPE.read_text())
    env = {k: v for k, v in wf["env"].items() if "${{" not in str(v)}
    out = []
    for job in wf["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "")
            # folded (>) scripts are already one line; join literal continuations, split on && || ; |
            script = script.replace("\\\n", " ")
            for line in script.splitlines():
                for part in re.split(r"&&|\|\||;|\|(?!\|)", line):
                    part = part.strip()
                    if part.startswith("t2i-audit "):
                        out.append(_expand(part, env))
    return out


def _parse(args: list[str]) -> click.Context:
    cmd, name, parent = main, "t2i-audit", None
    while True:
        ctx = cmd.make_context(name, list(args), parent=parent)
        if not isinstance(cmd, click.Group):
            return ctx
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
        name, cmd, args = cmd.resolve_command(ctx, rest)
        assert cmd is not None, rest
        parent = ctx


def test_recipe_has_the_gate_pieces():
    cmds = " ".join(_commands())
    for piece in ("sample", "--seed-offset", "gate calibrate", "--noise", "--inconclusive warn", "--summary-md",
                  "track", "export", "--mlflow", "--tensorboard"):
        assert piece in cmds, piece
    text = RECIPE.read_text()
    assert "GITHUB_STEP_SUMMARY" in text and "actions/cache/save" in text and "hashFiles('audit/suite.yaml'" in text


@pytest.mark.parametrize("line", _commands())
def test_recipe_command_parses(line):
    args = shlex.split(line)[1:]
    ctx = _parse(args)
    given = {a.split("=")[0] for a in args if a.startswith("--")}
    known = {o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)}
    assert given <= known, (line, given - known)
