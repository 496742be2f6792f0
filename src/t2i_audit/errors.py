"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class T2IAuditError(Exception):
    """Base class: the message names the input and the fix; no traceback is shown by the CLI."""


class InputError(T2IAuditError, ValueError):
    """A file, option or value given by the user is malformed or missing."""


def close_matches(name, valid, *, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The up to ``n`` valid names closest to ``name`` (difflib ratio >= ``cutoff``), best first."""
    import difflib

    return difflib.get_close_matches(str(name), [str(v) for v in valid], n=n, cutoff=cutoff)


def did_you_mean(name, valid, *, n: int = 1, cutoff: float = 0.6, form: str = " (did you mean {}?)") -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or an empty string.

    The package's one spelling suggestion. ``form`` places the quoted, comma-joined matches in the
    caller's sentence (e.g. ``"; did you mean {}?"``); ``n`` > 1 offers several.
    """
    close = close_matches(name, valid, n=n, cutoff=cutoff)
    return form.format(", ".join(repr(c) for c in close)) if close else ""
