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
from t2i_audit.evals.adapters.diffusers_adapter import DiffusersAdapter, read_model_index  # noqa: F401
from t2i_audit.evals.adapters.folder import FOLDER_COLUMNS, FOLDER_MODES, FolderAdapter  # noqa: F401 (re-exported)
from t2i_audit.evals.adapters.model_dirs import check_dir, dir_fingerprint  # noqa: F401 (re-exported)
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
        self.target = target if target == "bundled" else str(check_dir(target, "checkpoint"))
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
