"""The missing-tool policy: skip with one line locally, fail under CI=true."""

from __future__ import annotations

import pytest

from system_tools import require_module, require_tool


def test_missing_tool_skips_locally_with_one_line(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as e:
        require_tool("mpirun", "mpiexec", install="apt-get install mpich")
    assert "mpirun / mpiexec not installed" in str(e.value) and "\n" not in str(e.value)


def test_missing_tool_fails_under_ci(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: apt-get install -y chromium"):
        require_tool("chromium", install="apt-get install -y chromium")


def test_tool_found_through_path_or_env(tmp_path, monkeypatch):
    exe = tmp_path / "mpirun"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert require_tool("mpiexec", "mpirun", install="x") == str(exe)
    monkeypatch.setenv("MY_BROWSER", "/opt/b")
    assert require_tool("none-such", install="x", env="MY_BROWSER") == "/opt/b"


def test_missing_module_policy(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_module("t2i_audit_no_such_module", install="pip install it")
    require_module("numpy", install="-")  # present: returns quietly
