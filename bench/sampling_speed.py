"""Sampling speed and oracle accuracy of the bundled generator, side by side on the same prompt/seed
pairs from pictoworld-skills (the default sampler should be much faster than DDPM-1000 with its
accuracy inside DDPM-1000's 95% interval):

- the checkpoint's default sampler, DDPM-1000 (the reference: ancestral sampling with 1000 steps
  for both the prior and the decoder), DDIM-50 and DPM-Solver++-20 (decoder), all
  through ``Pipeline`` (CFG branches in one batch, inference_mode, SDPA, fixed micro-batches);
- the same default sampler driven through a plain diffusers-style loop: a fresh scheduler per
  batch, separate conditional and unconditional forward passes, ``torch.no_grad``.

Accuracy is the PictoWorld oracle's pass rate against each prompt's expectation, with a 95% Wilson
interval (one image per prompt). Acceptance: default >= 40x DDPM-1000's images/s, and its accuracy
inside DDPM-1000's interval.

    python bench/sampling_speed.py [--n 128] [--checkpoint DIR] [--threads 1] [--skip-ddpm]
    python bench/sampling_speed.py --n 1024 --compare steps=8,prior_steps=10,guidance_interval=0.0:0.6
    python bench/sampling_speed.py --n 1024 --compare --baseline OLD_CHECKPOINT

``--compare SETTING`` runs only today's default and SETTING side by side (issue 26, acceptance 1):
per-category oracle accuracy with 95% Wilson intervals, and the speed ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import torch  # noqa: E402

from _common import (  # noqa: E402
    add_common_args,
    machine_line,
    resolve_checkpoint,
    setup,
    table,
    timed,
)
from _common import (
    oracle_accuracy as accuracy,
)


def pairs(n: int, with_categories: bool = False):
    from t2i_audit.evals.suites.loader import load_suite

    suite = load_suite("pictoworld-skills")
    k = max(1, -(-n // len(suite.prompts)))  # more pairs than prompts: the suite's next seeds, round-robin
    plan = suite.plan(images_per_prompt=k)
    plan = [plan[i] for i in sorted(range(len(plan)), key=lambda i: (i % k, i))][:n]
    out = [p.text for p, _ in plan], [int(s) for _, s in plan], [p.expect for p, _ in plan]
    return (*out, [p.category for p, _ in plan]) if with_categories else out


def parse_setting(text: str) -> dict:
    """``steps=8,sampler=dpm++,guidance_interval=0.0:0.6`` -> sampler overrides: ``lo:hi`` is a
    list of floats, any other value a YAML scalar as ``t2i-audit sample --param`` reads it."""
    from t2i_audit.commands.sample import parse_params

    parts = [x.strip() for x in text.split(",") if x.strip()]
    out = parse_params(tuple(p for p in parts if ":" not in p))
    for k, _, v in (p.partition("=") for p in parts if ":" in p):
        out[k.strip()] = [float(x) for x in v.split(":")]
    return out


def per_category(images, expects, cats) -> dict[str, tuple[int, int]]:
    """(passed, n) per suite category and 'all', judged by the PictoWorld oracle."""
    from t2i_audit.evals.metrics.skills import judge_images

    out: dict[str, list[int]] = {}
    for (ok, _), c in zip(judge_images(images, expects), cats):
        for key in (c, "all"):
            k = out.setdefault(key, [0, 0])
            k[0] += bool(ok)
            k[1] += 1
    return {c: (k, n) for c, (k, n) in out.items()}


def compare(args, pipe, baseline=None) -> None:
    """Today's default and a candidate side by side on the same pairs (issue 26, acceptance 1):
    images/s (CPU clock by default) and per-category oracle accuracy with 95% Wilson intervals; the
    candidate passes where it is >= 2x as fast and no category falls below today's interval.

    Today is ``baseline`` (another checkpoint's default sampler) if given, else ``pipe``'s default;
    the candidate is ``pipe`` with the ``--compare`` setting (empty: its default). The two run in
    alternating chunks of ``--chunk`` pairs, so that a change in the machine's load hits both."""
    from t2i_audit.stats.resampling import wilson_interval

    prompts, seeds, expects, cats = pairs(args.n, with_categories=True)
    new = parse_setting(args.compare or "")
    runs = {"today": (baseline or pipe, {}), "new": (pipe, new)}
    for p, over in runs.values():
        p(prompts[:2], seeds[:2], **over)  # warm-up
    imgs = {k: [] for k in runs}
    clock = {k: [0.0, 0.0] for k in runs}
    for i in range(0, len(prompts), args.chunk):
        for k, (p, over) in runs.items():
            with timed(args.device) as t:
                imgs[k] += p(prompts[i:i + args.chunk], seeds[i:i + args.chunk], **over).images
            clock[k][0] += t.get(args.clock)
            clock[k][1] += t.wall
        print(f"  {len(imgs['new'])}/{len(prompts)} pairs", file=sys.stderr, flush=True)
    old, cur = (per_category(imgs[k], expects, cats) for k in runs)
    rows, worse = [], []
    for c in sorted(old, key=lambda c: (c == "all", c)):
        (k0, n0), (k1, n1) = old[c], cur[c]
        lo0, hi0 = wilson_interval(k0, n0)
        lo1, hi1 = wilson_interval(k1, n1)
        if k1 / n1 < lo0:
            worse.append(c)
        rows.append([c, n0, f"{k0 / n0:.3f} [{lo0:.3f}, {hi0:.3f}]", f"{k1 / n1:.3f} [{lo1:.3f}, {hi1:.3f}]"])
    print(machine_line(args))
    print(table(["category", "n", "today: oracle acc [95% Wilson]", "new: oracle acc [95% Wilson]"], rows))
    (old_rate, old_wall), (new_rate, new_wall) = ((len(prompts) / c, len(prompts) / w) for c, w in clock.values())
    speed = new_rate / old_rate
    print(f"images/s ({args.clock}): today {old_rate:.2f}, new {new_rate:.2f} -> {speed:.2f}x "
          f"(wall: {old_wall:.2f} vs {new_wall:.2f} img/s)")
    print(f"acceptance 1: >= 2.0x: {'PASS' if speed >= 2 else 'FAIL'}; every category at or above today's "
          f"interval: {'PASS' if not worse else 'FAIL (' + ', '.join(worse) + ')'}; n = {args.n} pairs")
    shared = {c: len({s for s, k in zip(seeds, cats) if k == c}) for c in old if c != "all"}
    print("seeds: the suite reuses seeds across prompts (" + ", ".join(
        f"{c} {old[c][1]} images on {k} seed{'s' if k != 1 else ''}" for c, k in shared.items()) + "); the Wilson intervals treat "
          "images as independent and are too narrow where failures share a seed (similar prompts, same noise)")


@torch.no_grad()
def plain_loop(pipe, prompts, seeds, p, batch: int, device: str = "cpu"):
    """The same prior, decoder and autoencoder driven the plain way: one scheduler per batch, the
    conditional and unconditional passes run separately, no inference_mode, no fixed shapes."""
    from PIL import Image

    from t2i_audit.generator.models.autoencoder import to_uint8
    from t2i_audit.generator.samplers.diffusion_samplers import initial_noise, make_scheduler

    def run(model_fn, x, sched, steps, scale, gens):
        sched.set_timesteps(steps)
        x = x * sched.init_noise_sigma
        n = x.shape[0]
        for t in sched.timesteps:
            tt = torch.full((n,), int(t), dtype=torch.long, device=x.device)
            xin = sched.scale_model_input(x, t)
            out = model_fn(xin, tt, torch.zeros(n, dtype=torch.bool, device=x.device))
            if scale != 1.0:
                unc = model_fn(xin, tt, torch.ones(n, dtype=torch.bool, device=x.device))
                out = unc + scale * (out - unc)
            x = sched.step(out, t, x, generator=gens).prev_sample
        return x

    from t2i_audit.generator.models.pictoworld_clip import text_states

    def draw(pr, sd):
        gens = [torch.Generator().manual_seed(s) for s in sd]
        tokens = pipe.clip.tokenizer(pr).to(device)
        states, pooled = text_states(pipe.clip.model, tokens)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        valid = tokens != 0
        x = initial_noise((pipe.prior.config.embed_dim,), gens).to(device)
        x = run(lambda x, t, d: pipe.prior(x, t, states, pooled, valid, d), x,
                make_scheduler(p.prior_sampler, pipe.prior_scheduler), p.prior_steps, p.prior_guidance, gens)
        emb = pipe.prior.from_space(x)
        c = pipe.decoder.config
        z = initial_noise((c.in_channels, c.input_size, c.input_size), gens).to(device)
        z = run(lambda z, t, d: pipe.decoder(z, t, emb, states, valid, d, d), z,
                make_scheduler(p.sampler, pipe.decoder_scheduler), p.steps, 1.0 if pipe.distilled_guidance else p.guidance, gens)
        px = to_uint8(pipe.autoencoder.decode(z).float()).cpu()
        return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in px]

    images = []
    for i in range(0, len(prompts), batch):
        images += draw(prompts[i:i + batch], seeds[i:i + batch])
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="prompt/seed pairs (one image each)")
    ap.add_argument("--ddpm-steps", type=int, default=1000)
    ap.add_argument("--skip-ddpm", action="store_true", help="leave out DDPM (slow on CPU)")
    ap.add_argument("--ddpm-decoder-only", action="store_true",
                    help="DDPM for the decoder only, the prior at its default sampler")
    ap.add_argument("--compare", default=None, metavar="SETTING", nargs="?", const="",
                    help="only today's default vs SETTING, e.g. steps=8,prior_steps=10,guidance_interval=0.0:0.6 "
                         "(no SETTING: the checkpoint's default, against --baseline)")
    ap.add_argument("--baseline", default=None, metavar="CHECKPOINT",
                    help="with --compare: today's default is this checkpoint's (e.g. the previous bundled one)")
    ap.add_argument("--chunk", type=int, default=64, help="with --compare: pairs per alternating chunk")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline

    ckpt = resolve_checkpoint(args.checkpoint)
    pipe = Pipeline.load(ckpt)
    if args.device != "cpu":
        if not hasattr(pipe, "to"):
            sys.exit("this Pipeline has no .to(device); run on CPU")
        pipe.to(args.device)
    if args.compare is not None:
        base = Pipeline.load(args.baseline) if args.baseline else None
        print(f"new: checkpoint {ckpt} ({pipe.id}); today: {base.id if base else 'the same'}; "
              f"{args.n} prompt/seed pairs from pictoworld-skills (one image each)")
        return compare(args, pipe, base)
    prompts, seeds, expects = pairs(args.n)
    d = pipe.defaults
    configs = [(f"default ({d.sampler}-{d.steps}, prior {d.prior_sampler}-{d.prior_steps})", {})]
    if not args.skip_ddpm:  # the reference: ancestral sampling throughout (prior and decoder)
        ddpm = {"sampler": "ddpm", "steps": args.ddpm_steps}
        if not args.ddpm_decoder_only:
            ddpm.update(prior_sampler="ddpm", prior_steps=args.ddpm_steps)
        configs.append((f"DDPM-{args.ddpm_steps}", ddpm))
    configs += [("DDIM-50", {"sampler": "ddim", "steps": 50}), ("DPM-Solver++-20", {"sampler": "dpm++", "steps": 20})]
    if d.prior_sampler != "ddim":  # the previous default: a deterministic prior sampler
        configs.append((f"default with prior ddim-{d.prior_steps}", {"prior_sampler": "ddim"}))

    pipe(prompts[:2], seeds[:2])  # warm-up (allocations, kernel selection)
    results = {}
    for name, over in configs:
        with timed(args.device) as t:
            imgs = pipe(prompts, seeds, **over).images
        results[name] = (t, accuracy(imgs, expects))
        acc, lo, hi = results[name][1]
        print(f"  {name}: {len(imgs) / t.wall:.3f} img/s wall, {len(imgs) / t.get(args.clock):.3f} img/s "
              f"({args.clock}), oracle accuracy {acc:.3f} [{lo:.3f}, {hi:.3f}]", file=sys.stderr, flush=True)
    p = pipe.resolve_params()
    with timed(args.device) as t:
        imgs = plain_loop(pipe, prompts, seeds, p, p.micro_batch, args.device)
    plain_name = "default, plain diffusers-style loop"
    results[plain_name] = (t, accuracy(imgs, expects))

    default = configs[0][0]
    ddpm = f"DDPM-{args.ddpm_steps}"
    base = results[default][0].get(args.clock)
    rows = []
    for name, (t, (acc, lo, hi)) in results.items():
        rate = args.n / t.get(args.clock)
        rows.append([name, rate, args.n / t.wall, base and t.get(args.clock) / base, acc, f"[{lo:.3f}, {hi:.3f}]"])
    print(machine_line(args))
    print(f"checkpoint {ckpt}; {args.n} prompt/seed pairs from pictoworld-skills (one image each); "
          f"DDPM runs {'the decoder only' if args.ddpm_decoder_only else 'prior and decoder'}, DDIM/DPM++ rows "
          f"change the decoder sampler only (prior {d.prior_sampler}-{d.prior_steps}); guidance {d.guidance}; "
          f"micro-batch {d.micro_batch} (use --n a multiple of it)")
    print(table(["sampler", f"img/s ({args.clock})", "img/s (wall)", "default is N x as fast", "oracle acc",
                 "95% CI (Wilson)"], rows))
    if ddpm in results:
        speed = results[ddpm][0].get(args.clock) / base
        acc, _ = results[default][1][0], None
        _, lo, hi = results[ddpm][1]
        inside = lo <= acc <= hi
        print(f"acceptance: default vs {ddpm}: {speed:.1f}x faster (target >= 40x: {'PASS' if speed >= 40 else 'FAIL'}); "
              f"accuracy {acc:.3f} inside DDPM's [{lo:.3f}, {hi:.3f}]: {'PASS' if inside else 'FAIL'}")
    fast = results[plain_name][0].get(args.clock) / base
    print(f"fast paths: the pipeline is {fast:.2f}x the plain loop's speed at the same settings")


if __name__ == "__main__":
    main()
