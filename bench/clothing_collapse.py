"""Where does the bundled generator's clothing-colour collapse come from? (issue 26, step 2)

Training draws each clothing colour uniformly (25%) and no caption names it, yet neutral prompts
come out mostly purple and pink. Each row below isolates one stage, read by the PictoWorld oracle
(clothing shares among the people it read, 95% Wilson intervals, n):

- ``CLIP probe``: does the CLIP image embedding carry clothing colour at all? A linear (ridge)
  classifier fit on the true embeddings of separate renders, scored on this row's renders.
- ``true embed -> decoder gG``: the decoder drawing from the TRUE CLIP image embeddings of renders
  with known, uniformly drawn clothing (their neutral captions as text): its shares and the share
  reproducing the render's clothing. Isolates the decoder (and its guidance) from the prior.
- ``prior gP (probe)``: the prior's samples for the suite's neutral prompts, classified by the
  probe: the prior's own clothing shares and signal, no decoder involved.
- ``prior gP -> decoder gG [lo, hi]``: prior samples decoded at decoder guidance G, optionally
  only inside the guidance interval [lo, hi] of timestep fractions (Kynkaenniemi et al. 2024).

Same prompts and seeds for every row (the pictoworld-bias suite's neutral prompts and seeds).

``clothing signal`` is the probe's mean top score (~0.95 on renders, 0.25 = none).

    python bench/clothing_collapse.py [--n 320] [--threads 1] [--intervals 0.0:0.6,0.6:1.0]
        [--true-guidances 1.0 2.0]
        [--setting steps=8,prior_steps=10,guidance_interval=0.0:0.6]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import torch  # noqa: E402

from _common import add_common_args, load_pipeline, machine_line, resolve_checkpoint, setup, table  # noqa: E402
from t2i_audit.errors import InputError  # noqa: E402
from t2i_audit.stats.resampling import wilson_interval  # noqa: E402

COLOURS = ("purple", "orange", "teal", "pink")


def shares(labels: list[str | None]) -> dict:
    """Clothing shares among the read labels, with Wilson intervals, abstentions and the largest
    distance from the uniform 25%."""
    read = [c for c in labels if c in COLOURS]
    n = len(read)
    out = {"n": len(labels), "read": n}
    for c in COLOURS:
        k = sum(r == c for r in read)
        out[c] = (k / n if n else float("nan"), *wilson_interval(k, n))
    out["max_dev"] = max(abs(out[c][0] - 0.25) for c in COLOURS) if n else float("nan")
    return out


def read_clothing(images) -> list[str | None]:
    from t2i_audit.world.oracle import read_image

    out = []
    for im in images:
        r = read_image(im)
        out.append(r.clothing if r.kind == "person" else None)
    return out


def render_people(n: int, seed: int):
    """Neutral-caption people with uniformly drawn clothing: (captions, images, clothing)."""
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.captions import caption
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_background, sample_person

    rng, spec = random.Random(seed), BiasSpec.load()
    scenes = [sample_person(rng, sample_background(rng), spec, mode="neutral") for _ in range(n)]
    return [caption(s) for s in scenes], [render(s, 32) for s in scenes], [s.person.clothing for s in scenes]


class Probe:
    """Linear (ridge) clothing probe on unit CLIP image embeddings, fit on one-hot targets. Its top
    score is the embedding's clothing signal: ~0.95 on renders, near 0.25 where it carries none."""

    def __init__(self, emb: torch.Tensor, labels: list[str], ridge: float = 1e-3):
        x = torch.cat([emb, torch.ones(len(emb), 1)], 1)
        y = torch.zeros(len(labels), len(COLOURS))
        y[torch.arange(len(labels)), [COLOURS.index(c) for c in labels]] = 1.0
        self.w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ y)

    def scores(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb, torch.ones(len(emb), 1)], 1) @ self.w

    def __call__(self, emb: torch.Tensor) -> list[str]:
        return [COLOURS[i] for i in self.scores(emb).argmax(1).tolist()]

    def signal(self, emb: torch.Tensor) -> float:
        return float(self.scores(emb).max(1).values.mean())


