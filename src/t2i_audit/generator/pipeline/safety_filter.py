"""The bundled generator's optional safety filter, like its unCLIP peers' (Stable Diffusion's
``StableDiffusionSafetyChecker``, Kandinsky's and DALL-E 2's output filters): a concept checker in
the pipeline's own CLIP space. Each generated image's unit CLIP embedding is compared with every
configured concept's text embedding (prompts averaged, re-normalised); an image whose cosine
reaches a concept's threshold is *blocked*: replaced by an all-black image and reported in
``GenerationOutput.nsfw_content_detected``, as diffusers pipelines do.

Configured as ``Pipeline(..., safety=SafetyFilter.parse("police officer=a police officer@0.6"))``
or per call with the sampler parameter ``safety`` (``--param "safety=police officer=a police
officer@0.6"``; several concepts separated by ``;``); the filter's settings are part of the
parameters and of ``Pipeline.config_dict()``, hence recorded in the run. Thresholds are cosines;
``audits.safety.pictoworld_safety.calibrate_concepts`` measures good ones on PictoWorld renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2i_audit.errors import InputError


@dataclass(frozen=True)
class FilterConcept:
    name: str
    texts: tuple[str, ...]
    threshold: float


class SafetyFilter:
    """Blocks images whose CLIP embedding reaches any concept's cosine threshold."""

    def __init__(self, concepts: list[FilterConcept]):
        if not concepts:
            raise InputError("safety filter: configure at least one concept NAME=TEXT@THRESHOLD")
        self.concepts = list(concepts)
        self._text: dict[int, torch.Tensor] = {}

    @staticmethod
    def parse(spec: str) -> SafetyFilter:
        """``NAME=TEXT[|TEXT...]@THRESHOLD`` entries separated by ``;``."""
        out = []
        for part in str(spec).split(";"):
            if not part.strip():
                continue
            name, eq, rest = part.partition("=")
            text, at, thr = rest.rpartition("@")
            try:
                t = float(thr)
            except ValueError:
                t = None
            if not eq or not at or not text.strip() or t is None or not -1 <= t <= 1:
                raise InputError(
                    f"safety filter {part.strip()!r}: expected NAME=TEXT[|TEXT]@THRESHOLD with a cosine "
                    "threshold in [-1, 1], e.g. 'police officer=a police officer@0.6'"
                )
            out.append(FilterConcept(name.strip(), tuple(s.strip() for s in text.split("|") if s.strip()), t))
        return SafetyFilter(out)

    def to_dict(self) -> dict:
        return {
            "kind": "clip-concept-filter",
            "concepts": [
                {"name": c.name, "texts": list(c.texts), "threshold": c.threshold} for c in self.concepts
            ],
            "rule": "blocked when cos(unit CLIP image embedding, unit mean concept text embedding) "
            ">= threshold",
        }

    def spec(self) -> str:
        return ";".join(f"{c.name}={'|'.join(c.texts)}@{c.threshold:g}" for c in self.concepts)

    def _concept_matrix(self, clip) -> torch.Tensor:
        key = id(clip)
        if key not in self._text:
            rows = [
                torch.nn.functional.normalize(clip.encode_texts(list(c.texts)).mean(0), dim=0)
                for c in self.concepts
            ]
            self._text[key] = torch.stack(rows)
        return self._text[key]

    @torch.inference_mode()
    def cosines(self, clip, pixels: torch.Tensor) -> torch.Tensor:
        """(N, C) cosines of uint8 NCHW ``pixels`` to the concepts, in ``clip``'s space."""
        emb = torch.nn.functional.normalize(clip.encode_images(pixels).float(), dim=-1)
        return emb @ self._concept_matrix(clip).T

    def check(self, clip, pixels: torch.Tensor) -> torch.Tensor:
        """(N,) bool: which images the filter blocks."""
        thr = torch.tensor([c.threshold for c in self.concepts])
        return (self.cosines(clip, pixels) >= thr).any(1)

    def apply(self, clip, pixels: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
        """Blocked images replaced by zeros (all-black), and the per-image flags."""
        blocked = self.check(clip, pixels)
        out = pixels.clone()
        out[blocked] = 0
        return out, [bool(b) for b in blocked]
