"""The ``t2i-audit`` command line: a thin layer over the Python API.

Each area keeps its commands in ``t2i_audit.commands.<area>``; this module registers them and turns
user errors into one line on stderr with exit code 2.
"""

from __future__ import annotations

import errno
import importlib
import re
import sys

import click

from t2i_audit import __version__
from t2i_audit.errors import T2IAuditError

_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR}


def _one_line(msg: str) -> str:
    """An error as one terminal-safe line: line breaks folded, other control characters escaped."""
    msg = re.sub(r"\s*[\r\n]+\s*", " ", msg.strip())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


# errno -> (cause, fix) for the environment's refusals; each message names the file and the real cause.
_CAUSES = {
    errno.ENOSPC: ("disk full", "free space on that disk (or choose --out elsewhere), then re-run; a re-run resumes"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, then re-run; a re-run resumes"),
    errno.EACCES: ("permission denied", "fix its permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "fix its permissions or choose another path"),
    errno.EROFS: ("read-only file system", "choose a writable path"),
    errno.ENOTDIR: ("a part of the path is not a directory", "check the path"),
    errno.EISDIR: ("is a directory, expected a file", "give a file path"),
}


def os_error_line(e: OSError) -> str:
    """One line for an OSError the environment raised: the file, the cause in words, the fix."""
    cause, fix = _CAUSES.get(e.errno, (e.strerror or type(e).__name__, "check the path"))
    where = e.filename if e.filename is not None else "a file (not named by the system)"
    if getattr(e, "filename2", None):
        where = f"{where} -> {e.filename2}"
    return f"{where}: {cause} ({e.strerror or errno.errorcode.get(e.errno, e.errno)}); {fix}"


# (module, attribute) of each command or group; imported lazily so `--help` stays fast.
COMMAND_MODULES = [
    ("t2i_audit.commands.world", "world"),
    ("t2i_audit.commands.generator", "train"),
    ("t2i_audit.commands.generator", "generate"),
    ("t2i_audit.commands.run", "run"),
    ("t2i_audit.commands.score", "score"),
    ("t2i_audit.commands.suites", "suites"),
    ("t2i_audit.commands.sample", "sample"),
    ("t2i_audit.commands.report", "report"),
    ("t2i_audit.commands.compare", "compare"),
    ("t2i_audit.commands.gate", "gate"),
    ("t2i_audit.commands.track", "track"),
    ("t2i_audit.commands.export", "export"),
    ("t2i_audit.commands.audit", "audit"),
    ("t2i_audit.commands.label", "label"),
    ("t2i_audit.commands.reproduce", "reproduce"),
    ("t2i_audit.commands.robustness", "robustness"),
    ("t2i_audit.commands.align", "align"),
    ("t2i_audit.commands.judge", "judge"),
]


class _Main(click.Group):
    def list_commands(self, ctx):
        return sorted(self._load())

    def get_command(self, ctx, name):
        return self._load().get(name)

    def _load(self) -> dict:
        if not hasattr(self, "_cache"):
            self._cache = {}
            for mod, attr in COMMAND_MODULES:
                cmd = getattr(importlib.import_module(mod), attr)
                self._cache[cmd.name] = cmd
        return self._cache

    def invoke(self, ctx):
        from t2i_audit.evals.distributed.fanout import fanout, requested_fanout

        want = requested_fanout()
        if want is not None:  # `accelerate launch --cpu --num_processes N` without mpirun
            click.echo(f"accelerate launch --cpu asked for {want[0]} processes but starts them only through "
                       f"mpirun (--mpirun_hostfile); running the {want[0]} processes through torchrun (gloo)",
                       err=True)
            sys.exit(fanout(*want))
        try:
            return super().invoke(ctx)
        except T2IAuditError as e:
            click.echo(f"error: {_one_line(str(e))}", err=True)
            sys.exit(2)
        except click.UsageError as e:  # bad option or argument: one line, like every other user error
            where = e.ctx.command_path if e.ctx else "t2i-audit"
            click.echo(f"error: {_one_line(e.format_message())} (see `{where} --help`)", err=True)
            sys.exit(2)
        except OSError as e:  # the environment refuses a path (permissions, read-only, full disk)
            if e.errno not in _USER_ERRNOS:
                raise
            click.echo(f"error: {_one_line(os_error_line(e))}", err=True)
            sys.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="t2i-audit")
def main() -> None:
    """Audit text-to-image checkpoints for quality and social bias, and gate releases on the result."""


if __name__ == "__main__":  # pragma: no cover
    main()
