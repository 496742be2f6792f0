"""Memorization audit: nearest training neighbours of generated images, near-copy detection.

Two spaces. *Pixel*: each image is box-downsampled to ``pixel_size``^2 RGB, mean-centred and
L2-normalised; training images are also indexed under small centre crops (each resized back),
so a generated image that copies a slightly cropped training image still matches; the score is
the best cosine over the training images and their crops. *CLIP*: cosine of normalised image
embeddings from any feature extractor (``embed_images``), reported beside the pixel neighbour.

Threshold. Calibrated on known duplicates made from the training set itself: positives are
exact, mildly noisy (Gaussian, ``noise_sigma``) and slightly cropped copies of ``n_calibration``
training images; negatives are the leave-one-out nearest-neighbour scores of other training
images (distinct images of the same distribution). The threshold is the (1 - target_fpr)
quantile of the negatives, moved half-way toward the 1st percentile of the positives when the
two are separated. Its recall and false-positive rate on the calibration sets are reported.
The near-copy rate carries a Wilson 95% interval.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image

from t2i_audit.core.config import ConfigBase
from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import clustered_rate_interval, interval_method
from t2i_audit.stats.resampling import wilson_interval


@dataclass
class MemorizationConfig(ConfigBase):
    pixel_size: int = 12
    crop_fractions: tuple[float, ...] = (0.03, 0.06, 0.09)
    space: str = "pixel"  # which score decides: pixel | clip
    target_fpr: float = 0.01
    n_calibration: int = 200
    noise_sigma: float = 0.03
    seed: int = 0
    top_k: int = 20
    batch: int = 1024


def _crop(im: Image.Image, frac: float) -> Image.Image:
    w, h = im.size
    cx, cy = max(1, round(w * frac)), max(1, round(h * frac))
    return im.crop((cx, cy, w - cx, h - cy)).resize((w, h), Image.BICUBIC)


def pixel_features(images, size: int = 12) -> np.ndarray:
    X = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BOX), dtype=np.float32)
                  for im in images]).reshape(len(images), -1) / 255.0
    X = X - X.mean(1, keepdims=True)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _normalise(x) -> np.ndarray:
    x = np.asarray(x.detach().cpu().float() if hasattr(x, "detach") else x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(query: np.ndarray, bank: np.ndarray, batch: int = 1024, exclude_self: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Best cosine of each query row against ``bank`` (M, D) or (T, M, D) (T views of M images):
    returns (scores, index of the best bank image)."""
    bank = bank[None] if bank.ndim == 2 else bank
    best = np.full(len(query), -np.inf, dtype=np.float32)
    arg = np.zeros(len(query), dtype=np.int64)
    for s in range(0, len(query), batch):
        q = query[s:s + batch]
        sims = np.max(np.einsum("nd,tmd->tnm", q, bank), axis=0)
        if exclude_self:
            idx = np.arange(s, s + len(q))
            sims[np.arange(len(q)), idx] = -np.inf
        arg[s:s + batch] = sims.argmax(1)
        best[s:s + batch] = sims.max(1)
    return best, arg


class PixelIndex:
    """Training images in pixel space, with their centre crops as extra views."""

    def __init__(self, images, cfg: MemorizationConfig):
        self.cfg = cfg
        views = [pixel_features(images, cfg.pixel_size)]
        for f in cfg.crop_fractions:
            views.append(pixel_features([_crop(im, f) for im in images], cfg.pixel_size))
        self.bank = np.stack(views)

    def query(self, images, exclude_self: bool = False):
        return nearest(pixel_features(images, self.cfg.pixel_size), self.bank, self.cfg.batch, exclude_self)


def make_copies(images, rng: np.random.Generator, kinds=("exact", "noise", "crop"), sigma: float = 0.03,
                crop_max: float = 0.06) -> tuple[list, list[str]]:
    """One planted copy of each image, cycling through ``kinds``: exact, Gaussian noise of std
    ``sigma`` (in [0, 1] units), or a centre crop of 1 px .. ``crop_max`` of the side, resized back."""
    out, kind = [], []
    for i, im in enumerate(images):
        k = kinds[i % len(kinds)]
        if k == "exact":
            c = im.copy()
        elif k == "noise":
            a = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
            a = a + rng.normal(0.0, sigma, a.shape)
            c = Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))
        elif k == "crop":
            w = im.size[0]
            px = int(rng.integers(1, max(1, round(w * crop_max)) + 1))
            c = _crop(im, px / w)
        else:
            raise ValueError(f"unknown copy kind {k!r}")
        out.append(c)
        kind.append(k)
    return out, kind


@dataclass
class Threshold:
    value: float
    recall: float
    fpr: float
    n_pos: int
    n_neg: int
    space: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def choose_threshold(pos: np.ndarray, neg: np.ndarray, target_fpr: float, space: str) -> Threshold:
    lo = float(np.quantile(neg, 1 - target_fpr))
    hi = float(np.quantile(pos, 0.01))
    t = (lo + hi) / 2 if hi > lo else lo
    t = float(np.nextafter(np.float32(t), np.float32(np.inf)))
    return Threshold(t, float(np.mean(pos >= t)), float(np.mean(neg >= t)), len(pos), len(neg), space)


