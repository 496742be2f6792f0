"""One way to apply ``--threads`` and the CPU float settings, used by every entry point.

``set_threads`` always turns on flush-to-zero for denormal floats (``torch.set_flush_denormal``):
as trained weights drift towards zero, denormal arithmetic slows CPU sampling and training 4-25x.
With a thread count it also sets torch's intra-op pool and, where threadpoolctl is installed,
numpy's BLAS pool (an unlimited BLAS pool on a busy machine spins: measured 0.1 s -> 3-5 s for the
Fréchet distance's eigendecompositions). torch is imported only when this is called, so ``core``
stays importable without it.
"""

from __future__ import annotations

from t2i_audit.errors import InputError


def set_threads(threads: int | None) -> None:
    """Flush denormals; with ``threads`` (>= 1) limit torch and BLAS to that many threads.

    ``None`` keeps the thread defaults (launchers already set OMP_NUM_THREADS=1 per worker).
    """
    if threads is not None and int(threads) < 1:
        raise InputError(f"--threads {threads}: must be at least 1")
    import torch

    torch.set_flush_denormal(True)
    if threads is None:
        return
    torch.set_num_threads(int(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(int(threads))
