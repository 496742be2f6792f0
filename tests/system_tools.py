"""Tests that need a system program (mpirun, chromium) or an optional module: skipped with a one-line
reason where it is missing, and failed instead when ``CI=true`` (CI installs everything, so a missing
tool there is a broken CI image, not a reason to pass silently)."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _missing(what: str, install: str) -> None:
    if in_ci():
        pytest.fail(f"{what} is not installed but CI=true: {install}")
    pytest.skip(f"{what} not installed ({install}); CI=true makes this a failure")


def require_tool(*names: str, install: str, env: str | None = None) -> str:
    """The path of the first of ``names`` on PATH (or of ``$env`` when set); skip or fail without one."""
    exe = (os.environ.get(env) if env else None) or next((p for p in map(shutil.which, names) if p), None)
    if exe is None:
        _missing(" / ".join(names), install)
    return exe


def require_module(name: str, install: str) -> None:
    """Skip (or fail under CI=true) when the Python module ``name`` cannot be imported."""
    if importlib.util.find_spec(name) is None:
        _missing(f"Python module {name}", install)