def audit_memorization(generated, train, cfg: MemorizationConfig | None = None, extractor=None,
                       generated_ids=None, train_ids=None, progress: bool = False, generated_prompts=None):
    """Find near-copies of training images among ``generated``. Returns (pairs DataFrame: one row
    per generated image sorted by score, summary dict). ``generated_prompts``: the prompt of each
    generated image; the rate's interval then uses the effective n by prompt cluster (a prompt that
    copies tends to copy in all its images)."""
    import pandas as pd

    cfg = cfg or MemorizationConfig()
    if cfg.space not in ("pixel", "clip"):
        raise InputError(f"memorization space {cfg.space!r}: use pixel or clip")
    if cfg.space == "clip" and extractor is None:
        raise InputError("memorization --space clip needs an evaluator CLIP (--clip PATH or 'bundled')")
    if len(train) < 3 or len(generated) < 1:
        raise InputError(f"memorization needs >= 3 training images and >= 1 generated image "
                         f"(got {len(train)} and {len(generated)})")
    generated_ids = list(generated_ids) if generated_ids is not None else [str(i) for i in range(len(generated))]
    train_ids = list(train_ids) if train_ids is not None else [str(i) for i in range(len(train))]
    rng = np.random.default_rng(cfg.seed)
    index = PixelIndex(train, cfg)
    n_cal = min(cfg.n_calibration, len(train))
    cal_idx = rng.choice(len(train), n_cal, replace=False)
    copies, _ = make_copies([train[i] for i in cal_idx], rng, sigma=cfg.noise_sigma)
    neg_idx = rng.choice(len(train), min(cfg.n_calibration * 5, len(train)), replace=False)

    pix_s, pix_i = index.query(generated)
    pos_pix, _ = index.query(copies)
    # leave-one-out: each negative's own entry (and its crops) is excluded from its search
    neg_pix = _loo(index.bank[0][neg_idx], index.bank, neg_idx, cfg.batch)
    thresholds = {"pixel": choose_threshold(pos_pix, neg_pix, cfg.target_fpr, "pixel")}
    clip_s = clip_i = None
    if extractor is not None:
        tr = _embed(extractor, train, cfg.batch, progress)
        clip_s, clip_i = nearest(_embed(extractor, generated, cfg.batch, progress), tr[None], cfg.batch)
        pos_c = nearest(_embed(extractor, copies, cfg.batch, progress), tr[None], cfg.batch)[0]
        neg_c = _loo(tr[neg_idx], tr[None], neg_idx, cfg.batch)
        thresholds["clip"] = choose_threshold(pos_c, neg_c, cfg.target_fpr, "clip")
    score = pix_s if cfg.space == "pixel" else clip_s
    thr = thresholds[cfg.space]
    flagged = score >= thr.value
    rows = {"image_id": generated_ids, "pixel_score": pix_s, "pixel_train_id": [train_ids[i] for i in pix_i],
            "near_copy": flagged}
    if clip_s is not None:
        rows["clip_score"] = clip_s
        rows["clip_train_id"] = [train_ids[i] for i in clip_i]
    pairs = pd.DataFrame(rows).sort_values(f"{cfg.space}_score", ascending=False, kind="stable")
    k, n = int(flagged.sum()), len(generated)
    summary = {
        "schema": "t2i-audit/memorization/1", "n_generated": n, "n_train": len(train),
        "near_copies": k, "rate": k / n, **_rate_interval(flagged, generated_prompts, cfg.seed),
        "space": cfg.space, "threshold": thr.to_dict(),
        "thresholds": {s: t.to_dict() for s, t in thresholds.items()},
        "config": cfg.to_dict(),
        "methodology": __doc__.strip(),
    }
    return pairs.reset_index(drop=True), summary


def _rate_interval(flagged: np.ndarray, prompts, seed: int) -> dict:
    """The near-copy rate's 95% interval: effective-n Wilson by prompt cluster when the prompts are
    known (``stats.clusters.clustered_rate_interval``), else a Wilson interval over images."""
    k, n = int(flagged.sum()), len(flagged)
    if prompts is None:
        lo, hi = wilson_interval(k, n, nan_if_empty=True)
        return {"rate_ci_low": lo, "rate_ci_high": hi, "interval": "Wilson score 95% interval over "
                "generated images (prompts unknown: images treated as independent)"}
    if len(prompts) != n:
        raise InputError(f"memorization: {len(prompts)} prompts for {n} generated images")
    _, lo, hi, deff, n_eff, note = clustered_rate_interval(flagged, np.asarray(prompts).astype(str), seed=seed)
    return {"rate_ci_low": lo, "rate_ci_high": hi, "design_effect": deff, "n_eff": n_eff,
            "interval": note or f"95% {interval_method('prompts', 2000, seed)}; design effect {deff:.2f}, "
                                f"effective n {n_eff:.0f} of {n} images"}


def _loo(query: np.ndarray, bank: np.ndarray, self_idx: np.ndarray, batch: int) -> np.ndarray:
    """Nearest-neighbour score of training rows against the training bank, itself excluded."""
    out = np.empty(len(query), dtype=np.float32)
    for s in range(0, len(query), batch):
        sims = np.max(np.einsum("nd,tmd->tnm", query[s:s + batch], bank), axis=0)
        sims[np.arange(sims.shape[0]), self_idx[s:s + batch]] = -np.inf
        out[s:s + batch] = sims.max(1)
    return out


def _embed(extractor, images, batch: int, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    out = []
    for s in tqdm(range(0, len(images), batch), desc="clip embed", disable=not progress):
        out.append(_normalise(extractor.embed_images(list(images[s:s + batch]))))
    return np.concatenate(out)
