"""CLIP image embedding throughput against the machine's measured fp32 matmul throughput (target:
>= 50% utilisation at the default batch).

FLOPs of the vision tower per image are counted with ``torch.utils.flop_counter.FlopCounterMode``
(matmuls, convolutions and attention; elementwise work is not counted, as is usual). The machine's
limit is a large fp32 ``torch.mm`` at the same thread count (2·N³ FLOPs per product).
Utilisation = FLOPs/image × images/s ÷ matmul FLOP/s. Rows: the model forward on prepared tensors
at several batches, and the extractor end to end (PIL preprocessing included) at the default batch.

    python bench/clip_throughput.py [--checkpoint DIR] [--threads 1] [--batch 64] [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import torch  # noqa: E402

from _common import add_common_args, machine_line, resolve_checkpoint, setup, table, timed  # noqa: E402


def matmul_flops(n: int, seconds: float, device: str, clock: str) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)  # warm-up
    reps, spent = 0, 0.0
    while spent < seconds or reps < 3:
        with timed(device) as t:
            torch.mm(a, b)
        spent += t.get(clock)
        reps += 1
    return 2.0 * n ** 3 * reps / spent


def vision_flops(model, x: torch.Tensor, encode=None) -> tuple[float, dict]:
    """FLOPs per image and their split by op. Counted with autograd enabled: under inference_mode
    nn.MultiheadAttention takes its fused fast path (aten._native_multi_head_attention), which
    FlopCounterMode has no formula for, so the attention projections and products would go
    uncounted; the slow path computes the same products through addmm and SDPA, which it counts."""
    from torch.utils.flop_counter import FlopCounterMode

    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        with torch.enable_grad(), FlopCounterMode(display=False) as fc:
            (encode or model.encode_image)(x)
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    by_op = {str(k).split(".")[-1]: v / x.shape[0] for k, v in fc.get_flop_counts().get("Global", {}).items()}
    return fc.get_total_flops() / x.shape[0], by_op


def forward_rate(model, x: torch.Tensor, seconds: float, device: str, clock: str, autocast=None) -> float:
    import contextlib

    ctx = torch.autocast("cuda", dtype=autocast) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        model.encode_image(x)
        n, spent = 0, 0.0
        while spent < seconds or n < 3 * x.shape[0]:
            with timed(device) as t:
                model.encode_image(x)
            spent += t.get(clock)
            n += x.shape[0]
    return n / spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=None, help="default batch (default: score's default per device)")
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per row")
    ap.add_argument("--matmul-n", type=int, default=2048)
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    import t2i_audit.evals.distributed.launch as distributed
    from t2i_audit.evals.features.extractors import load_extractor
    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_scene, scene_rng

    # Only the CLIP is needed: a checkpoint still training (clip/ done, no index.json yet) will do.
    clip_only = args.checkpoint and (Path(args.checkpoint) / "clip" / "config.json").is_file()
    ckpt = str(Path(args.checkpoint).resolve()) if clip_only else resolve_checkpoint(args.checkpoint)
    batch = args.batch or distributed.BATCH_SIZES["cuda" if args.device.startswith("cuda") else "cpu"][1]
    ex = load_extractor(f"bundled-clip:{ckpt}")
    model = ex.model.to(args.device)
    spec = BiasSpec.load()
    size = getattr(model.visual, "image_size", (32, 32))
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    images = [render(sample_scene(scene_rng(0, i), spec), size) for i in range(max(batch, 256))]
    x_all = torch.stack([ex.preprocess(im) for im in images]).to(args.device)

    peak = matmul_flops(args.matmul_n, args.seconds, args.device, args.clock)
    per_img, by_op = vision_flops(model, x_all[:batch])
    amp = None
    if args.device.startswith("cuda"):
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    rows = []
    for b in sorted({1, 16, batch, 256}):
        r = forward_rate(model, x_all[:b], args.seconds, args.device, args.clock)
        rows.append([f"forward fp32, batch {b}" + (" (default)" if b == batch else ""), r,
                     per_img * r / 1e9, 100.0 * per_img * r / peak])
    if amp is not None:
        r = forward_rate(model, x_all[:batch], args.seconds, args.device, args.clock, amp)
        rows.append([f"forward {str(amp).split('.')[-1]} autocast, batch {batch}", r, per_img * r / 1e9,
                     100.0 * per_img * r / peak])
    ex.batch_size = batch
    distributed.place_extractor(ex, batch, distributed.DeviceSettings(
        args.device, "float32" if amp is None else str(amp).split(".")[-1], 16, batch))
    # The extractor runs its own forward (evals/clip_fast.py: the last block computes only the class
    # token, which is all the pooled embedding uses), so its row is credited with that forward's FLOPs.
    fast_per_img, _ = vision_flops(model, x_all[:batch], ex._encode_image)
    ex.embed_images(images[:batch])
    n, spent = 0, 0.0
    while spent < args.seconds or n < 2 * batch:
        with timed(args.device) as t:
            ex.embed_images(images[:batch])
        spent += t.get(args.clock)
        n += batch
    r = n / spent
    rows.append([f"extractor end to end (preprocess + class-token-only forward), batch {batch}", r,
                 fast_per_img * r / 1e9, 100.0 * fast_per_img * r / peak])

    print(machine_line(args))
    print(f"vision tower of {ex.id}: {per_img / 1e6:.2f} MFLOP per {size}x{size} image (FlopCounterMode: "
          f"{', '.join(f'{k} {v / 1e6:.2f}' for k, v in sorted(by_op.items()))}); "
          f"the extractor's forward: {fast_per_img / 1e6:.2f} MFLOP; "
          f"measured fp32 matmul ({args.matmul_n}^3): {peak / 1e9:.1f} GFLOP/s")
    print(table(["path", "images/s", "GFLOP/s", "% of matmul"], rows))
    default_util = rows[[r[0] for r in rows].index(next(r[0] for r in rows if "(default)" in r[0]))][3]
    print(f"acceptance: CLIP forward at the default batch {batch} reaches {default_util:.0f}% of fp32 matmul "
          f"throughput (target >= 50%: {'PASS' if default_util >= 50 else 'FAIL'})")


if __name__ == "__main__":
    main()
