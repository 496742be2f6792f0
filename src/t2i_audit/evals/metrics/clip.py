"""CLIPScore (Hessel et al. 2021) per image, on any text-image extractor.

Reported value: 100 · max(cos(E_img, E_txt), 0), as torchmetrics' ``CLIPScore`` (its per-image
score is 100·cos and its ``compute()`` clamps at 0). Hessel et al. write CLIP-S = w · max(cos, 0)
with w = 2.5; multiply our value by 2.5/100 = 0.025 to get theirs.
"""

from __future__ import annotations

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.evals.metrics.distribution import check_features

SCALE = 100.0
HESSEL_W = 2.5
FORMULA = ("CLIPScore = 100·max(cos(E_image, E_text), 0) (torchmetrics' scale; Hessel et al. 2021 use "
           "w·max(cos, 0) with w = 2.5, i.e. 0.025 × this value)")


def cosine(image_emb, text_emb) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = check_features(image_emb, "image embeddings", min_n=1)
    b = check_features(text_emb, "text embeddings", min_n=1)
    if a.shape != b.shape:
        raise InputError(f"CLIPScore: {a.shape} image vs {b.shape} text embeddings; need one caption per image "
                         "from the same CLIP model")
    an, bn = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if (an == 0).any() or (bn == 0).any():
        raise InputError("CLIPScore: a zero embedding cannot be normalised; check the extractor")
    return (a * b).sum(1) / (an * bn)


def clip_score(image_emb, text_emb) -> np.ndarray:
    """Per-image CLIPScore, 100·max(cos, 0)."""
    return SCALE * np.clip(cosine(image_emb, text_emb), 0.0, None)
