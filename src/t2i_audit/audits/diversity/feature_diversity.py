"""Feature-space diversity for the diversity audit: per prompt group, precision / recall (Kynkäänniemi
et al. 2019), density / coverage (Naeem et al. 2020) against a reference set, and the Vendi score
(Friedman & Dieng 2023) overall and within prompts, beside the reference's own Vendi score.

Reference per group: on PictoWorld, renders of the group's profession drawn as training draws them
for a neutral caption ("a chef": presentation and skin from the bias spec, clothing, background and
jitter uniform) -- the distribution the prompt should produce. Real models: no reference is built
here; only the Vendi scores are reported. Metrics: ``stats.diversity_features`` (blocked k-NN,
cluster bootstrap over the run's prompts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from t2i_audit.audits.engine.reading_memo import memo_embed_images
from t2i_audit.stats.diversity_features import diversity_features, vendi_features
from t2i_audit.stats.vendi import vendi_score

STATS = ("precision", "recall", "density", "coverage", "vendi", "vendi_per_prompt")


def reference_renders(profession: str, n: int, seed: int = 4242) -> list:
    """``n`` PictoWorld renders of neutral scenes of ``profession`` (the training distribution)."""
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_scene, scene_rng

    spec = BiasSpec.load()
    return [render(sample_scene(scene_rng(seed, i), spec, kind="person", profession=profession, mode="neutral"))
            for i in range(n)]


def _embed(extractor, images: list) -> np.ndarray:
    return np.asarray(memo_embed_images(extractor, images), dtype=np.float64)


def feature_findings(images: pd.DataFrame, pil: list, extractor, domain: str, cfg) -> list[dict]:
    """Findings rows (attribute 'features') per group and for all images pooled."""
    from t2i_audit.world.vocab import PROFESSIONS

    fake = _embed(extractor, pil)
    groups = images["group"].to_numpy()
    prompts = images["prompt_id"].to_numpy()
    rows = []
    ref_all = []
    for g in sorted(set(groups)):
        m = groups == g
        real = None
        if domain == "pictoworld" and g in PROFESSIONS:
            real = _embed(extractor, reference_renders(g, max(int(m.sum()), cfg.reference_min)))
            ref_all.append(real)
        rows += _rows(g, fake[m], prompts[m], real, extractor, cfg)
    real = np.concatenate(ref_all) if ref_all else None
    rows += _rows("all", fake, prompts, real, extractor, cfg)
    return rows


def _rows(group: str, fake: np.ndarray, prompts: np.ndarray, real, extractor, cfg) -> list[dict]:
    if real is not None and len(real) > cfg.k_dc and len(fake) > cfg.k_dc:
        est = diversity_features(real, fake, prompts, reps=cfg.bootstrap, seed=cfg.seed)
    else:
        est = vendi_features(fake, prompts, reps=cfg.bootstrap, seed=cfg.seed)
    base = {"attribute": "features", "group": group, "probe": getattr(extractor, "id", "features"),
            "n": int(len(fake)), "n_prompts": int(len(set(prompts))), "flagged": False}
    out = [{**base, "statistic": name, "value": e.value, "ci_low": e.lo, "ci_high": e.hi, "detail": e.method}
           for name, e in est.items()]
    if real is not None:
        out.append({**base, "statistic": "vendi_reference", "value": float(vendi_score(real)), "ci_low": np.nan,
                    "ci_high": np.nan, "detail": f"Vendi of {len(real)} reference renders (training distribution)"})
    return out
