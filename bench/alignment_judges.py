"""Label-calibrated alignment recovers the oracle's truth, per skill, with honest intervals.

PictoWorld skill suite (``pictoworld-skills``): for every prompt, IMAGES renders drawn for its
expectation with planted generator errors (each stated field wrong with probability 0.25), degraded
like generation (blur 0.5 + noise 0.03; ``evals.alignment.synth``); its scene-graph questions
(``evals.alignment.questions``). Truth of every (image, question) pair: the PictoWorld oracle
(pairs it cannot read are 'unsure' and leave the estimand: the share of right pairs among readable
ones). Judges: ``bundled`` (the bundled CLIP zero-shot, ``evals.alignment.bundled_judge``) and
``planted`` (the same judge with left/right swapped on 20% of relation questions and "yes" to 10% of
the count questions whose count is wrong).

Judge answers, oracle truth and labels are computed once on the pool; each of REPEATS simulated runs
draws the suite's prompts with replacement (each draw a cluster, all its images), labels 150 random
pairs per skill with the oracle and estimates each skill's share of right pairs: raw (the judge) and
label-calibrated (PPI++ per skill, ``evals.alignment.calibrate``, with the judge's soft P(right) as
the prediction, as ``align`` does for a soft judge; ``--prediction hard`` for the hard answer; 95%
cluster-bootstrap interval).
MAE is against the run's oracle truth; coverage is of the pool's truth (the estimand: prompts as a
sample of the ways to ask). Nothing is tuned here: the judge's temperature is its CLIP's logit scale.

    python bench/alignment_judges.py            # PASS: mean per-skill MAE <= 2 pp, coverage 0.90-0.98
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import numpy as np  # noqa: E402

from t2i_audit.evals.alignment.calibrate import ppi_right_share  # noqa: E402
from t2i_audit.evals.alignment.questions import questions_from_suite  # noqa: E402
from t2i_audit.evals.alignment.synth import DEGRADE, draw  # noqa: E402
from t2i_audit.evals.suites.loader import load_suite  # noqa: E402
from t2i_audit.stats.resampling import cluster_bootstrap_proportion, wilson_interval  # noqa: E402


def _u(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def build_pool(images: int, seed: int, tmp: Path):
    """Requests, question skills, prompt ids, expected answers for every pool pair."""
    from t2i_audit.evals.judges.base import JudgeRequest

    suite = load_suite("pictoworld-skills")
    by_prompt: dict[str, list] = {}
    for q in questions_from_suite(suite):
        by_prompt.setdefault(q.prompt_id, []).append(q)
    reqs, qs, pids = [], [], []
    for k, p in enumerate(suite.select()):
        for s in range(images):
            path = tmp / f"{k}-{s}.png"
            draw(p.expect, seed * 1_000_003 + k * 101 + s, 0.25, DEGRADE).save(path)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            for q in by_prompt[p.prompt_id]:
                reqs.append(JudgeRequest(path, sha, q.text, q.spec))
                qs.append(q)
                pids.append(p.prompt_id)
    return reqs, qs, np.array(pids)


def planted_answers(judge, reqs, qs, p_yes: np.ndarray, truth_yes: np.ndarray) -> np.ndarray:
    """The bundled judge with planted errors (see the module doc); deterministic per pair."""
    from t2i_audit.evals.judges.base import JudgeRequest

    p = p_yes.copy()
    swap = {"left of": "right of", "right of": "left of"}
    idx = [i for i, q in enumerate(qs) if q.skill == "relation" and q.spec["check"]["relation"]["rel"] in swap
           and _u(f"rel|{reqs[i].image_sha256}|{q.question_id}") < 0.2]
    sw = []
    for i in idx:
        s = reqs[i].spec
        ctx = {**s["context"], "relation": {**s["context"]["relation"], "rel": swap[s["context"]["relation"]["rel"]]}}
        sw.append(JudgeRequest(reqs[i].image_path, reqs[i].image_sha256, reqs[i].question, {**s, "context": ctx}))
    for i, a in zip(idx, judge.answer(sw)):
        p[i] = a.p_yes
    for i, q in enumerate(qs):
        if q.skill == "count" and not truth_yes[i] and _u(f"cnt|{reqs[i].image_sha256}|{q.question_id}") < 0.1:
            p[i] = 0.95
    return p, len(idx)


def simulate(pred_wrong, f_right, truth, skills, pids, args, rng):
    """Per skill: lists of raw/calibrated errors, coverage and widths over the repeats."""
    uniq, code = np.unique(pids, return_inverse=True)
    rows_of = [np.flatnonzero(code == c) for c in range(len(uniq))]
    readable = truth >= 0
    pop = {s: 1 - truth[(skills == s) & readable].mean() for s in np.unique(skills)}
    res = {s: {k: [] for k in ("raw", "cal", "cov", "width", "raw_cov")} for s in pop}
    for r in range(args.repeats):
        draws = rng.integers(0, len(uniq), len(uniq))
        rows = np.concatenate([rows_of[d] for d in draws])
        clus = np.concatenate([np.full(len(rows_of[d]), j) for j, d in enumerate(draws)])
        for s in pop:
            m = skills[rows] == s
            rr, cc = rows[m], clus[m]
            lab = np.full(len(rr), -9)
            pick = rng.choice(len(rr), min(args.labels, len(rr)), replace=False)
            lab[pick] = truth[rr][pick]
            est = ppi_right_share(pred_wrong[rr], lab, cc, args.bootstrap, int(rng.integers(2**31)),
                                  f_right[rr] if args.prediction == "soft" else None)
            t_run = 1 - truth[rr][readable[rr]].mean()
            raw = cluster_bootstrap_proportion(pred_wrong[rr] == 0, cc, reps=args.bootstrap, seed=r)
            d = res[s]
            d["raw"].append(abs(raw.value - t_run))
            d["raw_cov"].append(raw.ci_low <= pop[s] <= raw.ci_high)
            d["cal"].append(abs(est["value"] - t_run))
            d["cov"].append(est["ci_low"] <= pop[s] <= est["ci_high"])
            d["width"].append(est["ci_high"] - est["ci_low"])
    return res, pop


def report(name: str, res: dict, pop: dict, acc: dict) -> tuple[float, float]:
    print(f"\njudge {name}: per skill, {len(next(iter(res.values()))['cal'])} repeats")
    print(f"{'skill':<18}{'truth':>7}{'judge acc':>10}{'MAE raw':>9}{'MAE cal':>9}{'cov raw':>9}{'cov cal':>9}{'CI width':>9}")
    maes, covs = [], []
    for s, d in res.items():
        maes.append(np.mean(d["cal"]))
        covs += d["cov"]
        print(f"{s:<18}{pop[s]:>7.3f}{acc[s]:>10.3f}{100 * np.mean(d['raw']):>7.2f}pp{100 * maes[-1]:>7.2f}pp"
              f"{np.mean(d['raw_cov']):>9.3f}{np.mean(d['cov']):>9.3f}{np.mean(d['width']):>9.3f}")
    return 100 * float(np.mean(maes)), float(np.mean(covs))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--images", type=int, default=4, help="renders per prompt in the pool")
    ap.add_argument("--labels", type=int, default=150, help="labelled pairs per skill per run")
    ap.add_argument("--bootstrap", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prediction", choices=("soft", "hard"), default="soft",
                    help="PPI++ prediction: the judge's soft P(right) (what align uses for a soft judge) or its "
                         "hard answer (what it uses for a text-only judge)")
    args = ap.parse_args()
    from t2i_audit.core.threads import set_threads
    from t2i_audit.evals.alignment.bundled_judge import make_bundled_judge
    from t2i_audit.evals.alignment.oracle_judge import oracle_verdicts

    set_threads(args.threads)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        reqs, qs, pids = build_pool(args.images, args.seed, Path(tmp))
        verdicts = oracle_verdicts(reqs)
        truth_yes = np.array([v[0] for v in verdicts])
        unsure = np.array([v[1] for v in verdicts])
        judge = make_bundled_judge("bundled", {})
        p_bundled = np.array([a.p_yes for a in judge.answer(reqs)])
        p_planted, n_swapped = planted_answers(judge, reqs, qs, p_bundled, truth_yes)
    t_pool = time.time() - t0
    skills = np.array([q.skill for q in qs])
    expect_yes = np.array([q.answer == "yes" for q in qs])
    right = truth_yes == expect_yes
    truth = np.where(unsure, -1, np.where(right, 0, 1))
    print(f"pool: pictoworld-skills, {len(set(pids))} prompts x {args.images} renders (planted errors 0.25, "
          f"{DEGRADE}), {len(qs)} (image, question) pairs, oracle unsure on {int(unsure.sum())}; "
          f"{args.labels} oracle labels per skill per run; bootstrap {args.bootstrap}; PPI++ prediction: "
          f"{args.prediction}; built in {t_pool:.0f}s")
    print(f"planted judge: {n_swapped} relation answers with left/right swapped, 'yes' (0.95) to 10% of wrong counts")
    rng = np.random.default_rng(args.seed)
    ok = True
    for name, p in (("bundled", p_bundled), ("planted", p_planted)):
        f_right = np.where(expect_yes, p, 1 - p)
        pred_wrong = (f_right < 0.5).astype(int)
        acc = {}
        for s in np.unique(skills):
            m = (skills == s) & (truth >= 0)
            k, n = int((pred_wrong[m] == truth[m]).sum()), int(m.sum())
            lo, hi = wilson_interval(k, n)
            acc[s] = k / n
            print(f"  {name} judge accuracy on the pool, {s}: {k / n:.3f} [{lo:.3f}, {hi:.3f}] n={n}")
        res, pop = simulate(pred_wrong, f_right, truth, skills, pids, args, rng)
        mae, cov = report(name, res, pop, acc)
        good = np.isfinite(mae) and np.isfinite(cov) and mae <= 2.0 and 0.90 <= cov <= 0.98
        ok &= bool(good)
        print(f"{name}: label-calibrated MAE (mean over skills) {mae:.2f} pp (target <= 2), coverage {cov:.3f} "
              f"(target 0.90-0.98): {'PASS' if good else 'FAIL'}")
    print(f"wall {time.time() - t0:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
