"""Generator adapters: the protocol and spec parser (`registry`), image folders (`folder`)."""

from t2i_audit.evals.adapters.registry import GeneratorSpec, load_generator

__all__ = ["GeneratorSpec", "load_generator"]
