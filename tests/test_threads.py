"""core.threads.set_threads: every entry point flushes denormals and applies --threads one way."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.core.threads import set_threads
from t2i_audit.errors import InputError


@pytest.fixture
def spy(monkeypatch):
    calls = {"flush": [], "threads": []}
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls["flush"].append(on) or True)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls["threads"].append(n))
    return calls


def test_set_threads_flushes_and_limits(spy):
    set_threads(None)
    assert spy == {"flush": [True], "threads": []}
    set_threads(1)
    assert spy == {"flush": [True, True], "threads": [1]}
    with pytest.raises(InputError, match="--threads 0"):
        set_threads(0)


@pytest.mark.parametrize("argv", [
    ["run", "--suite", "no-such-suite", "--threads", "1"],
    ["sample", "--suite", "no-such-suite", "--threads", "1"],
    ["score", "no-such-run", "--threads", "1"],
])
def test_entry_points_flush_denormals(spy, tmp_path, argv):
    """The command fails on its missing suite or run, after the thread settings were applied."""
    argv = [a.replace("no-such-run", str(tmp_path / "nope")) for a in argv]
    if argv[0] in ("run", "sample"):
        argv += ["--out", str(tmp_path / "out")]
    r = CliRunner().invoke(main, argv)
    assert r.exit_code == 2, r.output
    assert spy["flush"] == [True] and spy["threads"] == [1]
