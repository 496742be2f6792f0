"""The ``diffusers:DIR`` / ``diffusers:ORG/NAME[@REVISION]`` generator adapter: ``model_index.json``
validated before anything is imported from it (class names must be strings naming classes diffusers
or transformers ship), a pipeline whose call takes no ``prompt`` refused by class name, diffusers'
own progress output silenced, safetensors only."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from t2i_audit.errors import InputError
from t2i_audit.evals.adapters.model_dirs import check_dir, dir_fingerprint
from t2i_audit.evals.suites.schema import suggest


def read_model_index(path: Path) -> dict:
    """A pipeline's ``model_index.json``, checked before diffusers reads it: a JSON object whose
    ``_class_name`` is a string and whose components are ``[library, class]`` pairs of strings (or
    nulls) naming classes diffusers or transformers ship. One-line :class:`InputError` otherwise."""
    from t2i_audit.core.io import read_user_text

    try:
        index = json.loads(read_user_text(path, "model_index.json", "re-save the pipeline with save_pretrained"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); re-save the pipeline with "
                         "save_pretrained") from None
    if not isinstance(index, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(index).__name__}")
    name = index.get("_class_name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{path}: _class_name must be the pipeline's class name as a string, got {name!r:.80}")
    for key, value in index.items():
        if key.startswith("_") or isinstance(value, (bool, int, float)) or value is None:
            continue  # metadata and plain config values (requires_safety_checker: true)
        if not (isinstance(value, list) and len(value) == 2
                and all(v is None or isinstance(v, str) for v in value)):
            raise InputError(f"{path}: component {key!r} must be [library, class] as two strings (or two "
                             f"nulls), got {value!r:.80}")
        library, cls = value
        if (library is None) != (cls is None):
            raise InputError(f"{path}: component {key!r}: [library, class] must both be set or both null, "
                             f"got {value!r}")
        if cls is not None and not _known_component(library, cls):
            raise InputError(f"{path}: component {key!r} names {library}.{cls}, which is not a class "
                             "diffusers or transformers ships; custom component code is not loaded")
    return index


def _known_component(library: str, cls: str) -> bool:
    import diffusers

    if library == "diffusers":
        return isinstance(getattr(diffusers, cls, None), type)
    if library == "transformers":
        import transformers

        return isinstance(getattr(transformers, cls, None), type)
    # a pipeline submodule (e.g. ["stable_diffusion", "StableDiffusionSafetyChecker"])
    if not library.isidentifier():
        return False
    try:
        module = importlib.import_module(f"diffusers.pipelines.{library}")
    except ImportError:
        return False
    return isinstance(getattr(module, cls, None), type)


def text_to_image_class(index: dict, path: Path):
    """The diffusers pipeline class ``_class_name`` names, refused unless its ``__call__`` takes a
    ``prompt`` (a text-to-image pipeline)."""
    import inspect

    import diffusers

    name = index["_class_name"]
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise InputError(f"{path}: _class_name {name!r} is not a diffusers pipeline class"
                         f"{suggest(name, [n for n in dir(diffusers) if n.endswith('Pipeline')])}")
    try:
        takes_prompt = "prompt" in inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        takes_prompt = False
    if not takes_prompt:
        raise InputError(f"diffusers:{path.parent}: {name} is not a text-to-image pipeline (its __call__ takes no "
                         "'prompt'); point at a text-to-image pipeline such as StableDiffusionPipeline")
    return cls


class _quiet_diffusers:
    """Silence diffusers' and transformers' progress bars, log lines and warnings while loading."""

    def __enter__(self):
        import warnings

        from diffusers.utils import logging as dlog

        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore")
        self._dlevel = dlog.get_verbosity()
        dlog.set_verbosity_error()
        self._dbar = dlog.is_progress_bar_enabled()
        dlog.disable_progress_bar()
        try:
            from transformers.utils import logging as tlog
        except ImportError:  # pragma: no cover
            tlog = None
        self._tlog = tlog
        if tlog is not None:
            self._tlevel = tlog.get_verbosity()
            tlog.set_verbosity_error()
            self._tbar = tlog.is_progress_bar_enabled()
            tlog.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from diffusers.utils import logging as dlog

        dlog.set_verbosity(self._dlevel)
        if self._dbar:
            dlog.enable_progress_bar()
        if self._tlog is not None:
            self._tlog.set_verbosity(self._tlevel)
            if self._tbar:
                self._tlog.enable_progress_bar()
        self._warn.__exit__(*exc)
        return False


class DiffusersAdapter:
    """A diffusers pipeline saved with ``save_pretrained`` in a local directory, or a hub id
    ``ORG/NAME[@REVISION]`` resolved through the Hugging Face cache (the id then records the commit:
    ``diffusers:ORG/NAME@COMMIT``, and ``config()["hub"]`` the revision asked for); loaded offline.

    Each image gets its own CPU ``torch.Generator`` seeded with its seed, so an image depends on its
    seed only. Params go to the pipeline call (``num_inference_steps``, ``guidance_scale``, ``height``,
    ``width``, ``negative_prompt``...), except ``device`` and ``dtype`` (float32/float16/bfloat16).
    """

    kind = "diffusers"

    def __init__(self, target: str):
        from t2i_audit.evals import hub

        self.hub = None
        if hub.looks_like_hub_id(target):
            self.hub = hub.resolve(target, "diffusers:")
            self.path = self.hub.path
        else:
            self.path = check_dir(target, "diffusers pipeline")
        if not (self.path / "model_index.json").is_file():
            raise InputError(f"diffusers:{target}: no model_index.json; point at a directory written by "
                             f"DiffusionPipeline.save_pretrained")
        self.index = read_model_index(self.path / "model_index.json")
        self.pipeline_class = text_to_image_class(self.index, self.path / "model_index.json")
        if self.hub is not None:
            hub.require_safetensors(self.path, f"diffusers:{self.hub.pinned}")
        self.id = f"diffusers:{self.hub.pinned if self.hub else self.path}"
        self._pipe = None
        self._device = None

    def config(self) -> dict:
        index = self.index
        return {"path": str(self.path), "class": index.get("_class_name"),
                "diffusers_version": index.get("_diffusers_version"),
                "fingerprint": dir_fingerprint(self.path),
                **({"hub": self.hub.to_dict()} if self.hub else {})}

    def load(self, params: dict) -> None:
        """Load the pipeline now (sampling calls this before it creates the run directory)."""
        self._load(params.get("device"), params.get("dtype"))

    def _load(self, device: str | None, dtype: str | None):
        import torch

        if self._pipe is None:
            # safetensors only: a component saved as a pickle (.bin/.pt/.ckpt) is refused, never opened
            kwargs = {"local_files_only": True, "use_safetensors": True}
            if dtype:
                kwargs["torch_dtype"] = getattr(torch, dtype)
            # Load through the class the directory names (validated in __init__: a known diffusers
            # pipeline whose call takes a prompt); custom subclasses reload correctly only through
            # themselves. Loading prints nothing: a refusal is one line.
            try:
                with _quiet_diffusers():
                    pipe = self.pipeline_class.from_pretrained(str(self.path), **kwargs)
            except Exception as e:  # noqa: BLE001 - whatever a user's model directory makes diffusers raise
                hint = ("; weights are read from .safetensors only (pickle .bin/.ckpt files can run code when "
                        "loaded): re-save with save_pretrained(safe_serialization=True)" if "safetensors" in str(e) else "")
                raise InputError(f"diffusers:{self.path}: cannot load the pipeline offline: "
                                 f"{type(e).__name__}: {str(e)[:300]}{hint}") from None
            self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            pipe = pipe.to(self._device)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe
        return self._pipe

    def __call__(self, prompts, seeds, params):
        import torch

        params = dict(params)
        pipe = self._load(params.pop("device", None), params.pop("dtype", None))
        generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        with torch.inference_mode():
            out = pipe(prompt=list(prompts), generator=generators, output_type="pil", **params)
        return list(out.images)


