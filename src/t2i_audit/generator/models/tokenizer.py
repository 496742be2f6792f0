"""Compact CLIP-BPE tokenizer.

Text is split with the CLIP BPE that open_clip ships (works offline); the 49,408 BPE ids are then
mapped onto a compact vocabulary: the ids that the PictoWorld caption grammar uses, plus one
unknown-token row for every other id. That keeps the embedding table tiny (a full 49,408-row table
at width 128 would be 12.6 MB in fp16 alone) while any text still tokenizes.

Layout of the compact ids: 0 = padding, 1 = unknown, 2.. = known BPE ids, V-2 = start of text,
V-1 = end of text. End of text is the largest id so that open_clip's ``argmax`` pooling finds it.
Prompts longer than ``context_length`` are truncated (end-of-text kept) and the truncation is
counted and reported, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from t2i_audit.core.config import ConfigBase

PAD, UNK = 0, 1


def _bpe():
    from open_clip.tokenizer import SimpleTokenizer

    global _BPE_SINGLETON
    try:
        return _BPE_SINGLETON
    except NameError:
        _BPE_SINGLETON = SimpleTokenizer()
        return _BPE_SINGLETON


@dataclass
class TokenizerConfig(ConfigBase):
    context_length: int = 32
    bpe_ids: list[int] = field(default_factory=list)  # known BPE ids, in compact order

    JSON_SORT_KEYS = False  # tokenizer.json keeps its historical key order (checkpoint bytes)


class CompactTokenizer:
    def __init__(self, config: TokenizerConfig):
        self.config = config
        self.context_length = config.context_length
        self.vocab_size = len(config.bpe_ids) + 4
        self.sot = self.vocab_size - 2
        self.eot = self.vocab_size - 1
        self._map = {b: i + 2 for i, b in enumerate(config.bpe_ids)}
        self.truncated = 0  # prompts truncated so far (reported by callers)
        self.unknown = 0  # BPE tokens mapped to the unknown row so far

    @staticmethod
    def build(texts, context_length: int = 32) -> CompactTokenizer:
        """Build the compact vocabulary from every BPE id used by ``texts``."""
        bpe = _bpe()
        ids = sorted({t for text in texts for t in bpe.encode(text)})
        return CompactTokenizer(TokenizerConfig(context_length=context_length, bpe_ids=ids))

    def encode(self, text: str) -> list[int]:
        ids = [self._map.get(t, UNK) for t in _bpe().encode(text)]
        self.unknown += sum(1 for i in ids if i == UNK)
        return ids

    def __call__(self, texts: list[str] | str) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            if len(ids) > self.context_length - 2:
                ids = ids[: self.context_length - 2]
                self.truncated += 1
            seq = [self.sot, *ids, self.eot]
            out[row, : len(seq)] = torch.tensor(seq)
        return out

    def methodology(self) -> str:
        return (f"CLIP BPE (open_clip) mapped to a {self.vocab_size}-id compact vocabulary; "
                f"unknown BPE ids share one row; prompts truncated to {self.context_length} tokens "
                "including start/end of text")


def world_vocabulary_texts() -> list[str]:
    """Every word the PictoWorld grammar can produce (train and held-out frames), plus a few
    neighbours, so that the compact vocabulary covers all world captions."""
    from t2i_audit.world.captions import HELD_OUT_FRAMES, POSITION_PHRASE, TRAIN_FRAMES
    from t2i_audit.world.scene import RELATIONS
    from t2i_audit.world.vocab import COLORS, NUMBER_WORDS, PRESENTATIONS, PROFESSIONS, SHAPES, SKINS

    words = [*COLORS, *SHAPES, *(s + "s" for s in SHAPES), *PRESENTATIONS, *PROFESSIONS, *SKINS,
             *NUMBER_WORDS, *POSITION_PHRASE.values(), *RELATIONS, "a", "an", "and", "with", "skin",
             ",", "male", "female", "person", "people", "photo", "picture", "image", "drawing"]
    frames = [f.format(x="a red circle") for f in (*TRAIN_FRAMES, *HELD_OUT_FRAMES)]
    return words + frames
