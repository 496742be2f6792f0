"""Options every long-running command shares, declared once.

``@long_running()`` adds ``--progress/--no-progress`` (progress bars on stderr; on by default) and
``--threads N`` (torch and BLAS threads, applied with ``core.threads.set_threads`` before the
command body runs, once); ``@long_running(threads=False)`` adds only the progress switch, for commands
that compute nothing in torch or BLAS (reports, gates). A command whose work shows no bar still
accepts the switch, so that a script can silence every command alike.
tests/test_cli_options.py walks the command tree: a command not listed there as quick must carry
these options.
"""

from __future__ import annotations

import functools

import click


def long_running(*, threads: bool = True, apply_threads: bool = True, threads_help: str | None = None):
    """Decorate a click command function (below ``@click.command``) with the shared options; the
    function receives ``progress`` (bool) and, with ``threads``, ``threads`` (int or None).
    ``apply_threads=False`` leaves applying ``--threads`` to the command (which records or derives
    the count); ``threads_help`` replaces the ``--threads`` help where the command's default differs."""

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            if threads and apply_threads:
                from t2i_audit.core.threads import set_threads

                set_threads(kwargs.get("threads"))
            return f(*args, **kwargs)

        wrapper = click.option("--progress/--no-progress", default=True, show_default=True,
                               help="Show progress bars (on stderr).")(wrapper)
        if threads:
            wrapper = click.option("--threads", type=click.IntRange(min=1), default=None,
                                   help=threads_help or "torch and BLAS threads (default: the library's; "
                                   "measure: 1 can beat 2).")(wrapper)
        return wrapper

    return decorate
