"""export: every value logged to MLflow (a SQLite store) and TensorBoard reads back through the
libraries' own readers."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.reports.export import export_run, run_values

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def run(tmp_path):
    shutil.copytree(FIX / "run_a", tmp_path / "run_a")
    (tmp_path / "run_a" / "report.md").write_text("# report\n")
    return tmp_path / "run_a"


def test_mlflow_round_trip(run, tmp_path):  # SQLite store (MLflow 3 refuses new file stores by default)
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (res,) = export_run(run, mlflow_uri=uri, step=1200)
    values, fp, _ = run_values(run)
    got = MlflowClient(tracking_uri=uri).get_run(res["run_id"])
    assert got.data.metrics == pytest.approx(values)
    assert len(values) == res["n_values"] and "clip_score/ci_low" in values and "clip_score/n" in values
    hist = MlflowClient(tracking_uri=uri).get_metric_history(res["run_id"], "skill")
    assert [h.step for h in hist] == [1200]
    assert got.data.params["t2i.scores.evaluator.clip"] == fp["measures"]["scores.evaluator.clip"]
    assert got.data.tags["t2i.sample.package_version"] == "0.1.0"
    arts = [a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(res["run_id"])]
    assert "report.md" in arts


def test_tensorboard_round_trip(run, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = CliRunner().invoke(main, ["export", str(run), "--tensorboard", str(tmp_path / "tb"), "--step", "7"])
    assert r.exit_code == 0, r.output
    values, _, _ = run_values(run)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    got = {}
    from tensorboard.util import tensor_util

    for tag in tags.get("tensors", []):
        ev = acc.Tensors(tag)[-1]
        if tag in values:
            got[tag] = (float(tensor_util.make_ndarray(ev.tensor_proto)), ev.step)
    for tag in tags.get("scalars", []):
        ev = acc.Scalars(tag)[-1]
        got[tag] = (ev.value, ev.step)
    assert set(got) == set(values)
    assert all(step == 7 for _, step in got.values())
    assert {k: v for k, (v, _) in got.items()} == pytest.approx(values, rel=1e-6)
    assert "t2i-audit/fingerprint" in tags.get("tensors", [])


def test_export_needs_a_target(run):
    r = CliRunner().invoke(main, ["export", str(run)])
    assert r.exit_code == 2 and "--mlflow" in r.output
