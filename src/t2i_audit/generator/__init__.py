"""t2i_audit.generator: the bundled unCLIP generator, in the diffusers split: ``models`` (networks,
configs, weights I/O), ``samplers``, ``pipeline`` (text -> prior -> decoder -> pixels), ``training``.

``from t2i_audit.generator import Pipeline`` (the README's entry point) loads torch only when the
name is first used.
"""

__all__ = ["Pipeline"]


def __getattr__(name: str):
    if name == "Pipeline":
        from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 't2i_audit.generator' has no attribute {name!r}")
