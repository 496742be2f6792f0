"""`score` (CLIPScore + FD) on a fresh run against torchmetrics' CLIPScore + FID on the same images,
reference set and CLIP model, then re-scoring with a warm embedding cache (target: fresh >= 2x
faster than torchmetrics; warm <= 5% of cold).

Rows: a fresh run scored when the reference set's statistics are already cached (the usual case:
reference statistics are cached per reference hash and extractor by any earlier score, while
torchmetrics recomputes its real features in every process), the same with everything cold (run and
reference), the all-cold score again with the model's stock ``encode_image`` instead of
t2i-audit's exact class-token-only forward (``evals/clip_fast.py``; shows how much of the speed-up
is that forward and how much the pipeline), and a warm re-score. Setup (untimed): sample a run of
``--n`` images (pictoworld-skills, 2 per prompt) and write a reference folder of ``--ref-n``
PictoWorld renders. The paths are timed in ``--repeats`` interleaved rounds (each score with its own
fresh cache folder) and the table gives the median per path: on a shared machine the CPU time of
one run moves by ±30% with what the neighbours do, and interleaving lets that hit every path alike.

Fairness: torchmetrics is given the bundled CLIP through its documented hooks:
``CLIPScore(model_name_or_path=factory)`` with a model/processor pair around the same open_clip
model (its stock ``encode_image`` / ``encode_text``) and the same preprocessing, and
``FrechetInceptionDistance(feature=module)`` with the same image tower. Both paths load the PNGs
from disk inside the timed region and run under ``torch.inference_mode`` with the same batch and
threads. Before any timing the model is loaded (its tokenizer built), each tower has run once
(first-call set-up), and both sides' Python modules (torchmetrics, which pulls in transformers, and
t2i-audit's scoring) are imported, so no row pays a one-off cost. The work differs only where the
designs differ: torchmetrics runs the image tower twice on the generated images (once in CLIPScore,
once in FID) and encodes every caption; t2i-audit embeds each image once and each distinct caption
once (by an exact class-token-only forward), and also computes bootstrap intervals, verifies image
hashes and writes result files. Both results are printed and their agreement is asserted: every
t2i-audit row's CLIPScore within 1e-4 relative of torchmetrics' CLIPScore and its FD within 1e-3
relative of torchmetrics' FID (same CLIP image tower as ``feature=``). The exit status is non-zero
when an agreement check fails or a figure is NaN; the speed figures are printed beside with their
targets (timings on a shared machine are not gated).

    python bench/score_vs_torchmetrics.py [--n 256] [--ref-n 1000] [--repeats 3] [--checkpoint DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402, F401 - first: sizes the BLAS/OpenMP pools from --threads

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import add_common_args, machine_line, resolve_checkpoint, setup, table, timed  # noqa: E402

CS_RTOL = 1e-4  # CLIPScore, relative to torchmetrics' CLIPScore
FD_RTOL = 1e-3  # FD, relative to torchmetrics' FID with the same feature module


class _TMModel(torch.nn.Module):
    """The bundled open_clip CLIP behind the two methods torchmetrics' CLIPScore calls."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip
        self.config = SimpleNamespace()  # no text_config: tokens are already within the context length

    def get_image_features(self, pixel_values):
        return self.clip.encode_image(pixel_values)

    def get_text_features(self, input_ids, attention_mask=None):
        return self.clip.encode_text(input_ids)


class _TMProcessor:
    """Uint8 CHW tensors / captions -> the bundled CLIP's inputs (the same preprocessing as ours)."""

    def __init__(self, preprocess, tokenizer, device):
        self.preprocess, self.tokenizer, self.device = preprocess, tokenizer, device

    def __call__(self, images=None, text=None, return_tensors="pt", padding=True):
        from PIL import Image

        if images is not None:
            px = [self.preprocess(Image.fromarray(t.permute(1, 2, 0).numpy())) for t in images]
            return {"pixel_values": torch.stack(px)}
        ids = self.tokenizer(list(text))
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


class _Tower(torch.nn.Module):
    """FID feature module: uint8 images -> the same CLIP image embedding (resized like ours if needed)."""

    def __init__(self, clip, size, mean, std):
        super().__init__()
        self.clip, self.size = clip, size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        x = x.float() / 255.0
        if x.shape[-1] != self.size:
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True)
        return self.clip.encode_image((x - self.mean) / self.std)


