"""Evaluator models (feature extractors), all loaded offline from local files, named by a spec.

A spec string picks the model (``--features``):

=========================================  =====================================================
``bundled-clip`` / ``bundled-clip:DIR``    the CLIP trained on PictoWorld (``generator.models.pictoworld_clip``)
``open_clip:ARCH:WEIGHTS``                 an open_clip architecture (registered name, or a
                                           model-config JSON) with a local weights file
``open_clip:ARCH:PRETRAINED_TAG``          open_clip's pretrained tag (e.g. laion2b_s34b_b79k),
                                           read from its hub repo in the Hugging Face cache
``hf-clip:DIR`` / ``hf-clip:ORG/NAME[@REV]`` a Hugging Face CLIP directory (``save_pretrained``),
                                           or a hub id resolved through the cache (``evals.hub``)
``inception:WEIGHTS``                      Inception-v3 (torch-fidelity layout) for classic FID
=========================================  =====================================================

Hub ids record the resolved commit in the id (``hf-clip:ORG/NAME@COMMIT:HASH``). Every extractor
has a stable ``id`` naming the model and a hash of its weights (the embedding
cache keys on it) and a ``methodology`` line stating its preprocessing. Models are loaded once
per process per spec and run under ``torch.inference_mode``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.evals.features.common import (  # noqa: F401 - re-exported
    _need_file,
    images_to_uint8,
    weights_hash,
)


@runtime_checkable
class FeatureExtractor(Protocol):
    id: str
    methodology: str

    def embed_images(self, images: list) -> torch.Tensor:  # list[PIL.Image] -> (N, D) float32
        ...


@runtime_checkable
class TextImageExtractor(FeatureExtractor, Protocol):
    def embed_texts(self, texts: list[str]) -> torch.Tensor:  # (N, D) float32, same space as images
        ...


def _autocast(ex):
    """fp16/bf16 autocast where ``distributed.place_extractor`` put the model on CUDA; a no-op on CPU."""
    import contextlib

    dtype = getattr(ex, "autocast_dtype", None)
    if not dtype:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=getattr(torch, dtype))


class OpenClipExtractor:
    """Any open_clip CLIP model (including the bundled PictoWorld CLIP)."""

    kind = "clip"

    def __init__(self, model, preprocess, tokenizer, id: str, methodology: str, batch_size: int = 64,
                 preprocess_batch: Callable[[list], torch.Tensor] | None = None):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.id = id
        self.methodology = methodology
        self.batch_size = batch_size
        # list[PIL] -> normalised NCHW in one go (the same numbers as stacking ``preprocess``)
        self.preprocess_batch = preprocess_batch or (
            lambda ims: torch.stack([self.preprocess(im.convert("RGB")) for im in ims]))
        from t2i_audit.evals.features.clip_fast import fast_image_encoder

        # the exact class-token-only forward where the model allows it (see clip_fast)
        self._encode_image = fast_image_encoder(self.model) or self.model.encode_image

    def _device(self):
        return next(self.model.parameters()).device

    def embed_images(self, images: list) -> torch.Tensor:
        outs = []
        with torch.inference_mode(), _autocast(self):
            for s in range(0, len(images), self.batch_size):
                x = self.preprocess_batch(images[s:s + self.batch_size])
                outs.append(self._encode_image(x.to(self._device())).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, 0)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        outs = []
        with torch.inference_mode(), _autocast(self):
            for s in range(0, len(texts), self.batch_size):
                tok = self.tokenizer(list(texts[s:s + self.batch_size]))
                outs.append(self.model.encode_text(tok.to(self._device())).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, 0)


def _describe_transform(preprocess) -> str:
    parts = []
    for t in getattr(preprocess, "transforms", []):
        name = type(t).__name__
        if name == "Resize":
            interp = getattr(t, "interpolation", "")
            parts.append(f"resize {t.size} {getattr(interp, 'value', interp)} antialias")
        elif name == "CenterCrop":
            parts.append(f"centre crop {tuple(t.size)}")
        elif name == "Normalize":
            parts.append(f"normalise mean {tuple(round(m, 4) for m in t.mean)} std {tuple(round(s, 4) for s in t.std)}")
        elif name not in ("ToTensor", "Lambda") and not name.startswith("_"):
            parts.append(name)
    return ", ".join(parts) or "model preprocessing"


def _is_pretrained_tag(weights: str) -> bool:
    """True when ``open_clip:ARCH:X`` names a pretrained tag rather than a weights file."""
    return not Path(weights).expanduser().exists() and "/" not in weights and not weights.endswith(
        (".safetensors", ".pt", ".pth", ".bin", ".ckpt"))


def _pretrained_from_hub(name: str, tag: str) -> tuple[Path, dict, str]:
    """(weights file, preprocessing overrides, id part) for open_clip's pretrained ``tag`` of
    ``name``, read from the tag's hub repo in the Hugging Face cache (safetensors only)."""
    from open_clip import pretrained as registry

    from t2i_audit.evals import hub

    cfg = registry.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = registry.list_pretrained_tags_by_model(name)
        hint = did_you_mean(tag, tags)
        raise InputError(f"open_clip:{name}:{tag}: neither a weights file nor a pretrained tag of "
                         f"{name}{hint}; tags: {', '.join(tags) or 'none'}")
    parts = (cfg.get("hf_hub") or "").strip("/").split("/")
    if len(parts) < 2:
        raise InputError(f"open_clip:{name}:{tag}: this tag is published by URL only, not on the hub; "
                         "download it yourself and give open_clip:ARCH:/path/to/weights.safetensors")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    snap = hub.resolve(repo_id, f"open_clip:{name}:{tag} -> ")
    names = [filename] if filename.endswith(".safetensors") else []
    names.append(registry.HF_SAFE_WEIGHTS_NAME)
    if filename:
        names.append(str(Path(filename).with_suffix(".safetensors")))
    found = next((snap.path / n for n in names if (snap.path / n).is_file()), None)
    if found is None:
        raise InputError(f"open_clip:{name}:{tag}: {snap.pinned} has no {registry.HF_SAFE_WEIGHTS_NAME}; "
                         "pickle weights (open_clip_pytorch_model.bin) are refused: use a revision with "
                         "safetensors")
    over = {f"image_{k}": (tuple(cfg[k]) if isinstance(cfg[k], list) else cfg[k])
            for k in ("mean", "std", "interpolation", "resize_mode") if cfg.get(k)}
    return found, over, f"{tag}@{snap.pinned}"


