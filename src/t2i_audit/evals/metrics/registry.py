"""The metrics `score` computes, by name (:data:`METRICS`): CLIPScore, the PictoWorld oracle's skills,
and the distribution metrics against a reference set (FD, FD∞, KID, CMMD), each giving per-image rows
and aggregate rows with 95% intervals. Each ``metric_*`` takes the scoring context
(:class:`t2i_audit.evals.scoring.score.Context`: the run, its cached embeddings and the reference set).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import t2i_audit.evals.metrics.distribution as md
from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.evals.metrics.clip import FORMULA as CLIP_FORMULA
from t2i_audit.evals.metrics.clip import clip_score
from t2i_audit.stats.resampling import (
    IntervalEstimate,
    centred_interval,
    cluster_bootstrap_mean,
    cluster_resample,
)

if TYPE_CHECKING:
    from t2i_audit.evals.scoring.score import Context


def _row(metric: str, group: str, e: IntervalEstimate) -> dict:
    return {"metric": metric, "group": group, "value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high,
            "n_prompts": e.n_clusters, "n_images": e.n, "method": e.method}


def _items(ctx: Context, metric: str, values, details=None, mask=None) -> pd.DataFrame:
    m = ctx.manifest if mask is None else ctx.manifest[mask]
    return pd.DataFrame({
        "run_id": str(ctx.info.get("run_id", ctx.root.name)), "prompt_id": m["prompt_id"].astype(str).values,
        "image_id": m["image_id"].astype(str).values, "seed": m["seed"].astype("int64").values,
        "category": m["category"].astype(str).values, "metric": metric,
        "value": np.asarray(values, dtype=np.float64),
        "detail": [""] * len(m) if details is None else list(details)})


def _by_category(ctx: Context, metric: str, values, mask=None) -> list[dict]:
    m = ctx.manifest if mask is None else ctx.manifest[mask]
    v = np.asarray(values, np.float64)
    rows = [_row(metric, "overall", cluster_bootstrap_mean(v, m["prompt_id"].values, reps=ctx.cfg.reps,
                                                           seed=ctx.cfg.seed))]
    cats = m["category"].astype(str).to_numpy()
    for c in sorted(set(cats)):
        sel = cats == c
        rows.append(_row(metric, f"category={c}", cluster_bootstrap_mean(
            v[sel], m["prompt_id"].values[sel], reps=ctx.cfg.reps, seed=ctx.cfg.seed)))
    return rows


def metric_clip_score(ctx: Context):
    img = ctx.image_features(ctx.cfg.clip, "clip")
    txt = ctx.text_features(ctx.cfg.clip, "clip")
    vals = ctx.timed("clip_score", lambda: clip_score(img, txt))
    ctx.methodology["clip_score"] = f"{CLIP_FORMULA}; evaluator {ctx.evaluators['clip']}"
    return _items(ctx, "clip_score", vals), _by_category(ctx, "clip_score", vals)


def metric_skills(ctx: Context):
    from t2i_audit.evals.metrics.skills import METHOD, judge_images, parse_expect, skill_accuracy

    expects = [parse_expect(v) for v in ctx.manifest["expect"]] if "expect" in ctx.manifest else []
    mask = np.array([e is not None for e in expects], dtype=bool)
    if not mask.any():
        raise InputError("skills: this run's prompts carry no expectations; score a suite with `expect:` "
                         "entries (e.g. pictoworld-skills) or drop 'skills' from --metrics")
    idx = np.flatnonzero(mask)
    res = ctx.timed("skills (oracle)", lambda: ctx.dist.gather_shards(len(idx), lambda part: judge_images(
        [ctx.image(idx[i]) for i in part], [expects[idx[i]] for i in part], ctx.cfg.progress and ctx.dist.is_main)))
    passed = np.array([p for p, _ in res], dtype=bool)
    sub = ctx.manifest[mask]
    est = skill_accuracy(sub["category"].astype(str).values, sub["prompt_id"].values, passed,
                         reps=ctx.cfg.reps, seed=ctx.cfg.seed)
    from t2i_audit.world.oracle import ORACLE_VERSION

    ctx.evaluators["oracle"] = f"pictoworld-oracle/{ORACLE_VERSION}"
    ctx.methodology["skills"] = METHOD
    rows = [_row("skills", g, e) for g, e in est.items()]
    return _items(ctx, "skills", passed.astype(float), [r for _, r in res], mask), rows


def _dist_metric(ctx: Context, name: str, spec: str, role: str, stat: Callable, boot_stat: Callable,
                 method: str):
    gen = ctx.image_features(spec, role)
    ref_feats, ref_m = ctx.reference_features(spec, role)
    reps, prompts = ctx.cfg.dist_reps, ctx.prompts

    def run():
        value = stat(gen, ref_feats, ref_m)
        boot = np.array([boot_stat(gen[ix], ref_feats, ref_m, r)
                         for r, ix in enumerate(cluster_resample(prompts, reps, ctx.cfg.seed))])
        return value, boot

    value, boot = ctx.timed(name, run)
    lo, hi = centred_interval(value, boot) if reps >= 2 else (math.nan, math.nan)
    full = (f"{method}; evaluator {ctx.evaluators[role]}; reference: {ctx.reference_info['description']} "
            f"(hash {ctx.reference_info['hash']}); 95% interval: percentile bootstrap over prompts of the generated "
            f"set, shifted to remove the resampling bias ({reps} reps, seed {ctx.cfg.seed}; reference fixed); "
            "it gives the sampling variability at this N, not an interval for the N → ∞ value")
    ctx.methodology[name] = full
    e = IntervalEstimate(float(value), float(max(lo, 0.0)) if name != "kid" else float(lo), float(hi),
                 len(set(prompts.tolist())), int(gen.shape[0]), full)
    return pd.DataFrame(columns=["run_id", "prompt_id", "image_id", "seed", "category", "metric", "value",
                                 "detail"]), [_row(name, "overall", e)]


def fd_to_reference(ref: md.GaussianMoments) -> Callable[[np.ndarray | md.GaussianMoments], float]:
    """``features -> FD(features, ref)`` (features, or their ``GaussianMoments``) for many sets
    against one fixed reference (the point estimate and the bootstrap replicates): the reference
    covariance's square root is taken once, and each call needs one symmetric eigenvalue problem,
    tr √(Σ_g Σ_r) = Σ √eig(Σ_r^½ Σ_g Σ_r^½). The same value as
    :func:`t2i_audit.evals.metrics.distribution.frechet_distance` up to float64 rounding."""
    mu_r, cov_r = ref.mean, ref.cov
    w, v = np.linalg.eigh((cov_r + cov_r.T) / 2)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_r = float(np.trace(cov_r))

    def fd(features) -> float:
        g = features if isinstance(features, md.GaussianMoments) else \
            md.GaussianMoments.of(md.check_features(features, "generated set"))
        if g.sum.shape != ref.sum.shape:
            raise InputError(f"feature dimensions differ ({g.sum.shape[0]} vs {ref.sum.shape[0]})")
        cov_g = g.cov
        m = root @ cov_g @ root
        tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
        d = g.mean - mu_r
        return float(d @ d + np.trace(cov_g) + tr_r - 2.0 * tr_sqrt)

    return fd


def metric_fd(ctx: Context):
    gm = ctx.image_moments(ctx.cfg.features, "features")
    memo: dict = {}

    def f(g, r, rm, *_):  # the point estimate and the replicates: one reference square root for all
        if memo.get("ref") is not rm:
            memo.update(ref=rm, fd=fd_to_reference(rm))
        return memo["fd"](g)

    point = lambda g, r, rm: f(gm, r, rm)  # noqa: E731 - from the moments summed across ranks
    return _dist_metric(ctx, "fd", ctx.cfg.features, "features", point, f,
                        "Fréchet distance (Heusel et al. 2017) on float64 moments")


def metric_fd_inf(ctx: Context):
    c = ctx.cfg
    f = lambda g, r, rm, k=0: md.fd_infinity(g, r, n_points=c.fd_inf_points, seed=c.seed + k).value  # noqa: E731
    return _dist_metric(ctx, "fd_inf", c.features, "features", f, f,
                        f"FD∞ (Chong & Forsyth 2020): linear fit of FD_N over 1/N at {c.fd_inf_points} subset sizes "
                        "from 20% to 100% of the generated set")


def metric_kid(ctx: Context):
    c = ctx.cfg

    def f(g, r, rm, k=None, subsets=c.kid_subsets):
        return md.kid(g, r, subsets=subsets, subset_size=c.kid_subset_size, seed=c.seed + (k or 0)).mean

    return _dist_metric(ctx, "kid", c.features, "features", f,
                        lambda g, r, rm, k: f(g, r, rm, k, max(10, c.kid_subsets // 10)),
                        f"KID (Bińkowski et al. 2018): unbiased MMD², cubic kernel γ=1/d, c=1; mean over "
                        f"{c.kid_subsets} subsets of min({c.kid_subset_size}, n) images")


def metric_cmmd(ctx: Context):
    f = lambda g, r, *_: md.cmmd(g, r)  # noqa: E731
    return _dist_metric(ctx, "cmmd", ctx.cfg.clip, "clip", f, f,
                        "CMMD (Jayasumana et al. 2024): MMD², Gaussian RBF σ=10 on L2-normalised CLIP embeddings, "
                        "×1000, google-research estimator (kernel means incl. diagonal)")


# name -> (function, description)
METRICS: dict[str, tuple[Callable, str]] = {
    "clip_score": (metric_clip_score, "CLIPScore per image, 100·max(cos, 0)"),
    "skills": (metric_skills, "PictoWorld oracle pass/fail per image; accuracy per category and overall"),
    "fd": (metric_fd, "Fréchet distance to the reference set (FID on Inception features)"),
    "fd_inf": (metric_fd_inf, "FD extrapolated to infinite N (Chong & Forsyth 2020)"),
    "kid": (metric_kid, "Kernel Inception Distance (unbiased MMD², cubic kernel)"),
    "cmmd": (metric_cmmd, "CLIP MMD, Gaussian RBF σ=10, ×1000"),
}


def parse_metrics(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not names:
        raise InputError("--metrics: empty; choose from " + ", ".join(METRICS))
    for n in names:
        if n not in METRICS:
            hint = did_you_mean(n, list(METRICS), form="did you mean {}? ")
            raise InputError(f"--metrics: unknown metric {n!r}; {hint}choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))
