"""`t2i-audit export RUN --mlflow URI / --tensorboard DIR`: a run's results into experiment trackers."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--mlflow", "mlflow_uri", default=None, metavar="URI",
              help="MLflow tracking URI: a file: folder, sqlite:///mlflow.db or a server.")
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="TensorBoard log folder.")
@click.option("--step", type=int, default=None, help="Training step to log at (default: the run's 'step' param, "
                                                      "else 0).")
@click.option("--experiment", default="t2i-audit", show_default=True, help="MLflow experiment name.")
@click.option("--run-name", default=None, help="MLflow run name (default: the run id).")
def export(run: Path, mlflow_uri: str | None, tensorboard_dir: Path | None, step: int | None, experiment: str,
           run_name: str | None) -> None:
    """Log RUN's metrics (value, interval ends, n), its fingerprint and its report to MLflow and/or TensorBoard."""
    from t2i_audit.reports.export import export_run

    for r in export_run(run, mlflow_uri=mlflow_uri, tensorboard_dir=tensorboard_dir, step=step,
                        experiment=experiment, run_name=run_name):
        where = r.get("uri") or r.get("logdir")
        extra = f" (MLflow run {r['run_id']})" if "run_id" in r else ""
        click.echo(f"{r['backend']}: {r['n_values']} values at step {r['step']} → {where}{extra}")
