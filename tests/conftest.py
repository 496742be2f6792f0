"""Shared test settings: one torch thread and flushed denormals keep tests fast and deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
except ImportError:  # pragma: no cover
    pass


# -- skips cannot hide failures in CI ------------------------------------------------------------
# With CI=true (.ci/run exports it) a test skipped because an installed-by-CI dependency is missing
# fails instead: CI installs ".[dev,fid,nudenet]", chromium and mpirun, so such a skip means the
# environment is broken, not that the test does not apply. Other skips (e.g. updating golden files)
# stay skips. Without CI the skip stays a skip, and only the tests that need the package skip.
import pytest  # noqa: E402

CI_DEPENDENCIES = ("torch", "torchvision", "torch_fidelity", "torch-fidelity", "ppi_py", "prdc", "vendi",
                   "nudenet", "markdown_it", "hypothesis", "yaml", "open_clip", "transformers", "diffusers",
                   "torchmetrics", "accelerate", "safetensors", "chromium", "mpirun", "onnxruntime")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def ci_dependency_skip(reason: str) -> str | None:
    """The CI dependency a skip reason names (importorskip: 'could not import 'X''), else None."""
    low = reason.lower()
    for dep in CI_DEPENDENCIES:
        if dep.lower() in low:
            return dep
    return "an optional module" if "could not import" in low else None


def _skip_reason(report) -> str:
    lr = report.longrepr
    return str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        dep = ci_dependency_skip(_skip_reason(report))
        if dep:
            report.outcome = "failed"
            report.longrepr = f"CI=true: skipped for want of {dep}, which CI installs: {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        dep = ci_dependency_skip(_skip_reason(report))
        if dep:
            report.outcome = "failed"
            report.longrepr = f"CI=true: module skipped for want of {dep}, which CI installs: {_skip_reason(report)}"
