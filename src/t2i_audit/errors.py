"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class T2IAuditError(Exception):
    """Base class: the message names the input and the fix; no traceback is shown by the CLI."""


class InputError(T2IAuditError, ValueError):
    """A file, option or value given by the user is malformed or missing."""


def did_you_mean(name, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or an empty string."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
