"""The bundled generator's parts that evals use as evaluators: its PictoWorld CLIP.

Evals reach the generator package only through the adapters (this module and ``registry``), so that
a toolkit installed without the generator still scores other models' runs.
"""

from __future__ import annotations

from t2i_audit.errors import InputError


def bundled_clip(path: str = "bundled"):
    """The PictoWorld CLIP (``generator.models.pictoworld_clip.ClipBundle``: model, config, tokenizer, id) of the bundled
    checkpoint or of a checkpoint / CLIP directory."""
    try:
        from t2i_audit.generator.models.pictoworld_clip import load_clip
    except ImportError as e:
        raise InputError("bundled-clip: the bundled CLIP (t2i_audit.generator.models.pictoworld_clip) is not available in this "
                         "installation; use --features open_clip:ARCH:WEIGHTS or hf-clip:DIR") from e
    try:
        return load_clip(path)
    except FileNotFoundError as e:
        raise InputError(f"bundled-clip:{path}: {e}") from e
