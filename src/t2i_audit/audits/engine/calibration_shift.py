"""Does a probe's calibration set look like the audited images? (``stats.shift`` on the probe's own
evaluator embeddings and its margins.) Written into the audit's JSON as ``calibration_shift``.

Strata: the prompt group (where the calibration images have one, e.g. PictoWorld's profession) times
the probe's reading, so a change of class shares alone -- which a confusion matrix survives -- is not
flagged; a change of how images of one reading look, or of how sure the probe is, is.
"""

from __future__ import annotations

import numpy as np

from t2i_audit.stats.shift import MIN_SAMPLES, detect_shift


def _strata(groups, readings: np.ndarray, names: dict[str, int]) -> np.ndarray:
    g = np.array([names.setdefault(str(x), len(names)) for x in groups]) if groups is not None else 0
    return np.asarray(g) * 1000 + (np.asarray(readings) + 10)


def calibration_shift(probes, cal_images: list, cal_groups, run_images: list, run_groups, seed: int = 0,
                      alpha: float = 0.05, run_prompts=None) -> list[dict]:
    """One record per probe: ``{probe, detected, statistic, p_value, n_calib, n_run, tests}``; probes
    without embeddings (oracle, callables) get ``detected: None`` and a note. ``run_prompts``: the
    prompt of each run image; the permutations then move a prompt's images together (its images are
    correlated; the calibration images count as independent)."""
    out = []
    for p in probes:
        if not (hasattr(p, "embed") and hasattr(p, "classify_embeddings")):
            out.append({"probe": p.name, "detected": None, "note": "not tested: the probe has no evaluator "
                        "embeddings (oracle or callable); its calibration is assumed, not checked"})
            continue
        # probes sharing a CLIP share its embeddings, memoised by image content (engine.memo)
        ec, er = p.embed(cal_images), p.embed(run_images)
        oc, orun = p.classify_embeddings(ec), p.classify_embeddings(er)
        names: dict[str, int] = {}
        both = cal_groups is not None and run_groups is not None
        sc = _strata(cal_groups if both else None, oc.labels, names)
        sr = _strata(run_groups if both else None, orun.labels, names)
        if min(len(ec), len(er)) < MIN_SAMPLES:
            out.append({"probe": p.name, "detected": None, "n_calib": len(ec), "n_run": len(er),
                        "note": f"not tested: fewer than {MIN_SAMPLES} images on one side"})
            continue
        res = detect_shift(np.asarray(ec), np.asarray(er), oc.margins, orun.margins, alpha=alpha, seed=seed,
                           calib_strata=sc, run_strata=sr, run_clusters=run_prompts)
        out.append(res.record(p.name))
    return out


def shift_warnings(records: list[dict]) -> list[str]:
    return [f"calibration shift for probe {r['probe']}: the calibration images differ from the audited ones "
            f"(p = {r['p_value']:.2g}, n = {r['n_calib']} vs {r['n_run']}); the clean-calibrated 'corrected' "
            "shares are not trustworthy -- label a subset of the audited images (t2i-audit label RUN) and pass "
            "--labels" for r in records if r.get("detected")]
