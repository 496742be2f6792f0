"""Stage 1: train the PictoWorld CLIP contrastively (symmetric InfoNCE, learned temperature)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..world.bias import BiasSpec
from .clip import ClipBundle, _weights_id, build_open_clip, clip_loss, save_clip
from .configs import ClipConfig
from .tokenizer import CompactTokenizer, world_vocabulary_texts
from .training import EMA, Stage, world_batch

# CLIP sees explicit person captions more often than the generator does, so that its zero-shot
# probes can name presentation and skin tone; neutral captions are kept so the text tower still
# embeds them (the prior conditions on them).
CLIP_PERSON_MODES = {"neutral": 0.2, "presentation": 0.15, "skin": 0.15, "both": 0.5}


def train_clip(out, *, cfg: ClipConfig | None = None, steps: int = 2000, batch: int = 128,
               lr: float = 1e-3, seed: int = 1, spec: BiasSpec | None = None, save_every: int = 200,
               progress: bool = True, data_seed: int = 101) -> ClipBundle:
    spec = spec or BiasSpec.load()
    cfg = cfg or ClipConfig()
    tok = CompactTokenizer.build(world_vocabulary_texts(), context_length=cfg.context_length)
    cfg.vocab_size = tok.vocab_size
    torch.manual_seed(seed)
    model = build_open_clip(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    ema = EMA(model, 0.998)
    stage = Stage(out, "clip")
    start = stage.resume(model, ema, opt)
    warm = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.05, 1 - s / max(steps, 1)))
    for _ in range(start):
        sched.step()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="clip", disable=not progress)
    for step in bar:
        imgs, caps, _ = world_batch(data_seed, step * batch, batch, spec, cfg.image_size,
                                    person_modes=CLIP_PERSON_MODES)
        bundle_norm = (imgs.float() / 255.0 - 0.5) / 0.25
        loss = clip_loss(model, bundle_norm, tok(caps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(model, step)
        bar.set_postfix(loss=f"{loss.item():.3f}", T=f"{model.logit_scale.exp().item():.1f}")
        if step % 10 == 0:
            stage.log(step, loss=loss.item(), logit_scale=model.logit_scale.exp().item())
        if (step + 1) % save_every == 0 or step + 1 == steps:
            stage.save(model, ema, opt, step + 1)
            save_clip(ema.model, cfg, tok, stage.dir / "clip")
    final = stage.dir / "clip"
    if not (final / "model.safetensors").is_file():
        save_clip(ema.model, cfg, tok, final)
    return ClipBundle(ema.model, cfg, tok, _weights_id(final / "model.safetensors"))
