"""What a stage of a run ran on, recorded by the stage that knows it (issue 38, "comparable or refuse").

``stage_fingerprint(config)`` is written by ``score`` into ``scores/results.json`` and by every audit
into its ``audits/<name>.json`` under the key ``fingerprint``; ``sample`` records the same facts in
``run.json`` (``package_version``, ``git_hash``, ``environment``, ``device``, ``dtype``). It holds:

- ``runs`` (what ran): package version, git hash, Python, numpy, torch (when the stage loaded it)
  and the device torch used;
- ``files``: the sha256 of every file a config value names (calibration labels, probe files,
  judge specs, training sets given as a file), keyed by the config key, so that "the same
  path" with other contents is told apart.

The gate (``reports.gate.fingerprint``) assembles a run's fingerprint from these records.
Torch-free: torch is only looked at when the stage has already imported it.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path


def git_hash() -> str | None:
    """The commit of the installed source tree, or None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _device() -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return f"cuda:{torch.cuda.get_device_name(torch.cuda.current_device())}"
    except Exception:  # noqa: BLE001 - a broken driver is recorded as plain cpu
        pass
    return "cpu"


def runtime() -> dict:
    """Versions and device of this process (what ran)."""
    from t2i_audit import __version__

    out = {"package_version": __version__, "git_hash": git_hash(), "python": platform.python_version()}
    np = sys.modules.get("numpy")
    if np is not None:
        out["numpy"] = np.__version__
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        out["device"] = _device()
    return out


def file_hashes(config: dict | None, limit_bytes: int = 1 << 30) -> dict[str, str]:
    """sha256 of each existing file a (nested) config value names, keyed by its dotted config key."""
    from t2i_audit.core.io import sha256_file

    found: dict[str, str] = {}

    def walk(prefix: str, v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{prefix}.{i}", x)
        elif isinstance(v, str) and 0 < len(v) < 4096 and "\n" not in v:
            try:
                p = Path(v)
                if p.is_file() and p.stat().st_size <= limit_bytes:
                    found[prefix] = sha256_file(p)
            except (OSError, ValueError):
                pass

    walk("", config or {})
    return found


def stage_fingerprint(config: dict | None = None) -> dict:
    """The ``fingerprint`` entry of a stage's results JSON."""
    return {"runs": runtime(), "files": file_hashes(config)}
