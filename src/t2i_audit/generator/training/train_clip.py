"""Stage 1: train the PictoWorld CLIP contrastively (symmetric InfoNCE, learned temperature)."""

from __future__ import annotations

from pathlib import Path

import torch

from t2i_audit.generator.models.pictoworld_clip import (
    ClipBundle,
    _weights_id,
    build_open_clip,
    clip_loss,
    save_clip,
)
from t2i_audit.generator.models.tokenizer import CompactTokenizer, world_vocabulary_texts
from t2i_audit.generator.training.stage_configs import ClipStageConfig
from t2i_audit.generator.training.training_state import run_stage, world_batch
from t2i_audit.world.bias import BiasSpec

# CLIP sees explicit person captions more often than the generator does, so that its zero-shot
# probes can name presentation and skin tone; neutral captions are kept so the text tower still
# embeds them (the prior conditions on them).
CLIP_PERSON_MODES = {"neutral": 0.2, "presentation": 0.15, "skin": 0.15, "both": 0.5}


def train_clip(out, config: ClipStageConfig | None = None, *, spec: BiasSpec | None = None,
               progress: bool = True, init_weights=None) -> ClipBundle:
    """Train the CLIP stage in ``out`` as ``config`` says (see stage_configs.ClipStageConfig)."""
    c = config or ClipStageConfig()
    spec = spec or BiasSpec.load()
    cfg = c.model_config()
    batch, data_seed = c.batch, c.data_seed
    tok = CompactTokenizer.build(world_vocabulary_texts(), context_length=cfg.context_length)
    cfg.vocab_size = tok.vocab_size
    torch.manual_seed(c.seed)
    model = build_open_clip(cfg)

    def step_fn(step: int):
        imgs, caps, _ = world_batch(data_seed, step * batch, batch, spec, cfg.image_size,
                                    person_modes=CLIP_PERSON_MODES)
        x = (imgs.float() / 255.0 - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
        loss = clip_loss(model, x, tok(caps))
        return loss, {"logit_scale": model.logit_scale.exp().item()}

    def on_save(ema_model, step):
        save_clip(ema_model, cfg, tok, f"{out}/clip")

    ema = run_stage("clip", out, model, step_fn, steps=c.steps, lr=c.lr, weight_decay=0.05, warmup=200,
                    ema_decay=0.998, betas=(0.9, 0.98), save_every=c.save_every, on_save=on_save,
                    progress=progress, init_weights=init_weights, config=c)
    final = ema.model.eval()
    return ClipBundle(final, cfg, tok, _weights_id(Path(out) / "clip" / "model.safetensors"))
