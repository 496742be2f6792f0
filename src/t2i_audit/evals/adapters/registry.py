"""Generator adapters: one protocol from prompts + seeds + params to images.

``adapter(prompts, seeds, params) -> list[PIL.Image]``, plus ``id``, ``kind`` and ``config()`` (JSON,
recorded in run.json with its hash). An image must depend on its (prompt, seed) only, never on the
batch it was drawn in. Optional ``prepare(pairs) -> list[bool]`` says which (prompt, seed) pairs an
adapter can produce (an image folder may not cover a whole suite); optional ``batch_hint(params) ->
int`` how many prompts per call it draws without padding (sampling never calls it with fewer, by
default).

Specs (``--generator``): ``bundled``, ``checkpoint:DIR``, ``diffusers:DIR`` or
``diffusers:ORG/NAME[@REVISION]`` (a hub id, resolved through the Hugging Face cache: ``evals.hub``),
``folder:DIR`` (or a CSV file), ``python:module:callable`` (or ``python:path/to/file.py:callable``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from t2i_audit.core.io import sha256_file
from t2i_audit.errors import InputError
from t2i_audit.evals.adapters.folder import FOLDER_COLUMNS, FOLDER_MODES, FolderAdapter  # noqa: F401 (re-exported)
from t2i_audit.evals.suites.schema import suggest

KINDS = ("bundled", "checkpoint", "diffusers", "folder", "python")


@runtime_checkable
class Generator(Protocol):
    id: str
    kind: str

    def config(self) -> dict: ...

    def __call__(self, prompts: list[str], seeds: list[int], params: dict) -> list: ...


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GeneratorSpec:
    """A parsed ``--generator`` spec; round-trips through JSON and back to its string."""

    kind: str
    target: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "bundled" else f"{self.kind}:{self.target}"

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> GeneratorSpec:
        return GeneratorSpec(**d)

    @staticmethod
    def parse(spec: str) -> GeneratorSpec:
        spec = str(spec).strip()
        if spec == "bundled":
            return GeneratorSpec("bundled")
        kind, sep, target = spec.partition(":")
        if not sep:
            hint = suggest(spec, KINDS)
            if not hint and Path(spec).exists():
                hint = f"; did you mean 'checkpoint:{spec}', 'diffusers:{spec}' or 'folder:{spec}'?"
            raise InputError(f"--generator {spec!r}: expected KIND:TARGET or 'bundled'{hint} "
                             f"(kinds: {', '.join(KINDS)})")
        if kind not in KINDS:
            raise InputError(f"--generator {spec!r}: unknown kind {kind!r}{suggest(kind, KINDS)} "
                             f"(kinds: {', '.join(KINDS)})")
        if not target:
            raise InputError(f"--generator {spec!r}: {kind} needs a target after the colon")
        if kind == "bundled":
            raise InputError(f"--generator {spec!r}: write 'bundled' alone, or 'checkpoint:DIR' for a directory")
        if kind == "python" and ":" not in target:
            raise InputError(f"--generator {spec!r}: write python:module:callable (e.g. python:mypkg.gen:draw)")
        return GeneratorSpec(kind, target)


def dir_fingerprint(path: str | Path, *, hash_limit: int = 64 << 20) -> str:
    """A content fingerprint of a model directory: sha256 of every file up to ``hash_limit`` bytes,
    and (name, size) of larger ones (hashing multi-GB weights on every run would be too slow)."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel or "__pycache__" in rel:
            continue
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= hash_limit:
            h.update(sha256_file(p).encode())
    return h.hexdigest()[:16]


