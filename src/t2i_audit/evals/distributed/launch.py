"""Sharded runs across processes: rank and world size, shard assignment, collectives, devices.

t2i-audit does not launch processes itself; a launcher does, and says where each process stands
through environment variables:

- torchrun, and ``accelerate launch --multi_gpu`` (torchrun underneath): ``WORLD_SIZE``/``RANK``/
  ``LOCAL_RANK``;
- ``accelerate launch --cpu --num_processes N --mpirun_hostfile FILE``: Accelerate's CPU launcher
  runs ``mpirun``, which sets MPI's variables (``PMI_SIZE``/``PMI_RANK``/``MPI_LOCALRANKID`` for
  MPICH and Intel MPI, ``OMPI_COMM_WORLD_*`` for Open MPI, ``MV2_COMM_WORLD_*`` for MVAPICH) and
  Accelerate adds ``MASTER_ADDR``/``MASTER_PORT``. Without ``--mpirun_hostfile`` that launcher starts
  a single process; the CLI then runs the N processes asked for through torchrun
  (:mod:`t2i_audit.evals.distributed.fanout`), and where it cannot, :func:`unsharded_launch_warning` says so.

:func:`current` reads them once per process (:func:`launch_env` maps MPI's variables to torch's);
with a world size above one it joins the process group through accelerate's ``PartialState`` (gloo
on CPU, NCCL on CUDA), or through ``torch.distributed`` when accelerate is not installed. Without a
launcher the world size is one and every collective below is the identity, so single-process runs
take exactly the same code path.

Shards are strided: item ``i`` of a list in suite order belongs to rank ``i % world_size``. Because
the bundled generator draws every image in a fixed-size micro-batch from its own seeded generator,
an image's bytes do not depend on which rank drew it, and a merged run equals a single-process one.
All collectives here go through a gloo group on pickled CPU objects (file names, hashes, float64
arrays), so they work the same whether the default group is gloo or NCCL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.evals.distributed.env import (  # noqa: F401 - re-exported
    DEFAULT_PORT,
    FANOUT_ENV,
    LOCAL_RANK_VARS,
    LOCAL_WORLD_VARS,
    RANK_VARS,
    WORLD_VARS,
    _first_int,
    _truthy,
    launch_env,
)

T = TypeVar("T")
DEVICE_ENV = "T2I_AUDIT_DEVICE"  # 'cpu' forces CPU even where CUDA is present

# Default batch sizes per device kind: (sample prompts per generator call, images per embedding batch).
BATCH_SIZES = {"cpu": (16, 64), "cuda": (128, 256)}


class RankFailedError(InputError):
    """Another rank of a sharded run failed; its message is repeated here."""


@dataclass
class Dist:
    """This process's place in a (possibly one-process) run, and the collectives over it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"  # single | accelerate | accelerate+mpirun | accelerate+torchrun | mpirun | torchrun
    backend: str | None = None
    _group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        if not self.sharded:
            return "1 process"
        return f"rank {self.rank} of {self.world_size} ({self.launcher}, {self.backend})"

    # -- shards --------------------------------------------------------------------------------
    def shard_indices(self, n: int) -> list[int]:
        """Indices of ``n`` items (in suite order) this rank owns: ``rank, rank + W, ...``."""
        return shard_indices(n, self.rank, self.world_size)

    def shard(self, items: Sequence[T]) -> list[T]:
        return [items[i] for i in self.shard_indices(len(items))]

    # -- collectives ---------------------------------------------------------------------------
    def _dist(self):
        import torch.distributed as td

        return td

    def barrier(self) -> None:
        if self.sharded:
            self._dist().barrier(group=self._group)

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.sharded:
            return [obj]
        out: list = [None] * self.world_size
        self._dist().all_gather_object(out, obj, group=self._group)
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.sharded:
            return obj
        box = [obj if self.is_main else None]
        self._dist().broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def agree(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank; if it raised anywhere, raise on every rank (the local error
        where it failed, a :class:`RankFailedError` naming the failing rank elsewhere), so that no
        rank waits forever at the next collective."""
        err: BaseException | None = None
        result = None
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
            err = e
        if not self.sharded:
            if err is not None:
                raise err
            return result
        status = self.all_gather(None if err is None else f"{type(err).__name__}: {err}")
        if err is not None:
            raise err
        failed = [(r, s) for r, s in enumerate(status) if s is not None]
        if failed:
            r, s = failed[0]
            raise RankFailedError(f"rank {r} of {self.world_size} failed: {s}")
        return result

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and hand its result to every rank (errors reach every rank)."""
        return self.broadcast(self.agree(lambda: fn() if self.is_main else None))

    def gather_shards(self, n: int, fn: Callable[[list[int]], Sequence]) -> list:
        """``fn(indices)`` on this rank's share of ``range(n)``; returns the ``n`` results in index
        order on every rank (an item-wise map split across ranks)."""
        idx = self.shard_indices(n)
        part = self.agree(lambda: list(fn(idx)))
        if len(part) != len(idx):
            raise RuntimeError(f"sharded map returned {len(part)} results for {len(idx)} items")
        if not self.sharded:
            return part
        out: list = [None] * n
        for r, got in enumerate(self.all_gather(part)):
            for i, v in zip(shard_indices(n, r, self.world_size), got):
                out[i] = v
        return out

    def gather_rows(self, n: int, fn: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """Like :meth:`gather_shards` for an array ``fn(indices) -> (len(indices), ...)``."""
        idx = self.shard_indices(n)
        part = self.agree(lambda: np.asarray(fn(idx)))
        if not self.sharded:
            return part
        parts = self.all_gather(part)
        nonempty = [p for p in parts if p.shape[0]]
        if not nonempty:
            return part
        out = np.empty((n, *nonempty[0].shape[1:]), dtype=nonempty[0].dtype)
        for r, p in enumerate(parts):
            if p.shape[0]:
                out[shard_indices(n, r, self.world_size)] = p
        return out

    def sum(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Element-wise sums over ranks of float64 arrays (added in rank order, so every rank
        gets the same bits)."""
        if not self.sharded:
            return {k: np.asarray(v, np.float64) for k, v in arrays.items()}
        parts = self.all_gather({k: np.asarray(v, np.float64) for k, v in arrays.items()})
        return {k: np.sum([p[k] for p in parts], axis=0) for k in arrays}


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"rank {rank} of world size {world_size}: invalid shard")
    return list(range(rank, n, world_size))


_CURRENT: Dist | None = None

def unsharded_launch_warning(env: dict | None = None) -> str | None:
    """``accelerate launch --cpu --num_processes N`` starts several processes only through mpirun,
    which it runs when given ``--mpirun_hostfile``; without it, it starts one process (and still
    sets MASTER_ADDR). Say so instead of silently running unsharded."""
    env = os.environ if env is None else env
    asked = _truthy(env.get("ACCELERATE_USE_CPU")) and "MASTER_ADDR" in env
    if not asked or any(env.get(k) for k in WORLD_VARS):
        return None
    import shutil

    missing = "" if shutil.which("mpirun") or shutil.which("mpiexec") else \
        " mpirun is not installed here (Debian/Ubuntu: apt-get install mpich)."
    return ("accelerate launch --cpu started a single process: Accelerate starts N CPU processes only "
            "through mpirun, when given --mpirun_hostfile FILE (FILE: one line `localhost:N` for MPICH, "
            f"`localhost slots=N` for Open MPI).{missing} Running unsharded. Other launchers need no MPI: "
            "`accelerate launch --multi_gpu --num_processes N -m t2i_audit ...` (torchrun underneath; "
            "gloo on CPU) or `torchrun --nproc_per_node N -m t2i_audit ...`")


def _use_cpu() -> bool:
    import torch

    want = os.environ.get(DEVICE_ENV, "").strip().lower()
    if want in ("cpu", "cuda"):
        return want == "cpu" or not torch.cuda.is_available()
    return _truthy(os.environ.get("ACCELERATE_USE_CPU")) or not torch.cuda.is_available()


def _launcher() -> str:

    if os.environ.get(FANOUT_ENV):
        return "accelerate+torchrun"
    mpi = any(os.environ.get(k) for k in WORLD_VARS[1:])
    acc = any(k.startswith("ACCELERATE_") for k in os.environ)
    return {(True, True): "accelerate+mpirun", (True, False): "accelerate",
            (False, True): "mpirun", (False, False): "torchrun"}[(acc, mpi)]


def _join() -> Dist:
    world = _first_int(os.environ, WORLD_VARS, 1)
    if world <= 1:
        warning = unsharded_launch_warning()
        if warning:
            import warnings

            warnings.warn(warning, stacklevel=3)
        return Dist()
    launcher = _launcher()
    os.environ.update(launch_env())  # mpirun's variables as torch's, for PartialState and env://
    import torch.distributed as td

    cpu = _use_cpu()
    try:
        from accelerate import PartialState
    except ImportError:
        PartialState = None
    if PartialState is not None:
        st = PartialState(cpu=cpu)  # MULTI_CPU with gloo on CPU, NCCL on CUDA
        rank, got, local = st.process_index, st.num_processes, st.local_process_index
    else:
        if not td.is_initialized():
            td.init_process_group(backend="gloo" if cpu else "nccl")
        rank, got = td.get_rank(), td.get_world_size()
        local = _first_int(os.environ, LOCAL_RANK_VARS, rank)
    if got != world:
        raise RuntimeError(f"the launcher asked for {world} processes but the process group has {got} "
                           f"({launcher}); launch with accelerate launch, torchrun or mpirun as in docs/scale.md")
    backend = td.get_backend() if td.is_initialized() else None
    group = None if backend == "gloo" else td.new_group(backend="gloo")
    import atexit

    atexit.register(_shutdown)
    return Dist(rank, world, local, launcher, backend, group)


def _shutdown() -> None:
    """Leave the process group before the interpreter exits: letting gloo's threads die with the
    interpreter can abort a process that finished its work ("terminate called without an active
    exception"), which turns a successful sharded run into a failed exit code."""
    try:
        import torch.distributed as td

        if td.is_initialized():
            td.barrier()
            td.destroy_process_group()
    except Exception:  # noqa: BLE001 - best effort at exit; the work is already written
        pass


def current() -> Dist:
    """This process's :class:`Dist` (joins the process group on first use when launched sharded)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = _join()
    return _CURRENT


# --- devices ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceSettings:
    device: str  # 'cpu' or 'cuda:N'
    dtype: str  # 'float32' | 'bfloat16' | 'float16' (the autocast dtype on CUDA)
    sample_batch: int
    embed_batch: int

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]


def device_settings(dist: Dist | None = None) -> DeviceSettings:
    """CUDA (this rank's local GPU, bf16 where supported else fp16) when present and not disabled
    with ``T2I_AUDIT_DEVICE=cpu`` (or, with it unset, by ``accelerate launch --cpu``); otherwise CPU
    in fp32. Batch sizes follow the device."""
    import torch

    want = os.environ.get(DEVICE_ENV, "auto").strip().lower()
    if want not in ("auto", "cpu", "cuda"):
        raise InputError(f"${DEVICE_ENV}={want!r}: expected auto, cpu or cuda")
    if want == "cuda" and not torch.cuda.is_available():
        raise InputError(f"${DEVICE_ENV}=cuda but no CUDA device is visible; unset it to run on CPU")
    if want == "auto" and _truthy(os.environ.get("ACCELERATE_USE_CPU")):
        want = "cpu"  # accelerate launch --cpu
    if want != "cpu" and torch.cuda.is_available():
        local = (dist or current()).local_rank % torch.cuda.device_count()
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return DeviceSettings(f"cuda:{local}", dtype, *BATCH_SIZES["cuda"])
    return DeviceSettings("cpu", "float32", *BATCH_SIZES["cpu"])


def place_extractor(ex, batch_size: int | None = None, settings: DeviceSettings | None = None) -> None:
    """Move an evaluator model to this rank's device once (CUDA: autocast in ``settings.dtype``) and
    make it embed ``batch_size`` items per forward pass."""
    if batch_size and hasattr(ex, "batch_size"):
        ex.batch_size = int(batch_size)
    model = getattr(ex, "model", None)
    if model is None or getattr(ex, "device", None) is not None:
        return
    settings = settings or device_settings()
    # Only extractors that move their inputs to the model's device (open_clip, bundled CLIP) go to CUDA.
    on_cuda = settings.kind == "cuda" and hasattr(ex, "_device")
    if on_cuda:
        model.to(settings.device)
    ex.device = settings.device if on_cuda else "cpu"
    ex.autocast_dtype = settings.dtype if on_cuda else None
