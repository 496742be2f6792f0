"""A bench that backs a claim must be able to fail: its verdict is checked here on planted rows."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_world_oracle_fails_when_every_reading_abstained():
    wo = _bench("world_oracle")
    good = {"attribute": "shape", "accuracy": 1.0, "abstain_rate": 0.0}
    assert wo.row_failures([good], "clean") == []
    abstained = {"attribute": "colour", "accuracy": math.nan, "abstain_rate": 1.0}
    assert wo.row_failures([good, abstained], "noise:1") == ["noise:1/colour (no answered reading)"]
    assert wo.row_failures([{**good, "abstain_rate": math.nan}], "clean") == ["clean/shape"]
    assert wo.row_failures([{**good, "accuracy": 0.99}], "clean") == ["clean/shape"]
    assert wo.row_failures([{**good, "accuracy": 0.99, "abstain_rate": 0.4}], "blur:1") == []
