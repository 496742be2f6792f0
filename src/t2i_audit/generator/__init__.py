"""t2i_audit.generator: the bundled unCLIP-family generator (text encoder, CLIP, prior, decoder).

``from t2i_audit.generator import Pipeline`` -- the public entry point, imported on first use so
that importing a submodule (configs, presets) does not build the networks' imports."""


def __getattr__(name: str):
    if name == "Pipeline":
        from t2i_audit.generator.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 't2i_audit.generator' has no attribute {name!r}")


__all__ = ["Pipeline"]
