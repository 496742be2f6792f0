"""What the decoder alone can draw: given the *true* CLIP image embedding of a PictoWorld render
(and its caption), how often does the decoder's image pass the oracle against that render's truth?

This is the ceiling the prior cannot lift: a prior that reproduced the image-embedding
distribution exactly would still reach only this accuracy. Side by side, per scene kind, on the
same held-out scenes (a data stream no training stage draws from):

- ``render``: the oracle on the renders themselves (its own accuracy, ~1.0);
- ``decoder(true emb)``: ``Pipeline.decode`` from the render's CLIP image embedding;
- ``pipeline(caption)``: the full pipeline (prior + decoder) from the caption alone (not for
  ``person`` scenes: their captions may leave presentation and skin to the bias).

Accuracy is the pass rate with a 95% Wilson interval (one image per scene). For ``person`` scenes
it also prints, by the render's true skin tone, how the oracle reads the decoder's image drawn from
that render's embedding: kept, read as another tone, or unread (a decoder that fails one tone
more often than the others biases every skin share drawn from it).

    python bench/decoder_ceiling.py [--n 96] [--kinds single,pair,count] [--checkpoint DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import add_common_args, machine_line, oracle_accuracy, resolve_checkpoint, setup, table  # noqa: E402

DATA_SEED = 90_909  # training streams use 101-404; this one is held out


def scenes(kind: str, n: int):
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.captions import caption
    from t2i_audit.world.expect import expect_from_scene
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import SCENE_KINDS, sample_scene, scene_rng

    if kind not in SCENE_KINDS:
        sys.exit(f"unknown scene kind {kind!r}; choose from {', '.join(SCENE_KINDS)}")
    spec = BiasSpec.load()
    drawn = [sample_scene(scene_rng(DATA_SEED + SCENE_KINDS.index(kind), i), spec, kind=kind) for i in range(n)]
    imgs = torch.from_numpy(np.stack([np.asarray(render(s, 32)) for s in drawn])).permute(0, 3, 1, 2).contiguous()
    return imgs, [caption(s) for s in drawn], [expect_from_scene(s) for s in drawn], drawn


def rate(images, expects) -> str:
    acc, lo, hi = oracle_accuracy(images, expects)
    return f"{acc:.3f} [{lo:.3f}, {hi:.3f}]"


def skin_keep(truth: list[str], images) -> list[list]:
    from collections import Counter

    from t2i_audit.stats.resampling import wilson_interval
    from t2i_audit.world.oracle import read_image
    from t2i_audit.world.vocab import SKINS

    tally = Counter((t, read_image(im).skin) for t, im in zip(truth, images))
    rows = []
    for c in SKINS:
        n = sum(v for (t, _), v in tally.items() if t == c)
        if n:
            kept, unread = tally[(c, c)], sum(v for (t, r), v in tally.items() if t == c and r not in SKINS)
            lo, hi = wilson_interval(kept, n)
            rows.append([c, n, kept, n - kept - unread, unread, f"{kept / n:.3f} [{lo:.3f}, {hi:.3f}]"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96, help="scenes per kind")
    ap.add_argument("--kinds", default="single,pair,count", help="comma-separated PictoWorld scene kinds")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    from PIL import Image

    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

    pipe = Pipeline.load(resolve_checkpoint(args.checkpoint))
    d = pipe.defaults
    rows, skin_rows = [], []
    for kind in args.kinds.split(","):
        imgs, caps, expects, drawn_scenes = scenes(kind, args.n)
        renders = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in imgs]
        seeds = list(range(args.n))
        emb = pipe.clip.encode_images(imgs)
        drawn = pipe.decode(caps, emb, seeds)
        # a person caption may leave presentation and skin unsaid (the prior draws them from the bias),
        # so the full pipeline cannot be judged against the render's truth there
        if kind == "person":
            full = "n/a (captions leave attributes unsaid)"
            skin_rows = skin_keep([sc.person.skin for sc in drawn_scenes], drawn)
        else:
            full = rate(pipe(caps, seeds).images, expects)
        rows.append([kind, args.n, rate(renders, expects), rate(drawn, expects), full])
        print(f"  {kind}: done", file=sys.stderr, flush=True)
    print(table(["scene kind", "n", "render (oracle)", "decoder(true emb)", "pipeline(caption)"], rows,
                title=f"Decoder ceiling, {pipe.index.get('id', '?')}: decoder {d.sampler}-{d.steps} "
                      f"guidance {d.guidance}, prior {d.prior_sampler}-{d.prior_steps}"))
    if skin_rows:
        print(table(["true skin", "n", "kept", "read as another tone", "unread", "kept (95% Wilson)"], skin_rows,
                    title="\nperson scenes, decoder(true emb), by the render's skin tone:"))
    print(machine_line(args))


if __name__ == "__main__":
    main()
