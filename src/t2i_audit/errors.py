"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class T2IAuditError(Exception):
    """Base class: the message names the input and the fix; no traceback is shown by the CLI."""


class InputError(T2IAuditError, ValueError):
    """A file, option or value given by the user is malformed or missing."""
