"""Generation runs: the run directory (`rundir`), resumable sampling (`sampling`), the run lock
(`locking`) and single-image reproduction (`reproduce`)."""

from t2i_audit.evals.runs.sampling import SampleConfig, load_run, sample

__all__ = ["SampleConfig", "load_run", "sample"]