def _check_dir(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(f"{what} {path!r}: no such directory")
    return p.resolve()


# ----------------------------------------------------------------------------------- t2i-audit pipeline
def _pipeline_module():
    """The generator's pipeline module, imported lazily (evals never imports the generator eagerly)."""
    try:
        from t2i_audit.generator.pipeline import unclip_pipeline as pipeline
    except ImportError as e:
        raise InputError(f"the t2i-audit generator is not available in this install ({e})") from None
    return pipeline


class PipelineAdapter:
    """The bundled generator or any t2i-audit checkpoint directory (``t2i_audit.generator.Pipeline``).

    Params are the pipeline's sampler overrides (``steps``, ``guidance``, ``sampler``, ``rerank``...);
    those left out take the checkpoint's defaults, which its fingerprint covers."""

    def __init__(self, target: str = "bundled"):
        self.kind = "bundled" if target == "bundled" else "checkpoint"
        self.target = target if target == "bundled" else str(_check_dir(target, "checkpoint"))
        self.id = str(GeneratorSpec(self.kind, "" if target == "bundled" else self.target))
        self._pipe = None

    def _load(self):
        if self._pipe is None:
            from t2i_audit.evals.distributed.launch import device_settings

            self._pipe = _pipeline_module().Pipeline.load(self.target)
            ds = device_settings()  # this rank's GPU with bf16/fp16 autocast where present, else CPU fp32
            if ds.kind == "cuda" and hasattr(self._pipe, "to"):
                self._pipe.to(ds.device, ds.dtype)
        return self._pipe

    def load(self, params: dict) -> None:
        """Load the checkpoint now (sampling calls this before it creates the run directory)."""
        self._load()

    def batch_hint(self, params: dict) -> int:
        """The pipeline's largest fixed chunk at these params (the prior's, 64 rows for the bundled
        checkpoint): fewer prompts per call would pad it."""
        return self._load().resolve_params(params or None).prior_chunk

    def _directory(self) -> Path | None:
        if self.target != "bundled":
            return Path(self.target)
        find = getattr(_pipeline_module(), "bundled_dir", None)
        return Path(find()) if callable(find) else None

    def config(self) -> dict:
        pipe = self._load()
        cfg: dict = {"checkpoint": self.target, "pipeline_id": str(getattr(pipe, "id", ""))}
        d = self._directory()
        if d is not None and d.is_dir():
            cfg["fingerprint"] = dir_fingerprint(d)
        index = getattr(pipe, "index", None)
        if isinstance(index, dict):
            cfg["index"] = index
        defaults = getattr(pipe, "defaults", None)
        if hasattr(defaults, "to_dict"):
            cfg["sampler_defaults"] = defaults.to_dict()
        if getattr(pipe, "safety", None) is not None:
            cfg["safety"] = pipe.safety.to_dict()
        return cfg

    def __call__(self, prompts, seeds, params):
        out = self._load()(list(prompts), [int(s) for s in seeds], **params)
        return list(getattr(out, "images", out))


# ----------------------------------------------------------------------------------- diffusers
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
            self.path = _check_dir(target, "diffusers pipeline")
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


# ----------------------------------------------------------------------------------- python callable
def _load_callable(target: str):
    mod_name, _, fn_name = target.rpartition(":")
    if mod_name.endswith(".py") or "/" in mod_name:
        path = Path(mod_name)
        if not path.is_file():
            raise InputError(f"python:{target}: no such file {mod_name!r}")
        spec = importlib.util.spec_from_file_location(f"_t2i_audit_gen_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ImportError as e:
            raise InputError(f"python:{target}: cannot import module {mod_name!r} ({e})") from None
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise InputError(f"python:{target}: module {mod_name!r} has no callable {fn_name!r}"
                         f"{suggest(fn_name, names)}")
    return module, fn


class PythonAdapter:
    """``module:callable`` called as ``fn(prompts, seeds, params) -> list of PIL images``."""

    kind = "python"

    def __init__(self, target: str):
        self.target = target
        self.id = f"python:{target}"
        self.module, self.fn = _load_callable(target)

    def config(self) -> dict:
        cfg = {"target": self.target}
        src = getattr(self.module, "__file__", None)
        if src and Path(src).is_file():
            cfg["source_sha256"] = sha256_file(src)[:16]
        extra = getattr(self.fn, "config", None)
        if callable(extra):
            cfg["callable_config"] = extra()
        return cfg

    def __call__(self, prompts, seeds, params):
        return list(self.fn(list(prompts), [int(s) for s in seeds], dict(params)))


def load_model(gen, params: dict | None = None) -> None:
    """Load an adapter's model now where it has one (optional ``load(params)``), so that a refused
    model is refused before a run directory exists."""
    load = getattr(gen, "load", None)
    if callable(load):
        load(dict(params or {}))


def load_generator(spec: str | GeneratorSpec, *, allow_outside: bool = False) -> Generator:
    """Build the adapter for a ``--generator`` spec (``allow_outside``: a folder generator may name
    images outside its folder)."""
    spec = spec if isinstance(spec, GeneratorSpec) else GeneratorSpec.parse(spec)
    if spec.kind == "bundled":
        return PipelineAdapter("bundled")
    if spec.kind == "checkpoint":
        return PipelineAdapter(spec.target)
    if spec.kind == "diffusers":
        return DiffusersAdapter(spec.target)
    if spec.kind == "folder":
        return FolderAdapter(spec.target, allow_outside=allow_outside)
    return PythonAdapter(spec.target)
