"""Skill accuracy: does each image show what its prompt asked for, read by the PictoWorld oracle.

Each image whose prompt carries an expectation (manifest ``expect``) is read from its pixels by
``world.oracle.read_image`` and judged by ``world.expect.judge`` → (passed, reason). An image the
oracle cannot read (it abstains) fails, with the abstention as its reason, so abstention can only
lower accuracy, never hide failures.

Accuracy per category is the share of passed images with a cluster-bootstrap interval over
prompts; overall = unweighted mean of the category accuracies (as GenEval reports it), with a
stratified bootstrap (prompts resampled within each category).
"""

from __future__ import annotations

import json

import numpy as np

from t2i_audit.errors import InputError
from t2i_audit.stats.resampling import (
    DEFAULT_REPS,
    LEVEL,
    IntervalEstimate,
    cluster_bootstrap_draws,
    percentile_interval,
)

METHOD = ("skill accuracy: PictoWorld oracle reading judged against the prompt's expectation; an "
          "abstention fails the image; overall = mean of category accuracies (GenEval)")


def parse_expect(value) -> dict | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, dict):
        return value
    try:
        d = json.loads(value)
    except (TypeError, json.JSONDecodeError) as e:
        raise InputError(f"manifest expect: not valid JSON ({str(value)[:80]!r})") from e
    return d or None


def judge_images(images: list, expects: list[dict], progress: bool = False) -> list[tuple[bool, str]]:
    """(passed, reason) for each image against its expectation."""
    from tqdm import tqdm

    from t2i_audit.world.expect import judge
    from t2i_audit.world.oracle import read_image

    out = []
    for im, ex in tqdm(list(zip(images, expects)), desc="oracle", unit="img", disable=not progress):
        passed, reason = judge(read_image(im), ex)
        out.append((bool(passed), str(reason)))
    return out


def skill_accuracy(categories, prompt_ids, passed, *, reps: int = DEFAULT_REPS, seed: int = 0,
                   level: float = LEVEL) -> dict[str, IntervalEstimate]:
    """Per-category accuracy and the overall mean of categories, each with a 95% interval."""
    cats = np.asarray(categories, dtype=object)
    pids = np.asarray(prompt_ids, dtype=object)
    ok = np.asarray(passed, dtype=bool)
    if ok.size == 0:
        raise InputError("skills: no images with expectations in this run; score a suite with `expect:` "
                         "entries (e.g. pictoworld-skills)")
    out: dict[str, IntervalEstimate] = {}
    boots = []
    for i, c in enumerate(sorted(set(cats.tolist()))):
        m = cats == c
        value, boot, k, n = cluster_bootstrap_draws(ok[m].astype(float), pids[m], reps=reps, seed=seed + i)
        if boot.size:
            lo, hi = percentile_interval(boot, level)
            meth = (f"proportion; {int(level * 100)}% percentile cluster bootstrap over prompts, {reps} reps, "
                    f"seed {seed + i}")
        else:
            lo = hi = float("nan")
            meth = "proportion; no interval (fewer than 2 prompts)"
        out[f"category={c}"] = IntervalEstimate(value, lo, hi, k, n, meth)
        boots.append(boot)  # kept for the stratified overall interval
    vals = np.array([e.value for e in out.values()])
    overall = float(vals.mean())
    n_prompts = len(set(pids.tolist()))
    if all(e.n_clusters >= 2 for e in out.values()):
        lo, hi = percentile_interval(np.mean(boots, axis=0), level)
        meth = (f"mean of {len(vals)} category accuracies; {int(level * 100)}% percentile bootstrap, prompts "
                f"resampled within category, {reps} reps, seed {seed}")
    else:
        lo = hi = float("nan")
        meth = f"mean of {len(vals)} category accuracies; no interval (a category has fewer than 2 prompts)"
    out["overall"] = IntervalEstimate(overall, lo, hi, n_prompts, int(ok.size), meth)
    return out
