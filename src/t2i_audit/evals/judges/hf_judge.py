"""``hf:DIR`` or ``hf:ORG/NAME[@REV]``: a local transformers vision-language model as a judge.

Loaded with ``AutoProcessor`` and ``AutoModelForImageTextToText`` from a folder or from the Hugging
Face cache (``evals.hub``: offline first; safetensors only, pickles are refused and never opened).
Each question goes through the processor's chat template (one image, the prompt of
``yesno.render_prompt``, the generation prompt added); requests are batched with left padding and
P(yes) comes from the distribution of the first generated token (the last position's logits):
every vocabulary token whose surface form is yes (``yes``, ``Yes``, ``▁Yes``, ``Ġyes`` ...) is
summed, likewise no, then normalised as ``normalisation`` says (``yesno``). The answer text is the
most likely first token. ``revision``: the hub commit, or for a folder the sha256 of its config and
of each safetensors file's header and size (cheap, and it changes when the weights do).

Options: ``batch_size`` (8), ``device`` (``auto``: cuda when available), ``dtype`` (``float32``;
``bfloat16``/``float16`` on GPUs), ``normalisation``, ``prompt_template``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

from t2i_audit.core.images import open_image
from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.evals.judges.base import JudgeAnswer, JudgeRequest
from t2i_audit.evals.judges.yesno import (
    PROMPT_TEMPLATE,
    YES_NO_SUFFIX,
    check_normalisation,
    render_prompt,
    surface,
)

OPTIONS = {"batch_size": 8, "device": "auto", "dtype": "float32", "normalisation": "yes_vs_no",
           "prompt_template": PROMPT_TEMPLATE}


def folder_revision(folder: Path) -> str:
    """sha256 over config.json and every safetensors file's name, size and header (module doc)."""
    h = hashlib.sha256()
    cfg = folder / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for p in sorted(folder.rglob("*.safetensors")):
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = f.read(min(n, 100_000_000))
        h.update(p.relative_to(folder).as_posix().encode() + str(p.stat().st_size).encode() + header)
    return "sha256:" + h.hexdigest()[:16]


def resolve_folder(spec: str) -> tuple[Path, str]:
    from t2i_audit.evals import hub

    target = spec.partition(":")[2].strip()
    if not target:
        raise InputError(f"judge {spec!r}: write hf:DIR or hf:ORG/NAME[@REVISION]")
    local = Path(target).expanduser()
    if local.is_dir():
        folder, revision = local, None
    elif hub.looks_like_hub_id(target):
        snap = hub.resolve(target, "hf:")
        folder, revision = snap.path, snap.commit
    else:
        raise InputError(f"judge {spec!r}: no such folder, and not a hub id (ORG/NAME[@REVISION])")
    hub.require_safetensors(folder, spec)
    if not any(folder.rglob("*.safetensors")):
        raise InputError(f"judge {spec!r}: no .safetensors weights in {folder}; only safetensors are loaded")
    return folder, revision or folder_revision(folder)


class HFJudge:
    """A transformers image-text-to-text model answering yes/no (see the module doc)."""

    wants_soft = True

    def __init__(self, spec: str, folder: Path, revision: str, opts: dict):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.spec, self.revision, self.folder = spec, revision, folder
        self.normalisation = opts["normalisation"]
        self.batch_size = int(opts["batch_size"])
        self.template = opts["prompt_template"]
        self.prompt_template = self.template + "|suffix:" + YES_NO_SUFFIX + "|chat_template"
        self.decoding = {"first_token": "logits", "dtype": opts["dtype"]}
        dev = opts["device"]
        self.device = torch.device("cuda" if dev == "auto" and torch.cuda.is_available() else
                                   "cpu" if dev == "auto" else dev)
        dtype = getattr(torch, str(opts["dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            raise InputError(f"judge {spec!r}: dtype {opts['dtype']!r} is not a torch dtype (float32, bfloat16, "
                             "float16)")
        try:
            self.processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(
                str(folder), use_safetensors=True, local_files_only=True, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"judge {spec!r}: cannot load an image-text-to-text model from {folder} "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
        tok = getattr(self.processor, "tokenizer", None)
        if tok is None or not getattr(self.processor, "chat_template", None):
            raise InputError(f"judge {spec!r}: the processor in {folder} has no tokenizer or no chat template")
        tok.padding_side = "left"
        self.tokenizer = tok
        vocab = tok.get_vocab()
        self.yes_ids = sorted(i for t, i in vocab.items() if surface(t) == "yes")
        self.no_ids = sorted(i for t, i in vocab.items() if surface(t) == "no")
        if not self.yes_ids:
            raise InputError(f"judge {spec!r}: the tokenizer has no 'yes' token, so P(yes) cannot be read")

    def _texts(self, requests: Sequence[JudgeRequest]) -> list[str]:
        return [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"},
                                          {"type": "text", "text": render_prompt(r.question, self.template)}]}],
            add_generation_prompt=True, tokenize=False) for r in requests]

    def _batch(self, requests: Sequence[JudgeRequest], images: dict) -> list[JudgeAnswer]:
        import torch

        enc = self.processor(images=[images[r.image_sha256] for r in requests], text=self._texts(requests),
                             return_tensors="pt", padding=True)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            lp = self.model(**enc).logits[:, -1].float().log_softmax(-1).cpu()
        py = lp[:, self.yes_ids].exp().sum(-1).tolist()
        pn = lp[:, self.no_ids].exp().sum(-1).tolist() if self.no_ids else [0.0] * len(py)
        top = self.tokenizer.convert_ids_to_tokens(lp.argmax(-1).tolist())
        out = []
        for y, n, t in zip(py, pn, top):
            p = min(1.0, y) if self.normalisation == "vqascore" else (y / (y + n) if y + n > 0 else math.nan)
            out.append(JudgeAnswer(float(p), surface(t) or t, True))
        return out

    def answer(self, requests: Sequence[JudgeRequest]) -> list[JudgeAnswer]:

        requests = list(requests)
        images = {}
        for r in requests:
            if r.image_sha256 not in images:
                try:
                    with open_image(r.image_path) as im:
                        images[r.image_sha256] = im.convert("RGB")
                except OSError as e:
                    raise InputError(f"{r.image_path}: cannot read the image ({e})") from None
        out: list[JudgeAnswer] = []
        for i in range(0, len(requests), self.batch_size):
            out += self._batch(requests[i:i + self.batch_size], images)
        return out


def make_hf_judge(spec: str, options: dict) -> HFJudge:
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise InputError(f"judge {spec!r}: unknown option {bad[0]!r}{did_you_mean(bad[0], OPTIONS)}; options: "
                         f"{', '.join(OPTIONS)}")
    opts = {**OPTIONS, **options}
    check_normalisation(opts["normalisation"], f"judge {spec!r}")
    if int(opts["batch_size"]) < 1:
        raise InputError(f"judge {spec!r}: batch_size must be >= 1")
    folder, revision = resolve_folder(spec)
    return HFJudge(spec, folder, revision, opts)
