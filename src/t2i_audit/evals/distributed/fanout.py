"""`accelerate launch --cpu --num_processes N` without mpirun: the N processes, through torchrun.

Accelerate's CPU launcher starts N processes only through mpirun, and only when given
``--mpirun_hostfile``; otherwise it starts one process, and the N the user asked for is left in the
launcher's own command line. On Linux that command line is readable (``/proc/<parent>/cmdline``).
When it parses, with Accelerate's own argument parser, as ``accelerate launch --cpu --num_processes N``
with N > 1, one machine and no hostfile, t2i-audit runs the same command under torchrun
(``torch.distributed.run``: N local processes, gloo on the CPU) and exits with its status — the
launch the user asked for, on an engine that needs no MPI. Anything else (another parent, several
machines, a hostfile, ``T2I_AUDIT_NO_FANOUT=1``) keeps Accelerate's behaviour: mpirun, or one
process with the warning of :func:`t2i_audit.evals.distributed.launch.unsharded_launch_warning`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from t2i_audit.evals.distributed.env import DEFAULT_PORT, FANOUT_ENV, OFF_ENV, WORLD_VARS, _truthy

_LAUNCH_ENTRIES = ("accelerate.commands.launch", "accelerate-launch")


def parent_cmdline(pid: int | None = None) -> list[str]:
    try:
        raw = Path(f"/proc/{pid or os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def requested_fanout(cmdline: list[str] | None = None, env: dict | None = None):
    """``(N, command args)`` when ``cmdline`` (default: the parent process's, read only when the
    environment says Accelerate's CPU launcher started this process) is an ``accelerate launch --cpu
    --num_processes N -m t2i_audit ARGS`` that Accelerate itself runs as one process; else ``None``."""
    env = os.environ if env is None else env
    if not (_truthy(env.get("ACCELERATE_USE_CPU")) and env.get("MASTER_ADDR")):
        return None
    if any(env.get(k) for k in WORLD_VARS) or env.get(FANOUT_ENV) or _truthy(env.get(OFF_ENV)):
        return None
    cmdline = parent_cmdline() if cmdline is None else cmdline
    start = next((i + 1 for i, a in enumerate(cmdline)
                  if a in _LAUNCH_ENTRIES or (a == "launch" and i > 0 and "accelerate" in Path(cmdline[i - 1]).name)),
                 None)
    if start is None:
        return None
    from accelerate.commands.launch import launch_command_parser

    try:
        args = launch_command_parser().parse_args(cmdline[start:])
    except SystemExit:
        return None
    n = int(args.num_processes or 1)
    if n <= 1 or args.mpirun_hostfile or int(args.num_machines or 1) > 1 or not args.cpu:
        return None
    if not (args.module and args.training_script == "t2i_audit"):
        return None
    return n, list(args.training_script_args)


def fanout(n: int, argv: list[str], env: dict | None = None) -> int:
    """Run ``python -m t2i_audit ARGV`` as ``n`` torchrun processes on this machine; their status."""
    env = dict(os.environ if env is None else env)
    env[FANOUT_ENV] = str(n)
    port = env.get("MASTER_PORT") or DEFAULT_PORT
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(n),
           "--master_addr", "127.0.0.1", "--master_port", port, "-m", "t2i_audit", *argv]
    return subprocess.call(cmd, env=env)
