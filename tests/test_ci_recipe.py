"""The GitHub Actions recipe's `t2i-audit ...` commands name real subcommands and options and parse."""

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from t2i_audit.cli import main

ROOT = Path(__file__).parents[1]
RECIPE = ROOT / "examples/github-actions/audit-gate.yml"


# the loop variables the recipe's scripts set, with values of their kind
LOCAL = {"off": "1000000", "run": "runs/aa-1000000", "ckpt": "ckpt/step-1000",
         "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}


def _expand(line: str, env: dict) -> str:
    line = re.sub(r"\$\{\{[^}]*\}\}", "1", line)  # ${{ github... }} expressions
    return re.sub(r"\$(\w+)", lambda m: str({**env, **LOCAL}.get(m.group(1), m.group(0))), line)


def _split(script: str, env: dict) -> list[str]:
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.split(" # ")[0]
        for part in re.split(r"&&|\|\||;|\|(?!\|)|\bdo\b", line):
            part = part.strip()
            if part.startswith("t2i-audit "):
                out.append(_expand(part, env))
    return out


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Gate a release in CI", 1)[1].split("\n## ", 1)[0]
    return [c for block in re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M) for c in _split(block, {})]


def _commands() -> list[str]:
    wf = yaml.safe_load(RECIPE.read_text())
    env = {k: v for k, v in wf["env"].items() if "${{" not in str(v)}
    out = []
    for job in wf["jobs"].values():
        for step in job["steps"]:
            # folded (>) scripts are already one line; literal ones are split on lines, && || ; |
            out += _split(step.get("run", ""), env)
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


def test_readme_gate_section_has_commands_and_rules_that_parse():
    from t2i_audit.reports.gate.rules import parse_rules

    cmds = " ".join(_readme_commands())
    assert "--seed-offset" in cmds and "gate calibrate" in cmds and "--noise" in cmds
    section = (ROOT / "README.md").read_text().split("## Gate a release in CI", 1)[1]
    rules, _ = parse_rules(yaml.safe_load(re.search(r"^```yaml\n(.*?)^```", section, re.S | re.M).group(1)), "README")
    assert any(r.unit == "noise" for r in rules)


def test_recipe_has_the_gate_pieces():
    cmds = " ".join(_commands())
    for piece in ("sample", "--seed-offset", "gate calibrate", "--noise", "--inconclusive warn", "--summary-md",
                  "track", "export", "--mlflow", "--tensorboard"):
        assert piece in cmds, piece
    text = RECIPE.read_text()
    assert "GITHUB_STEP_SUMMARY" in text and "actions/cache/save" in text and "hashFiles('audit/suite.yaml'" in text


@pytest.mark.parametrize("line", _commands() + _readme_commands())
def test_recipe_command_parses(line):
    args = shlex.split(line)[1:]
    ctx = _parse(args)
    given = {a.split("=")[0] for a in args if a.startswith("--")}
    known = {o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)}
    assert given <= known, (line, given - known)
