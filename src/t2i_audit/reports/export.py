"""Send a run's results to the experiment trackers training teams already read: MLflow and TensorBoard.

``export_run(run, mlflow_uri=..., tensorboard_dir=..., step=...)`` (also ``t2i-audit export``) logs
every gateable estimate of the run (``reports.gate.index``: scores, bias, safety, memorization,
diversity, alignment, robustness) as three values, ``<key>`` (the estimate), ``<key>/ci_low`` and
``<key>/ci_high`` (its 95% interval), plus ``<key>/n`` (images or prompts behind it), at ``step``
(a training step; default: the run's ``step`` parameter, else 0). The run's fingerprint
(``reports.gate.fingerprint``) goes in as MLflow parameters (``measures``) and tags (``runs``), or
as TensorBoard text; ``report.html``/``report.md``/``gate.json`` of the run, where present, are
logged as MLflow artifacts. Key names are made tracker-safe (``[`` ``]`` ``:`` ``=`` ``*`` become
``_``/``.``) and the map from key to logged name is returned.

A training loop calls :func:`export_run` with its own ``step`` after each evaluation. ``mlflow`` and
``tensorboard`` are optional extras (``pip install t2i-audit[mlflow]``/``[tensorboard]``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from t2i_audit.errors import InputError

ARTIFACTS = ("report.html", "report.md", "gate.json")


def tracker_name(key: str) -> str:
    """``bias.presentation.share[chef:woman]`` → ``bias.presentation.share/chef_woman`` (MLflow-safe)."""
    name, _, group = key.partition("[")
    group = group.rstrip("]")
    safe = re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)
    if group:
        safe += "/" + re.sub(r"[^A-Za-z0-9_\-. ]", "_", group)
    return safe[:250]


def run_values(run: str | Path) -> tuple[dict[str, float], dict, object]:
    """(logged name → value, fingerprint, loaded results) of a run directory."""
    from t2i_audit.reports.gate.fingerprint import run_fingerprint
    from t2i_audit.reports.gate.index import MetricIndex
    from t2i_audit.reports.results import load_run

    res = load_run(run)
    values: dict[str, float] = {}
    for groups in MetricIndex(res).names.values():
        for est in groups.values():
            base = tracker_name(est.key)
            for suffix, v in (("", est.value), ("/ci_low", est.ci_low), ("/ci_high", est.ci_high), ("/n", est.n)):
                if v is not None and math.isfinite(float(v)):
                    values[base + suffix] = float(v)
    if not values:
        raise InputError(f"{run}: no results to export; score or audit the run first")
    return values, run_fingerprint(res), res


def _step(res, step: int | None) -> int:
    if step is not None:
        return int(step)
    s = (res.run.get("params") or {}).get("step") if isinstance(res.run.get("params"), dict) else None
    try:
        return int(s) if s is not None else 0
    except (TypeError, ValueError):
        return 0


def to_mlflow(run: str | Path, uri: str, *, experiment: str = "t2i-audit", run_name: str | None = None,
              step: int | None = None) -> dict:
    """Log a run to MLflow at tracking ``uri`` (a ``file:`` folder, ``sqlite:///db``, or a server)."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError("--mlflow needs the mlflow package: pip install 't2i-audit[mlflow]'") from None
    values, fp, res = run_values(run)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    mrun = client.create_run(exp_id, run_name=run_name or res.run_id,
                             tags={f"t2i.{k}"[:250]: str(v)[:5000] for k, v in fp["runs"].items()})
    rid, st = mrun.info.run_id, _step(res, step)
    from mlflow.entities import Metric, Param

    metrics = [Metric(k, v, 0, st) for k, v in values.items()]
    params = [Param(f"t2i.{k}"[:250], str(v)[:6000]) for k, v in fp["measures"].items()]
    for i in range(0, len(metrics), 900):
        client.log_batch(rid, metrics=metrics[i:i + 900])
    for i in range(0, len(params), 90):
        client.log_batch(rid, params=params[i:i + 90])
    client.set_tag(rid, "t2i.run_id", res.run_id)
    for name in ARTIFACTS:
        if (res.root / name).is_file():
            client.log_artifact(rid, str(res.root / name))
    client.set_terminated(rid)
    del mlflow
    return {"backend": "mlflow", "uri": uri, "run_id": rid, "step": st, "n_values": len(values)}


def to_tensorboard(run: str | Path, logdir: str | Path, *, step: int | None = None) -> dict:
    """Write a run's values as TensorBoard scalars (and the fingerprint as text) under ``logdir``."""
    try:
        from tensorboard.summary import Writer
    except ImportError:
        raise InputError("--tensorboard needs the tensorboard package: pip install 't2i-audit[tensorboard]'"
                         ) from None
    values, fp, res = run_values(run)
    st = _step(res, step)
    out = Path(logdir)
    out.mkdir(parents=True, exist_ok=True)
    w = Writer(str(out))
    for k, v in values.items():
        w.add_scalar(k, v, step=st)
    lines = [f"| {sec} | {k} | {str(v).replace('|', '/')} |" for sec in ("measures", "runs")
             for k, v in fp[sec].items()]
    w.flush()
    w.close()
    _tb_text(out, "t2i-audit/fingerprint", "| part | key | value |\n|---|---|---|\n" + "\n".join(lines), st)
    return {"backend": "tensorboard", "logdir": str(out), "step": st, "n_values": len(values)}


def _tb_text(logdir: Path, tag: str, text: str, step: int) -> None:
    """A TensorBoard text summary (the text plugin's tensor format) without TensorFlow."""
    import time

    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    tensor = tensor_pb2.TensorProto(dtype=7, string_val=[text.encode("utf-8")],  # 7 = DT_STRING
                                    tensor_shape=tensor_shape_pb2.TensorShapeProto())
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)])
    w = EventFileWriter(str(logdir), filename_suffix=".text")
    w.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
    w.close()


def export_run(run: str | Path, *, mlflow_uri: str | None = None, tensorboard_dir: str | Path | None = None,
               step: int | None = None, experiment: str = "t2i-audit", run_name: str | None = None) -> list[dict]:
    """Export to every tracker given; the Python entry point for training loops."""
    if mlflow_uri is None and tensorboard_dir is None:
        raise InputError("export: give --mlflow URI and/or --tensorboard DIR")
    out = []
    if mlflow_uri is not None:
        out.append(to_mlflow(run, mlflow_uri, experiment=experiment, run_name=run_name, step=step))
    if tensorboard_dir is not None:
        out.append(to_tensorboard(run, tensorboard_dir, step=step))
    return out