def neutral_pairs(n: int) -> tuple[list[str], list[int]]:
    from t2i_audit.evals.suites import load_suite

    suite = load_suite("pictoworld-bias")
    neutral = [p for p in suite.prompts if p.category == "neutral"]
    k = max(1, -(-n // len(neutral)))
    plan = [(p, s) for p, s in suite.plan(images_per_prompt=k) if p.category == "neutral"]
    by_round = sorted(range(len(plan)), key=lambda i: (i % k, i))  # round-robin over prompts
    plan = [plan[i] for i in by_round[:n]]
    return [p.text for p, _ in plan], [int(s) for _, s in plan]


def row(name: str, labels, seconds: float, agree: tuple[int, int] | None = None,
        signal: float | None = None) -> list:
    s = shares(labels)
    cells = [name, s["n"], f"{1 - s['read'] / max(s['n'], 1):.1%}"]
    for c in COLOURS:
        p, lo, hi = s[c]
        cells.append(f"{p:.1%} [{lo:.0%},{hi:.0%}]")
    cells.append(f"{100 * s['max_dev']:.1f}")
    if agree:
        k, n = agree
        lo, hi = wilson_interval(k, n)
        cells.append(f"{k / max(n, 1):.1%} [{lo:.0%},{hi:.0%}]")
    else:
        cells.append("-")
    cells.append("-" if signal is None else f"{signal:.2f}")
    cells.append(f"{s['n'] / seconds:.2f}" if seconds else "-")
    return cells


def parse_intervals(text: str) -> list[tuple[float, float]]:
    out = []
    for part in filter(None, (x.strip() for x in text.split(","))):
        lo, _, hi = part.partition(":")
        out.append((float(lo), float(hi)))
    return out


def parse_setting(text: str) -> dict:
    """``steps=8,prior_steps=10,guidance_interval=0.0:0.6`` -> sampler overrides."""
    out: dict = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        k, _, v = part.partition("=")
        out[k] = [float(x) for x in v.split(":")] if ":" in v else (float(v) if "." in v else int(v))
    return out


def can_decode(pipe, guidance: float, interval) -> bool:
    """Whether the decoder can sample at ``guidance`` in ``interval``; a guidance-distilled one only
    at its own scale over the whole interval (the row is skipped with a note otherwise)."""
    try:
        pipe.resolve_params(guidance=guidance, guidance_interval=list(interval))
        return True
    except InputError as e:  # says why
        print(f"skipped decoder g{guidance} in {list(interval)}: {e}", file=sys.stderr)
        return False


def embedding_rows(args, pipe) -> tuple[list[list], Probe]:
    """The probe (fit on separate renders), its held-out accuracy, and the decoder drawing from the
    true embeddings of renders with known clothing."""
    caps, renders, truth = render_people(args.n + args.probe_n, args.seed)
    emb = pipe.clip.encode_images(renders)
    probe = Probe(emb[args.n:], truth[args.n:])
    caps, emb, truth = caps[:args.n], emb[:args.n], truth[:args.n]
    pred = probe(emb)
    rows = [row("renders (truth)", truth, 0),
            row(f"CLIP probe on true embeds (fit on {args.probe_n} others)", pred, 0,
                (sum(a == b for a, b in zip(pred, truth)), len(pred)), probe.signal(emb))]
    seeds = list(range(args.seed, args.seed + args.n))
    for g in args.true_guidances:
        if not can_decode(pipe, g, (0.0, 1.0)):
            continue
        t0 = time.perf_counter()
        lab = read_clothing(pipe.decode(caps, emb, seeds, guidance=g))
        k = sum(a == b for a, b in zip(lab, truth))
        rows.append(row(f"true embed -> decoder g{g}", lab, time.perf_counter() - t0, (k, len(lab))))
        print(rows[-1], file=sys.stderr, flush=True)
    return rows, probe


def run(args, pipe) -> list[list]:
    rows, probe = embedding_rows(args, pipe)
    prompts, pseeds = neutral_pairs(args.n)
    for pg in args.prior_guidances:
        emb = pipe.prior_embeds(prompts, pseeds, prior_guidance=pg)
        rows.append(row(f"prior g{pg} (probe)", probe(emb), 0, signal=probe.signal(emb)))
        settings = []  # other prior guidances: the probe row only (decode them with --setting)
        if pg == 1.0:
            settings = [(g, (0.0, 1.0)) for g in args.guidances]
            settings += [(g, iv) for g in args.interval_guidances for iv in parse_intervals(args.intervals)]
        for g, iv in settings:
            if not can_decode(pipe, g, iv):
                continue
            t0 = time.perf_counter()
            imgs = pipe.decode(prompts, emb, pseeds, guidance=g, guidance_interval=list(iv))
            dt = time.perf_counter() - t0
            tag = "" if iv == (0.0, 1.0) else f" [{iv[0]}, {iv[1]}]"
            rows.append(row(f"prior g{pg} -> decoder g{g}{tag}", read_clothing(imgs), dt))
            print(rows[-1], file=sys.stderr, flush=True)
    for text in args.setting:
        t0 = time.perf_counter()
        out = pipe(prompts, pseeds, **parse_setting(text))
        rows.append(row(f"pipeline {text}", read_clothing(out.images), time.perf_counter() - t0,
                        signal=probe.signal(out.image_embeds)))
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=320, help="images per setting (a multiple of 16 is fastest)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--probe-n", type=int, default=2000, help="renders the clothing probe is fit on")
    ap.add_argument("--true-guidances", type=float, nargs="*", default=[2.0])
    ap.add_argument("--guidances", type=float, nargs="*", default=[1.0, 2.0])
    ap.add_argument("--prior-guidances", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--interval-guidances", type=float, nargs="*", default=[2.0])
    ap.add_argument("--intervals", default="0.0:0.6",
                    help="guidance intervals lo:hi (fractions of the training timesteps), comma-separated")
    ap.add_argument("--setting", action="append", default=[],
                    help="extra full-pipeline row, e.g. steps=8,prior_steps=10,guidance_interval=0.0:0.6")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    pipe = load_pipeline(args)
    ckpt = resolve_checkpoint(args.checkpoint)
    rows = run(args, pipe)
    print(machine_line(args))
    d = pipe.defaults
    print(f"checkpoint {ckpt} ({pipe.id}); decoder {d.sampler}-{d.steps}, prior {d.prior_sampler}-"
          f"{d.prior_steps}; {args.n} images per row; shares among images the oracle read as a person "
          "with a clothing colour; 95% Wilson intervals; uniform training = 25% each")
    print(table(["setting", "n", "unread", *COLOURS, "max |share-25| pp", "reproduces / probe acc",
                 "clothing signal", "img/s (wall)"], rows))


if __name__ == "__main__":
    main()