def make_run(ckpt: str, out: Path, n: int) -> None:
    from t2i_audit.evals.runs.sampling import SampleConfig, sample

    sample(SampleConfig(suite="pictoworld-skills", out=str(out), generator=f"checkpoint:{ckpt}",
                        images_per_prompt=2, limit=max(1, n // 2), progress=False))


def make_reference(out: Path, n: int, size: int) -> None:
    from t2i_audit.evals.scoring.reference import world_reference

    ref = world_reference(n, seed=0, size=size)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(ref.n):
        ref.load(i).save(out / f"ref-{i:06d}.png")


def ours(run: Path, ref: Path, spec: str, cache: Path, batch: int) -> dict:
    from t2i_audit.evals.scoring.score import ScoreConfig, score_run

    cfg = ScoreConfig(metrics=("clip_score", "fd"), features=spec, clip=spec, reference=str(ref),
                      batch_size=batch, cache_dir=str(cache), progress=False)
    return score_run(run, cfg)


def warm_reference(ref: Path, ex, cache_dir: Path, batch: int) -> None:
    from t2i_audit.evals.features.cache import EmbeddingCache
    from t2i_audit.evals.scoring.reference import load_reference, reference_features, reference_moments

    r = load_reference(str(ref))
    cache = EmbeddingCache(cache_dir)
    reference_moments(r, ex, cache, reference_features(r, ex, cache, batch_size=batch))
    cache.close()


def warm_up(ex, run: Path, device: str) -> None:
    """First calls of each tower (one-off kernel set-up) outside every timed region: one image through
    t2i-audit's forward and through the stock ``encode_image`` torchmetrics uses, one caption."""
    from PIL import Image

    im = Image.open(next(run.rglob("*.png"))).convert("RGB")
    ex.embed_images([im])
    ex.embed_texts(["a"])
    with torch.inference_mode():
        ex.model.encode_image(ex.preprocess_batch([im]).to(device))


def torchmetrics_path(run: Path, ref: Path, ex, batch: int, device: str) -> tuple[float, float]:
    import pandas as pd
    from PIL import Image
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.multimodal.clip_score import CLIPScore

    man = pd.read_parquet(run / "manifest.parquet")
    clip = ex.model
    size = int(ex.preprocess.transforms[0].size if hasattr(ex.preprocess.transforms[0], "size") else 32) \
        if hasattr(ex.preprocess, "transforms") else 32
    norm = [t for t in getattr(ex.preprocess, "transforms", []) if type(t).__name__ == "Normalize"]
    mean, std = (norm[0].mean, norm[0].std) if norm else ((0.5,) * 3, (0.25,) * 3)
    cs = CLIPScore(model_name_or_path=lambda: (_TMModel(clip), _TMProcessor(ex.preprocess, ex.tokenizer, device)))
    fid = FrechetInceptionDistance(feature=_Tower(clip, size, mean, std), normalize=False,
                                   reset_real_features=False)
    cs, fid = cs.to(device), fid.to(device)

    def load(paths):
        return torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1)
                            for p in paths]).to(device)

    ref_paths = sorted(ref.glob("*.png"))
    with torch.inference_mode():
        for s in range(0, len(ref_paths), batch):
            fid.update(load(ref_paths[s:s + batch]), real=True)
        paths = [run / p for p in man["path"]]
        texts = man["text"].astype(str).tolist()
        for s in range(0, len(paths), batch):
            imgs = load(paths[s:s + batch])
            cs.update(list(imgs.cpu()), texts[s:s + batch])
            fid.update(imgs, real=False)
        return float(cs.compute()), float(fid.compute())


def torchmetrics_per_image(run: Path, ex, batch: int, device: str) -> np.ndarray:
    """torchmetrics' own per-image CLIPScore (100·cos, ``_clip_score_update``, the function its
    ``CLIPScore.update`` sums) through the same (model, processor) pair; untimed."""
    import importlib

    import pandas as pd
    from PIL import Image

    upd = importlib.import_module("torchmetrics.functional.multimodal.clip_score")._clip_score_update
    man = pd.read_parquet(run / "manifest.parquet")
    model, proc = _TMModel(ex.model).to(device), _TMProcessor(ex.preprocess, ex.tokenizer, device)
    paths, texts = [run / p for p in man["path"]], man["text"].astype(str).tolist()
    out = []
    with torch.inference_mode():
        for s in range(0, len(paths), batch):
            imgs = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1)
                    for p in paths[s:s + batch]]
            out.append(upd(imgs, texts[s:s + batch], model, proc)[0].float().cpu().numpy())
    return np.concatenate(out)


