"""t2i_audit.generator: the bundled unCLIP generator (text encoder, CLIP, prior, decoder, samplers).

``from t2i_audit.generator import Pipeline`` (the README's entry point) loads torch only when the
name is first used.
"""

__all__ = ["Pipeline"]


def __getattr__(name: str):
    if name == "Pipeline":
        from t2i_audit.generator.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 't2i_audit.generator' has no attribute {name!r}")
