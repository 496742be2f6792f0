"""Where a planted bias is kept or lost: the prior's own presentation and skin shares for neutral
profession prompts, and (with ``--run``) what the decoder drew from each of the prior's samples.

The bias of an unCLIP generator lives in its prior (a neutral caption is one-to-many in CLIP image
space); the decoder can still lose some of it. This separates the two, cheaply (no decoding).

Method, written into the output:
- *Classifier.* For each profession, CLIP image embeddings of held-out PictoWorld renders with a
  uniformly drawn presentation and skin tone give one centroid per class; an embedding takes the
  class of the nearest centroid (cosine). Its accuracy on a second set of held-out renders is
  printed: a share measured through it can be no better than that.
- *Prior samples.* The pictoworld-bias suite's neutral prompts with the suite's own seeds
  (``--images-per-prompt`` per paraphrase, 4 paraphrases per profession), sampled with the
  checkpoint's default prior settings: exactly the embeddings ``pipe(prompt, seed)`` hands its
  decoder. Intervals are 95% Wilson over samples (the paraphrases are pooled).
- ``--run RUN``: a pictoworld-bias run of the same checkpoint at its default sampler. For each
  neutral image: the class its prior sample was nearest to, against the class the oracle reads in
  the drawn image ("unread" where the oracle abstains).
- ``--decode N``: without a run, decode up to N of the bench's own prior samples of each skin class
  per profession (a fresh decoder draw from each embedding, at the default decoder settings) and
  cross them the same way. Balanced by class, so the decoder's keep rate of a rare class (medium
  firefighters) is measured on as many images as a common one, in minutes.

    python bench/prior_bias.py [--images-per-prompt 256] [--run RUN | --decode N] [--checkpoint DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import add_common_args, machine_line, resolve_checkpoint, setup, table  # noqa: E402

DATA_SEED = 92_929  # held out: training streams use seeds 101-408
ATTRS = {"presentation": ("man", "woman"), "skin": ("light", "medium", "dark")}


def render_embeddings(pipe, profession: str, n: int, stream: int):
    """CLIP embeddings of ``n`` held-out renders of ``profession`` (presentation and skin uniform)."""
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_background, sample_person, scene_rng

    spec, scenes = BiasSpec.load(), []
    for i in range(n):
        rng = scene_rng(DATA_SEED + stream, i)
        scenes.append(sample_person(rng, sample_background(rng), spec, profession=profession, mode="both"))
    emb = pipe.clip.encode_images([render(s, 32) for s in scenes])
    return emb, {a: np.array([getattr(s.person, a) for s in scenes]) for a in ATTRS}


def nearest(emb: torch.Tensor, centroids: torch.Tensor, classes) -> np.ndarray:
    return np.array(classes)[(emb @ centroids.T).argmax(1).numpy()]


def neutral_plan(images_per_prompt: int) -> dict[str, list[tuple[str, int]]]:
    from t2i_audit.evals.suites.loader import load_suite

    plan: dict[str, list[tuple[str, int]]] = {}
    for p, seed in load_suite("pictoworld-bias").plan(images_per_prompt=images_per_prompt):
        if p.category == "neutral":
            plan.setdefault(p.slots["profession"], []).append((p.text, seed))
    return plan


def run_rows(run: Path, pipe) -> dict[str, list[tuple[str, int, str]]]:
    """(prompt, seed, image path) of the neutral images of a run drawn by this checkpoint."""
    import pandas as pd

    from t2i_audit.errors import InputError

    meta = json.loads((run / "run.json").read_text())
    ran = meta.get("generator", {}).get("config", {}).get("index", {}).get("id")
    if ran != pipe.id:
        raise InputError(f"--run {run} was drawn by {ran}, not by this checkpoint ({pipe.id}); pass --checkpoint")
    if meta.get("params"):
        raise InputError(f"--run {run} used sampler overrides {meta['params']}; this check needs the defaults")
    rows: dict[str, list[tuple[str, int, str]]] = {}
    for r in pd.read_parquet(run / "manifest.parquet").itertuples():
        if r.category == "neutral":
            rows.setdefault(json.loads(r.slots)["profession"], []).append((r.text, int(r.seed), str(run / r.path)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images-per-prompt", type=int, default=256, help="prior samples per neutral prompt")
    ap.add_argument("--renders", type=int, default=300, help="held-out renders per profession, per set")
    ap.add_argument("--run", default=None, help="a pictoworld-bias run of this checkpoint: cross the prior's "
                                               "class with the oracle's reading of each drawn image")
    ap.add_argument("--decode", type=int, default=0, metavar="N",
                    help="decode up to N prior samples of each skin class per profession and cross them")
    ap.add_argument("--bias-spec", default="default")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    if args.run and args.decode:
        ap.error("--run and --decode are two sources of drawn images: give one")
    from PIL import Image

    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline
    from t2i_audit.stats.resampling import wilson_interval
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.oracle import read_image

    pipe = Pipeline.load(resolve_checkpoint(args.checkpoint))
    spec, d = BiasSpec.load(args.bias_spec), pipe.defaults
    plan = neutral_plan(args.images_per_prompt)
    drawn = run_rows(Path(args.run), pipe) if args.run else {}
    share_rows, acc_rows, worst = [], [], (0.0, "")
    cross: dict[str, list] = {a: [] for a in ATTRS}
    for k, (prof, pairs) in enumerate(plan.items()):
        fit, fit_y = render_embeddings(pipe, prof, args.renders, 2 * k)
        test, test_y = render_embeddings(pipe, prof, args.renders, 2 * k + 1)
        rows = drawn.get(prof, [])
        # one prior call for the bench's pairs and the run's (the run's seeds are mostly among them)
        wanted = list(dict.fromkeys(pairs + [(t, s) for t, s, _ in rows]))
        emb = dict(zip(wanted, pipe.prior_embeds([t for t, _ in wanted], [s for _, s in wanted])))
        samples = torch.stack([emb[ts] for ts in pairs])
        centroids = {attr: torch.stack([fit[torch.from_numpy(fit_y[attr] == c)].mean(0) for c in classes])
                     for attr, classes in ATTRS.items()}
        if rows:
            meant_emb = torch.stack([emb[(t, s)] for t, s, _ in rows])
            reads = [read_image(Image.open(path)) for _, _, path in rows]
        elif args.decode:
            skin_of = nearest(samples, centroids["skin"], ATTRS["skin"])
            pick = [i for c in ATTRS["skin"] for i in np.nonzero(skin_of == c)[0][:args.decode]]
            meant_emb = samples[pick]
            rows = [(pairs[i][0], pairs[i][1], None) for i in pick]
            reads = [read_image(im) for im in pipe.decode([t for t, _, _ in rows], meant_emb, [s for _, s, _ in rows])]
        for attr, classes in ATTRS.items():
            cents = centroids[attr]
            acc = float((nearest(test, cents, classes) == test_y[attr]).mean())
            acc_rows.append([prof, attr, f"{acc:.3f}", len(test)])
            got = Counter(nearest(samples, cents, classes))
            target = spec.marginal(prof, attr)
            for c in classes:
                lo, hi = wilson_interval(got[c], len(samples))
                gap = 100 * (got[c] / len(samples) - target[c])
                worst = max(worst, (abs(gap), f"{prof} {attr} {c}"))
                share_rows.append([prof, attr, c, f"{got[c] / len(samples):.3f}", f"[{lo:.3f}, {hi:.3f}]",
                                   f"{target[c]:.2f}", f"{gap:+.1f}", len(samples)])
            if rows:
                meant = nearest(meant_emb, cents, classes)
                read = [getattr(r, attr) if getattr(r, attr) in classes else "unread" for r in reads]
                tally = Counter(zip(meant, read))
                for c in classes:
                    cross[attr].append([prof, c, sum(tally[(c, o)] for o in (*classes, "unread"))]
                                       + [tally[(c, o)] for o in (*classes, "unread")])
        print(f"  {prof}: done", file=sys.stderr, flush=True)
    print(f"Prior shares, {pipe.id}: prior {d.prior_sampler}-{d.prior_steps} guidance {d.prior_guidance}; "
          f"pictoworld-bias neutral prompts, {args.images_per_prompt} seeds per paraphrase (suite seeds); "
          f"class = nearest render-embedding centroid; bias spec {spec.name} {spec.hash}")
    print(table(["profession", "attribute", "class", "prior share", "95% CI (Wilson)", "spec", "diff pp", "n"],
                share_rows))
    print(f"max |prior share - spec| = {worst[0]:.1f} pp ({worst[1]})")
    print(table(["profession", "attribute", "nearest-centroid accuracy on held-out renders", "n"], acc_rows,
                title="\nThe classifier's own accuracy (a share is measured through it):"))
    source = (f"run {args.run}" if args.run else f"up to {args.decode} samples of each skin class per "
              f"profession decoded here: {d.sampler}-{d.steps} guidance {d.guidance}")
    for attr, rows in cross.items():
        if rows:
            print(table(["profession", "prior meant", "n", *(f"drawn {c}" for c in ATTRS[attr]), "unread"], rows,
                        title=f"\nWhat the decoder drew from the prior's samples, {attr} ({source}; "
                              "the oracle's reading of each image):"))
    print(machine_line(args))


if __name__ == "__main__":
    main()
