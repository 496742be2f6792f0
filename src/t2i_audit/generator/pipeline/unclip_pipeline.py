"""The unCLIP pipeline: text -> CLIP text states -> prior -> CLIP image embedding -> latent decoder
-> autoencoder -> pixels; optional CLIP reranking of k candidates.

    pipe = Pipeline.load("bundled")            # or a checkpoint directory
    out = pipe(["a chef"], seeds=[0], steps=20, guidance=2.0)
    out.images[0].save("chef.png")

A checkpoint is a directory with one folder per component (config JSON + model.safetensors) and
an ``index.json`` recording the package version, the training data spec hash and training steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from PIL import Image

from t2i_audit import __version__
from t2i_audit.errors import InputError
from t2i_audit.generator.models.autoencoder import Autoencoder, to_uint8
from t2i_audit.generator.models.component_configs import (
    AutoencoderConfig,
    PriorConfig,
    SamplerParams,
    SchedulerConfig,
)
from t2i_audit.generator.models.pictoworld_clip import ClipBundle, bundled_dir, load_clip, text_states
from t2i_audit.generator.models.prior import Prior
from t2i_audit.generator.models.safetensors_io import load_safetensors_into, save_safetensors
from t2i_audit.generator.models.unet import load_decoder
from t2i_audit.generator.samplers.diffusion_samplers import (
    check_interval,
    guided,
    initial_noise,
    make_scheduler,
    sample,
)

CHECKPOINT_FORMAT = "t2i-audit-checkpoint/1"


@dataclass
class GenerationOutput:
    images: list[Image.Image]
    image_embeds: torch.Tensor  # (N, D) normalised CLIP image embeddings the decoder drew from
    text_embeds: torch.Tensor  # (N, D) normalised CLIP text embeddings of the prompts
    params: SamplerParams
    nsfw_content_detected: list[bool] | None = None  # the safety filter's verdicts (None: no filter)


def candidate_seed(seed: int, j: int) -> int:
    """Seed of the j-th reranking candidate of an image (candidate 0 is the image's own seed)."""
    return int(seed) if j == 0 else (int(seed) * 1_000_003 + j) % (2**63)


def _rep(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` tiled along rows to ``n`` (the guided branches run as one batch of 2 x rows)."""
    return x if x.shape[0] == n else torch.cat([x] * (n // x.shape[0]))


def _pad_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` with its last row repeated up to ``n`` rows (padding rows, discarded after the call)."""
    return x if x.shape[0] == n else torch.cat([x, x[-1:].expand(n - x.shape[0], *x.shape[1:])])


def _to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(px.permute(1, 2, 0).numpy()) for px in pixels]


def checkpoint_dir(path: str | Path) -> Path:
    """A checkpoint directory (one with index.json), or the package's bundled one for "bundled"."""
    d = bundled_dir() if str(path) == "bundled" else Path(path)
    if not (d / "index.json").is_file():
        hint = (" (the bundled checkpoint is not installed in this copy of the package)"
                if str(path) == "bundled" else "; pass a directory written by `t2i-audit train`")
        raise InputError(f"{d}: not a t2i-audit checkpoint (index.json missing){hint}")
    return d


class Pipeline:
    def __init__(self, clip: ClipBundle, prior: Prior, decoder: torch.nn.Module, autoencoder: Autoencoder,
                 prior_scheduler: SchedulerConfig, decoder_scheduler: SchedulerConfig,
                 defaults: SamplerParams | None = None, index: dict | None = None, safety=None):
        self.clip, self.prior, self.decoder, self.autoencoder = clip, prior, decoder, autoencoder
        self.safety = safety  # generator.safety.SafetyFilter: blocks images of configured concepts
        self.prior_scheduler, self.decoder_scheduler = prior_scheduler, decoder_scheduler
        self.defaults = defaults or SamplerParams()
        self.index = index or {}
        self.device, self.autocast_dtype = torch.device("cpu"), None
        for m in (clip.model, prior, decoder, autoencoder):
            m.eval()

    def to(self, device: str | torch.device, dtype: str | torch.dtype | None = None) -> Pipeline:
        """Run on ``device``. On CUDA the networks run under autocast in ``dtype`` (float16/bfloat16;
        default bfloat16 where supported); on CPU everything stays fp32. Noise is always drawn on the
        CPU from each image's own generator, so a seed means the same starting point everywhere."""
        self.device = torch.device(device)
        for m in (self.clip.model, self.prior, self.decoder, self.autoencoder):
            m.to(self.device)
        if self.device.type == "cuda":
            dtype = dtype or ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
            self.autocast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        else:
            self.autocast_dtype = None
        return self

    def _autocast(self):
        import contextlib

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        return self.index.get("id", "pictoworld-unclip@unsaved")

    def config_dict(self) -> dict:
        return {
            "clip": self.clip.config.to_dict(), "prior": self.prior.config.to_dict(),
            "decoder": self.decoder.config.to_dict(), "autoencoder": self.autoencoder.config.to_dict(),
            "prior_scheduler": self.prior_scheduler.to_dict(),
            "decoder_scheduler": self.decoder_scheduler.to_dict(), "defaults": self.defaults.to_dict(),
            **({"safety": self.safety.to_dict()} if self.safety is not None else {}),
        }

    def resolve_params(self, params: SamplerParams | dict | None = None, **overrides) -> SamplerParams:
        base = self.defaults.to_dict()
        if isinstance(params, SamplerParams):
            base.update(params.to_dict())
        elif params:
            base.update(params)
        base.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in fields(SamplerParams)}
        extra = {k: base.pop(k) for k in list(base) if k not in names}
        p = SamplerParams.from_dict(base)
        p.extra.update(extra)
        if min(p.rerank, p.steps, p.prior_steps, p.micro_batch, p.prior_chunk) < 1:
            raise InputError("rerank, steps, prior_steps, micro_batch and prior_micro_batch must each be at least 1")
        p.guidance_interval = list(check_interval(p.guidance_interval))
        dg = self.distilled_guidance
        if dg and (p.guidance != dg or p.guidance_interval != [0.0, 1.0]):
            raise InputError(f"this checkpoint's decoder is guidance-distilled at guidance {dg:g} (one "
                             f"evaluation per step, guidance built in): it samples at guidance {dg:g} over "
                             f"the whole interval only, not guidance {p.guidance:g} in {p.guidance_interval}. "
                             "Use a checkpoint with a plain decoder for other guidance settings.")
        return p

    @property
    def distilled_guidance(self) -> float:
        """The guidance scale the decoder was distilled at (0.0: a plain decoder)."""
        return float(getattr(self.decoder.config, "distilled_guidance", 0.0) or 0.0)

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def encode_text(self, prompts: list[str]):
        tokens = self.clip.tokenizer(prompts).to(self.device)
        states, pooled = text_states(self.clip.model, tokens)
        return states, torch.nn.functional.normalize(pooled, dim=-1), tokens != 0

    def _prior_draw(self, text: tuple, gens: list[torch.Generator], p: SamplerParams) -> torch.Tensor:
        """Unit CLIP image embeddings for one prior chunk of ``len(gens)`` rows; ``text`` is the
        chunk's (states, pooled, valid), padded to as many rows."""
        states, pooled, valid = text

        def prior_fn(x, t, drop):
            n = x.shape[0]
            with self._autocast():
                return self.prior(x, t, _rep(states, n), _rep(pooled, n), _rep(valid, n), drop.to(x.device)).float()

        x = initial_noise((self.prior.config.embed_dim,), gens).to(self.device)
        x = sample(guided(prior_fn, p.prior_guidance), x,
                   make_scheduler(p.prior_sampler, self.prior_scheduler), p.prior_steps, gens)
        return self.prior.from_space(x)

    def _decoder_draw(self, text: tuple, img_emb: torch.Tensor, gens: list[torch.Generator],
                      p: SamplerParams) -> torch.Tensor:
        """(n,3,H,W) uint8 pixels of one decoder micro-batch of n = ``len(gens)`` images; ``text``
        and ``img_emb`` hold their n rows. Padding rows (the last row repeated, their own
        generators) keep its shape at ``micro_batch`` and are discarded."""
        n, size = len(gens), p.micro_batch
        states, _, valid = (_pad_rows(x[:n], size) for x in text)
        emb = _pad_rows(img_emb, size).to(self.device)
        gens = gens + [torch.Generator().manual_seed(0) for _ in range(size - n)]

        def decoder_fn(z, t, drop):
            n = z.shape[0]
            d = drop.to(z.device)
            with self._autocast():
                return self.decoder(z, t, _rep(emb, n), _rep(states, n), _rep(valid, n), d, d).float()

        dcfg = self.decoder.config
        z = initial_noise((dcfg.in_channels, dcfg.input_size, dcfg.input_size), gens).to(self.device)
        scale = 1.0 if self.distilled_guidance else p.guidance  # distilled: the guidance is built in
        z = sample(guided(decoder_fn, scale, p.guidance_interval,
                          self.decoder_scheduler.num_train_timesteps), z, make_scheduler(p.sampler, self.decoder_scheduler),
                   p.steps, gens)
        with self._autocast():
            pixels = to_uint8(self.autoencoder.decode(z).float()).cpu()
        return pixels[:n]

    @torch.inference_mode()
    def decode(self, prompts: list[str], image_embeds: torch.Tensor, seeds: list[int],
               params: SamplerParams | dict | None = None, **overrides) -> list[Image.Image]:
        """The decoder alone: draw one image per (caption, CLIP image embedding, seed), skipping the
        prior (as unCLIP's image variations do). Diagnoses what the decoder can draw when given
        the embedding of a real render."""
        if not (len(prompts) == len(seeds) == image_embeds.shape[0]):
            raise InputError(f"got {len(prompts)} prompts, {image_embeds.shape[0]} embeddings and "
                             f"{len(seeds)} seeds; give one of each per image")
        pixels, _ = self._draw_all(list(prompts), list(seeds), self.resolve_params(params, **overrides), image_embeds)
        return _to_pil(pixels)

    @torch.inference_mode()
    def _draw_all(self, prompts: list[str], seeds: list[int], p: SamplerParams,
                  image_embeds: torch.Tensor | None = None,
                  prior_only: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(N,3,H,W) uint8 pixels (None if ``prior_only``) and (N,D) unit image embeddings.

        The prior runs on fixed chunks of ``prior_micro_batch`` rows, the decoder on fixed chunks of
        ``micro_batch`` (the last of each padded), so an image's bytes never depend on how many
        images were requested with it. Each image has one generator, seeded by its seed: the prior
        draws from it first, then the decoder. ``image_embeds`` skip the prior."""
        chunk = p.micro_batch if image_embeds is not None else p.prior_chunk
        mb, pix, embs = p.micro_batch, [], []
        for i in range(0, len(prompts), chunk):
            pr = prompts[i:i + chunk]
            text = self.encode_text(pr + [pr[-1]] * (chunk - len(pr)))  # once per chunk, padded
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i:i + chunk]]
            if image_embeds is None:
                pads = [torch.Generator().manual_seed(0) for _ in range(chunk - len(pr))]
                emb = self._prior_draw(text, gens + pads, p)[:len(pr)]
            else:
                emb = torch.nn.functional.normalize(image_embeds[i:i + chunk].to(self.device, torch.float32), dim=-1)
            embs.append(emb.float().cpu())
            if not prior_only:
                pix += [self._decoder_draw(tuple(x[j:j + mb] for x in text), emb[j:j + mb], gens[j:j + mb], p)
                        for j in range(0, len(pr), mb)]
        return (None if prior_only else torch.cat(pix)), torch.cat(embs)

    @torch.inference_mode()
    def prior_embeds(self, prompts: list[str], seeds: list[int], params: SamplerParams | dict | None = None,
                     **overrides) -> torch.Tensor:
        """The prior alone: the unit CLIP image embeddings (N, D) it samples for each (prompt, seed),
        exactly those ``pipe(prompts, seeds)`` hands the decoder (without reranking). Cheap: it
        diagnoses whether a share of the drawn images is the prior's or the decoder's doing."""
        if len(prompts) != len(seeds):
            raise InputError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        return self._draw_all(list(prompts), list(seeds), self.resolve_params(params, **overrides),
                              prior_only=True)[1]

    @torch.inference_mode()
    def __call__(self, prompts: list[str] | str, seeds: list[int] | int | None = None,
                 params: SamplerParams | dict | None = None, **overrides) -> GenerationOutput:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if seeds is None:
            seeds = list(range(len(prompts)))
        seeds = [seeds] if isinstance(seeds, int) else list(seeds)
        if len(seeds) != len(prompts):
            raise InputError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        p = self.resolve_params(params, **overrides)
        k = p.rerank
        cand_prompts = [pr for pr in prompts for _ in range(k)]
        cand_seeds = [candidate_seed(s, j) for s in seeds for j in range(k)]
        pixels, img_emb = self._draw_all(cand_prompts, cand_seeds, p)
        text_emb = self.clip.encode_texts(prompts)
        if k > 1:
            cand_emb = self.clip.encode_images(pixels).view(len(prompts), k, -1)
            scores = (cand_emb * text_emb[:, None]).sum(-1)
            best = scores.argmax(dim=1)
            idx = torch.arange(len(prompts)) * k + best
            pixels, img_emb = pixels[idx], img_emb[idx]
        flags = None
        filt = self._safety_filter(p)
        if filt is not None:
            pixels, flags = filt.apply(self.clip, pixels)
        return GenerationOutput(_to_pil(pixels), img_emb, text_emb, p, flags)

    def _safety_filter(self, p: SamplerParams):
        """The filter of the sampler parameter ``safety`` (a spec string) if given, else ``self.safety``."""
        spec = p.extra.get("safety")
        if not spec:
            return self.safety
        from t2i_audit.generator.pipeline.safety_filter import SafetyFilter

        return SafetyFilter.parse(str(spec))

    generate = __call__

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, dtype: torch.dtype | None = None, index: dict | None = None) -> None:
        d = Path(directory)
        self.clip.save(d / "clip")
        if dtype is not None:
            save_safetensors(self.clip.model.state_dict(), d / "clip" / "model.safetensors", dtype)
        for name, module, sched in (("prior", self.prior, self.prior_scheduler),
                                    ("decoder", self.decoder, self.decoder_scheduler),
                                    ("autoencoder", self.autoencoder, None)):
            (d / name).mkdir(parents=True, exist_ok=True)
            module.config.save(d / name / "config.json")
            if sched is not None:
                sched.save(d / name / "scheduler.json")
            save_safetensors(module.state_dict(), d / name / "model.safetensors", dtype)
        self.defaults.save(d / "sampler.json")
        idx = {**self.index, **(index or {}), "format": CHECKPOINT_FORMAT, "package_version": __version__,
               "components": ["clip", "prior", "decoder", "autoencoder"]}
        (d / "index.json").write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n")

    @staticmethod
    def load(path: str | Path = "bundled") -> Pipeline:
        d = checkpoint_dir(path)
        index = json.loads((d / "index.json").read_text())
        if index.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"{d}/index.json: format {index.get('format')!r} is not {CHECKPOINT_FORMAT!r}")
        clip = load_clip(d / "clip")
        prior = Prior(PriorConfig.load(d / "prior" / "config.json"))
        load_safetensors_into(prior, d / "prior" / "model.safetensors")
        decoder = load_decoder(d / "decoder", clip.config.context_length)
        ae = Autoencoder(AutoencoderConfig.load(d / "autoencoder" / "config.json"))
        load_safetensors_into(ae, d / "autoencoder" / "model.safetensors")
        defaults = SamplerParams.load(d / "sampler.json") if (d / "sampler.json").is_file() else None
        index.setdefault("id", f"pictoworld-unclip@{index.get('weights_hash', 'unknown')}")
        return Pipeline(clip, prior, decoder, ae, SchedulerConfig.load(d / "prior" / "scheduler.json"),
                        SchedulerConfig.load(d / "decoder" / "scheduler.json"), defaults, index)
