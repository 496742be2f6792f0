"""Prompt suites: YAML data (`builtin/`), schema checks, templates, PictoWorld-derived suites."""

from t2i_audit.evals.suites.loader import PromptSuite, SeedPolicy, builtin_names, load_suite
from t2i_audit.evals.suites.templates import PromptSpec

__all__ = ["PromptSpec", "PromptSuite", "SeedPolicy", "builtin_names", "load_suite"]