def load_open_clip(arch: str, weights: str, batch_size: int = 64) -> OpenClipExtractor:
    """``open_clip:ARCH:WEIGHTS_FILE`` or ``open_clip:ARCH:PRETRAINED_TAG`` (hub cache)."""
    import open_clip

    name = arch
    extra = ""
    if arch.endswith(".json"):
        cfg = _need_file(arch, "open_clip model config", "give a JSON model config or a registered architecture")
        open_clip.add_model_config(str(cfg))
        name = cfg.stem
        extra = "+cfg" + weights_hash(cfg, n=8)
    elif arch not in open_clip.list_models():
        hint = did_you_mean(arch, open_clip.list_models(), n=3)
        raise InputError(f"open_clip architecture {arch!r} is not registered{hint}; or give a model-config JSON path")
    over: dict = {}
    tag = ""
    if _is_pretrained_tag(weights):
        w, over, tag = _pretrained_from_hub(name, weights)
    else:
        w = _need_file(weights, "open_clip weights",
                       "give a local .safetensors/.pt state dict or a pretrained tag")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(w), **over)
    except pickle.UnpicklingError:
        raise InputError(f"open_clip weights {weights}: refused: the file pickles objects other than tensors, which "
                         "could run code; it is read only with torch.load(weights_only=True). Give a "
                         ".safetensors file or a plain state dict") from None
    except (RuntimeError, KeyError, ValueError) as e:
        raise InputError(f"open_clip weights {weights}: do not fit architecture {name} ({str(e)[:200]})") from e
    tok = open_clip.get_tokenizer(name)
    ident = f"open_clip:{name}{extra}:{tag + ':' if tag else ''}{weights_hash(w)}"
    meth = (f"open_clip {name}{' pretrained ' + tag if tag else ''}, weights sha256 {weights_hash(w)}; "
            f"preprocessing: {_describe_transform(preprocess)}")
    return OpenClipExtractor(model, preprocess, tok, ident, meth, batch_size)


def load_bundled_clip(path: str = "bundled", batch_size: int = 64) -> OpenClipExtractor:
    from t2i_audit.evals.adapters.bundled import bundled_clip

    c = bundled_clip(path)
    size = getattr(getattr(c, "config", None), "image_size", "?")
    meth = (f"PictoWorld CLIP {c.id}; preprocessing: RGB, PIL bicubic antialiased resize to {size}x{size} "
            "if needed, rounded to uint8, mean/std normalisation")
    size = c.config.image_size
    c.tokenizer(["a"])  # builds the BPE vocabulary (a process-wide singleton) now, as part of loading

    def batch(images: list) -> torch.Tensor:  # = stacking c.preprocess: uint8 (resized as there), normalised
        return c.normalize(torch.from_numpy(images_to_uint8(images, size)).permute(0, 3, 1, 2))

    return OpenClipExtractor(c.model, c.preprocess, c.tokenizer, f"bundled-clip:{c.id}", meth, batch_size, batch)


