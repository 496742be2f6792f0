"""Scoring a run: the driver (`score`) and the rendered PictoWorld reference set (`reference`)."""

from t2i_audit.evals.scoring.score import ScoreConfig, score_run

__all__ = ["ScoreConfig", "score_run"]