def one_round(d: Path, run: Path, ref: Path, spec: str, ex, batch: int, device: str) -> dict:
    """Every timed path once, each score with its own fresh cache folder under ``d``: name ->
    (Timing, result)."""
    out = {}
    shutil.rmtree(d, ignore_errors=True)
    with timed(device) as t:
        res = ours(run, ref, spec, d / "cache", batch)
    out["cold"] = (t, res)
    with timed(device) as t:
        res = ours(run, ref, spec, d / "cache", batch)
    out["warm"] = (t, res)
    # The usual case: a new run scored against a reference set whose statistics an earlier score
    # already cached (per reference hash and extractor). Warm a fresh cache with the reference
    # only (untimed), then score the run.
    warm_reference(ref, ex, d / "cache-reference-only", batch)
    with timed(device) as t:
        res = ours(run, ref, spec, d / "cache-reference-only", batch)
    out["fresh"] = (t, res)
    with timed(device) as t:
        res = torchmetrics_path(run, ref, ex, batch, device)
    out["tm"] = (t, res)
    # all cold again, with the stock open_clip forward in place of the class-token-only one
    fast_encode, ex._encode_image = ex._encode_image, ex.model.encode_image
    try:
        with timed(device) as t:
            res = ours(run, ref, spec, d / "cache-stock", batch)
    finally:
        ex._encode_image = fast_encode
    out["stock"] = (t, res)
    shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images in the fresh run")
    ap.add_argument("--ref-n", type=int, default=1000, help="reference images")
    ap.add_argument("--batch", type=int, default=None, help="embedding batch (default: score's default)")
    ap.add_argument("--keep", default=None, help="keep the run and reference under this folder")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of every timed path (median)")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    import os

    import t2i_audit.evals.distributed.launch as distributed
    from t2i_audit.evals.features.extractors import load_extractor

    if args.device.startswith("cuda"):
        os.environ.pop(distributed.DEVICE_ENV, None)
    else:
        os.environ[distributed.DEVICE_ENV] = "cpu"
    ckpt = resolve_checkpoint(args.checkpoint)
    batch = args.batch or distributed.device_settings().embed_batch
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="t2i-bench-score-"))
    try:
        run, ref = work / "run", work / "reference"
        if not (run / "run.json").is_file():
            make_run(ckpt, run, args.n)
        if not ref.is_dir():
            make_reference(ref, args.ref_n, 32)
        spec = f"bundled-clip:{ckpt}"
        ex = load_extractor(spec)  # loaded once per process, as in `score`; not part of either timing
        distributed.place_extractor(ex, batch)
        import torchmetrics.image.fid  # noqa: F401 - imports outside every timed region
        import torchmetrics.multimodal.clip_score  # noqa: F401

        import t2i_audit.evals.scoring.reference  # noqa: F401
        import t2i_audit.evals.scoring.score  # noqa: F401

        warm_up(ex, run, args.device)
        times: dict[str, list] = {k: [] for k in ("cold", "warm", "fresh", "tm", "stock")}
        for r in range(args.repeats):  # interleaved rounds, so that load on a shared machine hits every path
            res = one_round(work / f"round{r}", run, ref, spec, ex, batch, args.device)
            for k, (t, _) in res.items():
                times[k].append(t)
        out = {k: v for k, (_, v) in res.items()}  # the last round's results, for the agreement columns
        tm_per_image = torchmetrics_per_image(run, ex, batch, args.device)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for r in range(args.repeats):
                shutil.rmtree(work / f"round{r}", ignore_errors=True)

    c = args.clock

    def med(k: str, clock: str = c) -> float:
        return float(np.median([t.get(clock) for t in times[k]]))

    def agg(res, metric):
        a = res["aggregates_df"]
        return float(a[(a.metric == metric) & (a.group == "overall")].value.iloc[0])

    cold, warm, fresh = out["cold"], out["warm"], out["fresh"]
    tm_cs, tm_fid = out["tm"]
    rows = [["torchmetrics CLIPScore + FID", med("tm"), med("tm", "wall"), 1.0, tm_cs, tm_fid]]
    for k, label in (("fresh", "t2i-audit score, fresh run (reference stats cached)"),
                     ("cold", "t2i-audit score, fresh run and reference (all cold)"),
                     ("stock", "t2i-audit score, all cold, stock open_clip forward"),
                     ("warm", "t2i-audit score, re-score (warm cache)")):
        rows.append([label, med(k), med(k, "wall"), med("tm") / med(k), agg(out[k], "clip_score"), agg(out[k], "fd")])
    print(machine_line(args))
    print(f"checkpoint {ckpt}; {args.n} generated images, {args.ref_n} reference renders, batch {batch}; "
          f"median of {args.repeats} interleaved rounds")
    print(table(["path", f"seconds ({c})", "seconds (wall)", "speed-up vs torchmetrics", "CLIPScore", "FD"], rows))
    print(f"warm cache: {warm['cache']['hits']} hits, {warm['cache']['forward_passes']} forward passes")
    n_gen, n_emb = len(cold["items"].query("metric == 'clip_score'")), cold["cache"]["embedded"]
    n_ref = int(cold["reference"]["n"])
    print(f"work: torchmetrics embeds {2 * n_gen + n_ref} images ({n_gen} generated twice: CLIPScore and FID "
          f"each run the tower, {n_ref} reference) and {n_gen} captions; t2i-audit all cold embeds "
          f"{n_emb} items ({n_gen} generated + {n_ref} reference images once, each distinct caption once)")
    for name, res in (("all cold", cold), ("warm", warm), ("fresh run", fresh)):
        print(f"score stages ({name}, wall s): " + ", ".join(f"{k} {v:.3f}" for k, v in res["timings_s"].items()))
    print("CLIPScore: torchmetrics clamps the mean of 100·cos at 0, t2i-audit clamps each image's score; the "
          "two agree when no cosine is negative (a trained CLIP). FD: same moments, same formula.")
    print("per round (" + c + " s): " + "; ".join(f"{k} " + " ".join(f"{t.get(c):.3f}" for t in v)
                                              for k, v in times.items()))
    # torchmetrics' CLIPScore.compute() clamps the mean at 0; t2i-audit clamps each image (documented in
    # evals/metrics/clip.py). The like-for-like figure: torchmetrics' own per-image scores, clamped per image.
    n_neg = int((tm_per_image < 0).sum())
    tm_img = float(np.mean(np.clip(tm_per_image, 0, None)))
    r_stock = abs(float(np.mean(tm_per_image)) - tm_cs) / max(abs(tm_cs), 1e-12)
    ok = math.isfinite(tm_cs) and math.isfinite(tm_fid) and math.isfinite(tm_img) and r_stock <= CS_RTOL
    print(f"torchmetrics CLIPScore.compute() {tm_cs:.6f} (mean of 100·cos, clamped at 0); its per-image scores: "
          f"{len(tm_per_image)} images, {n_neg} with a negative cosine; mean {float(np.mean(tm_per_image)):.6f} "
          f"(vs compute(): relative {r_stock:.2e}); clamped per image (t2i-audit's definition) {tm_img:.6f}")
    for k in ("fresh", "cold", "stock", "warm"):
        cs, fd = agg(out[k], "clip_score"), agg(out[k], "fd")
        r_cs = abs(cs - tm_img) / max(abs(tm_img), 1e-12)
        if n_neg == 0:  # then the stock aggregate must agree too
            r_cs = max(r_cs, abs(cs - tm_cs) / max(abs(tm_cs), 1e-12))
        r_fd = abs(fd - tm_fid) / max(abs(tm_fid), 1e-12)
        good = math.isfinite(r_cs) and math.isfinite(r_fd) and r_cs <= CS_RTOL and r_fd <= FD_RTOL
        ok &= good
        print(f"agreement {k:<6}: CLIPScore {cs:.6f} vs torchmetrics per-image clamped {tm_img:.6f} (relative {r_cs:.2e}, tol {CS_RTOL:g}); "
              f"FD {fd:.6f} vs FID {tm_fid:.6f} (relative {r_fd:.2e}, tol {FD_RTOL:g}): {'PASS' if good else 'FAIL'}")
    speed, cold_speed = med("tm") / med("fresh"), med("tm") / med("cold")
    frac = med("warm") / med("cold")
    print(f"acceptance: a fresh run scores {speed:.2f}x faster than torchmetrics with reference statistics "
          f"cached (target >= 2: {'PASS' if speed >= 2 else 'FAIL'}); with the reference cold too "
          f"{cold_speed:.2f}x (target >= 2: {'PASS' if cold_speed >= 2 else 'FAIL'}); warm re-score "
          f"{100 * frac:.1f}% of the all-cold time (target <= 5%: {'PASS' if frac <= 0.05 else 'FAIL'}) "
          "[speed: printed, not gated]")
    print(f"agreement with torchmetrics (CLIPScore rel <= {CS_RTOL:g}, FD rel <= {FD_RTOL:g}, no NaN): "
          f"{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