class HFClipExtractor:
    """A transformers CLIPModel + CLIPProcessor from a local directory."""

    kind = "clip"

    def __init__(self, model, processor, id: str, methodology: str, batch_size: int = 64):
        self.model = model.eval()
        self.processor = processor
        self.id = id
        self.methodology = methodology
        self.batch_size = batch_size

    @staticmethod
    def _tensor(out) -> torch.Tensor:
        # transformers 5 returns an output object whose pooler_output is the projected embedding
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def embed_images(self, images: list) -> torch.Tensor:
        outs = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                px = self.processor(images=[im.convert("RGB") for im in images[s:s + self.batch_size]],
                                    return_tensors="pt")["pixel_values"]
                outs.append(self._tensor(self.model.get_image_features(pixel_values=px)).float())
        return torch.cat(outs) if outs else torch.zeros(0, 0)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        outs = []
        max_len = getattr(self.model.config.text_config, "max_position_embeddings", None)
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                t = self.processor(text=list(texts[s:s + self.batch_size]), return_tensors="pt", padding=True,
                                   truncation=True, max_length=max_len)
                out = self.model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
                outs.append(self._tensor(out).float())
        return torch.cat(outs) if outs else torch.zeros(0, 0)


def load_hf_clip(directory: str, batch_size: int = 64) -> HFClipExtractor:
    """``hf-clip:DIR`` or ``hf-clip:ORG/NAME[@REVISION]`` (Hugging Face cache; commit in the id)."""
    from transformers import CLIPModel, CLIPProcessor

    from t2i_audit.evals import hub

    snap = hub.resolve(directory, "hf-clip:") if hub.looks_like_hub_id(directory) else None
    d = snap.path if snap else Path(directory).expanduser()
    if not (d / "config.json").is_file():
        raise InputError(f"hf-clip:{directory}: no config.json there; give a folder written by "
                         "CLIPModel.save_pretrained (plus the processor's files)")
    if not any(d.glob("*.safetensors")):
        raise InputError(f"hf-clip:{directory}: no .safetensors weights there; pickle weights (pytorch_model.bin) are "
                         "never loaded, since unpickling can run code: save with save_pretrained(safe_serialization=True)")
    try:
        # safetensors only: a pytorch_model.bin (pickle) in the folder is never opened
        model = CLIPModel.from_pretrained(str(d), local_files_only=True, use_safetensors=True)
        processor = CLIPProcessor.from_pretrained(str(d), local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"hf-clip:{directory}: cannot load model and processor offline ({str(e)[:200]})") from e
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".safetensors", ".json", ".txt"))
    h = weights_hash(*files)
    ip = processor.image_processor
    label = snap.pinned if snap else d.name
    meth = (f"Hugging Face CLIP {label}, files sha256 {h}; preprocessing: {type(ip).__name__} "
            f"resize {getattr(ip, 'size', '?')} crop {getattr(ip, 'crop_size', '?')}")
    return HFClipExtractor(model, processor, f"hf-clip:{label}:{h}", meth, batch_size)


def _load_inception(path: str, batch_size: int = 64):
    from t2i_audit.evals.features.inception import load_inception

    return load_inception(path, batch_size=batch_size)


# kind -> (loader, number of ':'-separated arguments (min, max), usage)
REGISTRY: dict[str, tuple[Callable, tuple[int, int], str]] = {
    "bundled-clip": (lambda *a: load_bundled_clip(*a), (0, 1), "bundled-clip[:CHECKPOINT_DIR]"),
    "open_clip": (load_open_clip, (2, 2), "open_clip:ARCH_OR_CONFIG_JSON:WEIGHTS_FILE_OR_PRETRAINED_TAG"),
    "hf-clip": (load_hf_clip, (1, 1), "hf-clip:DIR_OR_ORG/NAME[@REVISION]"),
    "inception": (_load_inception, (1, 1), "inception:WEIGHTS_FILE"),
}

_LOADED: dict[str, FeatureExtractor] = {}


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """Split a ``--features`` spec into (kind, arguments), with a did-you-mean error."""
    if not spec or not spec.strip():
        raise InputError("--features: empty spec; use one of " + ", ".join(u for *_, u in REGISTRY.values()))
    kind, _, rest = spec.strip().partition(":")
    if kind not in REGISTRY:
        hint = did_you_mean(kind, list(REGISTRY), form="did you mean {}? ")
        raise InputError(f"--features {spec!r}: unknown extractor kind {kind!r}; {hint}"
                         f"expected one of: {', '.join(u for *_, u in REGISTRY.values())}")
    _, (lo, hi), usage = REGISTRY[kind]
    args = rest.split(":", hi - 1) if rest and hi > 0 else []
    if not lo <= len(args) <= hi:
        raise InputError(f"--features {spec!r}: expected {usage}")
    return kind, args


def load_extractor(spec: str) -> FeatureExtractor:
    """Load (once per process) the extractor a spec names."""
    kind, args = parse_spec(spec)
    key = f"{kind}:{':'.join(args)}"
    if key not in _LOADED:
        _LOADED[key] = REGISTRY[kind][0](*args)
    return _LOADED[key]
