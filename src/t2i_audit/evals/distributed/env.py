"""Launcher environment variables: where torchrun, accelerate and mpirun put a process's place, and
the variables t2i-audit sets for its own fan-out. No torch."""

from __future__ import annotations

import os
from collections.abc import Sequence

from t2i_audit.errors import InputError

FANOUT_ENV = "T2I_AUDIT_FANOUT"  # set in the torchrun children: never fan out twice
OFF_ENV = "T2I_AUDIT_NO_FANOUT"

# Where each launcher puts a process's place: torch's names first (torchrun, accelerate --multi_gpu),
# then mpirun's (MPICH/Intel MPI, Open MPI, MVAPICH), which accelerate's CPU launcher goes through.
WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
LOCAL_RANK_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
LOCAL_WORLD_VARS = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
DEFAULT_PORT = "29500"  # accelerate's and torchrun's default


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes")


def _first_int(env, names: Sequence[str], default: int) -> int:
    for n in names:
        v = env.get(n)
        if v not in (None, ""):
            try:
                return int(v)
            except ValueError:
                raise InputError(f"${n}={v!r}: not an integer; it is set by the launcher "
                                 "(accelerate launch / torchrun / mpirun)") from None
    return default


def launch_env(env: dict | None = None) -> dict[str, str]:
    """The torch-style variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) a process started by mpirun lacks, worked out from MPI's
    variables; ``{}`` when the launcher set torch's names itself or there is no launcher.

    One machine (local world size = world size) rendezvouses on 127.0.0.1; several need
    ``MASTER_ADDR`` (accelerate sets it from ``--main_process_ip``)."""
    env = os.environ if env is None else env
    if env.get("WORLD_SIZE") not in (None, "") or not any(env.get(k) for k in WORLD_VARS[1:]):
        return {}
    world = _first_int(env, WORLD_VARS, 1)
    rank = _first_int(env, RANK_VARS, -1)
    if not 0 <= rank < world:
        raise InputError(f"launched by mpirun with world size {world} but rank {rank}: expected one of "
                         f"${', $'.join(RANK_VARS[1:])} between 0 and {world - 1}")
    local_world = _first_int(env, LOCAL_WORLD_VARS, 1)
    out = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(_first_int(env, LOCAL_RANK_VARS, 0)),
           "LOCAL_WORLD_SIZE": str(local_world)}
    if not env.get("MASTER_ADDR"):
        if local_world != world:
            raise InputError(f"mpirun started {world} processes on several machines but $MASTER_ADDR is not set; "
                             "pass --main_process_ip (rank 0's address) to accelerate launch, or export MASTER_ADDR")
        out["MASTER_ADDR"] = "127.0.0.1"
    if not env.get("MASTER_PORT"):
        out["MASTER_PORT"] = DEFAULT_PORT
    return out
