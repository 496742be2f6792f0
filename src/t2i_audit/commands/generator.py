"""`t2i-audit train` and `t2i-audit generate`: the bundled unCLIP generator."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running
from t2i_audit.generator.models.component_configs import SAMPLERS


@click.command("train")
@click.option("--preset", default="default", show_default=True, help="Preset name (default, tiny) or JSON file.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoint directory (created; an existing one is resumed).")
@click.option("--bias-spec", default="default", show_default=True)
@click.option("--stage", "stages", multiple=True, type=click.Choice(["clip", "autoencoder", "prior", "decoder"]),
              help="Train only these stages (repeatable). Default: all, in order.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the last checkpoint in OUT (--no-resume refuses a non-empty OUT).")
@click.option("--init-from", default=None, metavar="CHECKPOINT",
              help="Fine-tune: start the prior and/or decoder from this checkpoint (a directory or "
                   "'bundled') and copy its other components. Default stages then: prior, decoder.")
@click.option("--teacher", default=None, metavar="CHECKPOINT",
              help="Plain teacher decoder for a distilling preset whose --init-from decoder is "
                   "already distilled (the distillation then continues from it).")
@click.option("--allow-preset-change", is_flag=True,
              help="Resume OUT with another preset than it was trained with, deliberately (recorded in index.json).")
@long_running()
def train(preset: str, out: Path, bias_spec: str, stages: tuple[str, ...], resume: bool,
          init_from: str | None, teacher: str | None, allow_preset_change: bool, threads: int | None,
          progress: bool) -> None:
    """Train CLIP, then the autoencoder, prior and decoder on PictoWorld; resumable."""
    from t2i_audit.errors import InputError
    from t2i_audit.generator.training.presets import STAGES, get_preset
    from t2i_audit.generator.training.train_all_stages import FINETUNABLE, train_all
    from t2i_audit.world.bias import BiasSpec

    if not resume and out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: directory is not empty; pass --resume to continue it or choose a new --out")
    default_stages = FINETUNABLE if init_from else STAGES
    train_all(out, get_preset(preset), spec=BiasSpec.load(bias_spec), stages=stages or default_stages,
              progress=progress, log=click.echo, init_from=init_from, teacher_from=teacher,
              allow_preset_change=allow_preset_change)
    if (out / "index.json").is_file():
        click.echo(f"checkpoint ready: {out} (load with --checkpoint {out})")


@click.command("generate")
@click.argument("prompt")
@click.option("--n", "n", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Image i uses seed SEED+i.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("grid.png"), show_default=True)
@click.option("--checkpoint", default="bundled", show_default=True)
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None, help="Decoder sampler (default: the checkpoint's).")
@click.option("--steps", type=click.IntRange(min=1), default=None)
@click.option("--guidance", type=float, default=None)
@click.option("--prior-sampler", type=click.Choice(SAMPLERS), default=None)
@click.option("--prior-steps", type=click.IntRange(min=1), default=None)
@click.option("--prior-guidance", type=float, default=None)
@click.option("--rerank", type=click.IntRange(min=1), default=None, help="Keep the CLIP-best of K candidates.")
@long_running()
def generate(prompt: str, n: int, seed: int, out: Path, checkpoint: str, sampler, steps, guidance,
             prior_sampler, prior_steps, prior_guidance, rerank, progress, threads) -> None:
    """Draw N images for PROMPT; writes a captioned grid to OUT and the single images beside it."""
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline
    from t2i_audit.world.sheet import contact_sheet

    pipe = Pipeline.load(checkpoint)
    seeds = [seed + i for i in range(n)]
    res = pipe([prompt] * n, seeds, sampler=sampler, steps=steps, guidance=guidance, prior_sampler=prior_sampler,
               prior_steps=prior_steps, prior_guidance=prior_guidance, rerank=rerank)
    single = out.with_suffix("")
    single.mkdir(parents=True, exist_ok=True)
    for s, img in zip(seeds, res.images):
        img.save(single / f"seed{s}.png")
    contact_sheet([(img, f"{prompt} (seed {s})") for s, img in zip(seeds, res.images)], cols=min(8, n)).save(out)
    p = res.params
    click.echo(f"wrote {out} and {n} images in {single}/ ({pipe.id}; {p.sampler} {p.steps} steps, "
               f"guidance {p.guidance}, prior {p.prior_sampler} {p.prior_steps} steps)")
