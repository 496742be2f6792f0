"""`t2i-audit gate RUN --rules gate.yaml`: pass/fail a run for CI (exit 0 pass, 1 fail, 2 input error);
`t2i-audit gate calibrate RUN...`: noise floors from A/A runs for margins such as `3 noise`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from t2i_audit.commands.options import long_running


class _GateGroup(click.Group):
    """`gate RUN ...` runs the check; `gate calibrate ...` the calibration (a default subcommand)."""

    def _default(self, args: list) -> list:
        return ["check", *args] if args and args[0] not in self.commands and args[0] not in ("-h", "--help") else args

    def parse_args(self, ctx, args):
        args = self._default(list(args))
        if args and args[0] == "check" and not ctx.resilient_parsing:  # bad options fail here, as for a command
            with self.commands["check"].make_context("check", list(args[1:]), parent=ctx):
                pass
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        return super().resolve_command(ctx, self._default(list(args)))


@click.group("gate", cls=_GateGroup)
def gate() -> None:
    """Check a run against rules (`gate RUN --rules FILE`, exit 0 pass / 1 fail / 2 bad input), or measure
    noise floors from A/A runs (`gate calibrate RUN... --out noise.json`)."""


@gate.command("check")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Rules YAML (see docs/reports.md for the grammar).")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Baseline run for relative rules.")
@click.option("--noise", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Noise file from `t2i-audit gate calibrate`, for margins in noise units ('by more than 3 noise').")
@click.option("--inconclusive", type=click.Choice(["pass", "warn", "fail"]), default="warn", show_default=True,
              help="Exit status when a rule is inconclusive (the run is too small to tell): warn = exit 0 with a "
                   "warning.")
@click.option("--allow-drift", "allow_drift", multiple=True, metavar="KEY",
              help="Compare although the runs differ in this fingerprint key (e.g. scores.evaluator.clip); "
                   "listed in the verdict. Repeatable.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write JUnit XML here (one testcase per rule and group).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the gate result JSON here (always also saved as RUN/gate.json).")
@click.option("--summary-md", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a short Markdown verdict here (for $GITHUB_STEP_SUMMARY or a PR comment).")
@long_running(threads=False)
def check(run: Path, rules: Path, baseline: Path | None, noise: Path | None, inconclusive: str,
          allow_drift: tuple[str, ...], junit: Path | None, json_out: Path | None, summary_md: Path | None,
          progress: bool) -> None:
    """Check RUN's results against rules; exit 0 if every rule passes, 1 if one fails, 2 on bad input."""
    from t2i_audit.errors import InputError
    from t2i_audit.reports.gate.run import error_junit, gate_run_dir, write_text
    from t2i_audit.reports.gate.summary import summary_markdown

    try:
        result = gate_run_dir(run, rules, baseline, allow_drift=allow_drift, noise=noise, inconclusive=inconclusive)
    except InputError as e:  # exit 2 with one line; a requested JUnit file records the reason too
        if junit:
            write_text(junit, error_junit(run, str(e)))
        raise
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if result.n_inconclusive and inconclusive == "warn":
        click.echo(f"warning: {result.n_inconclusive} rule check(s) inconclusive: the run is too small to tell "
                   "(see the images needed below)", err=True)
    click.echo(result.table())
    if junit:
        write_text(junit, result.to_junit())
    if json_out:
        write_text(json_out, result.to_json())
    if summary_md:
        write_text(summary_md, summary_markdown(result))
    sys.exit(result.exit_code)


@gate.command("calibrate")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Noise file to write (JSON), read by `gate --noise`.")
def calibrate(runs: tuple[Path, ...], out: Path) -> None:
    """Noise floors from A/A RUNS (one checkpoint, `sample --seed-offset N` with another N each, scored and
    audited alike): each metric's run-to-run spread, written to OUT."""
    from t2i_audit.reports.gate.noise import calibrate as measure
    from t2i_audit.reports.gate.run import write_text

    data = measure(list(runs))
    write_text(out, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    shown = sorted(data["metrics"].items())[:12]
    click.echo(f"{out}: noise floors of {len(data['metrics'])} metrics from {data['n_runs']} A/A runs")
    for key, m in shown:
        click.echo(f"  {key}: noise {m['noise']:.4g} (spread {m['spread']:.4g}, interval se {m['se']:.4g})")
    if len(data["metrics"]) > len(shown):
        click.echo(f"  … and {len(data['metrics']) - len(shown)} more")
