"""`t2i-audit train`: CLIP, then autoencoder, then prior, then decoder, each resumable, and the
assembly of the trained components into a checkpoint directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from t2i_audit.generator.models.autoencoder import Autoencoder
from t2i_audit.generator.models.component_configs import AutoencoderConfig, SamplerParams
from t2i_audit.generator.models.pictoworld_clip import load_clip
from t2i_audit.generator.models.safetensors_io import load_safetensors_into
from t2i_audit.generator.training.presets import STAGES, Preset
from t2i_audit.generator.training.stage_configs import stage_config
from t2i_audit.generator.training.training_state import stage_meta_path
from t2i_audit.world.bias import BiasSpec


def stage_done(out: Path, stage: str, steps: int) -> bool:
    meta = stage_meta_path(out, stage)
    return meta.is_file() and json.loads(meta.read_text()).get("step", 0) >= steps and (
        out / stage / "model.safetensors").is_file()


def load_autoencoder(d: str | Path) -> Autoencoder:
    d = Path(d)
    ae = Autoencoder(AutoencoderConfig.load(d / "config.json"))
    load_safetensors_into(ae, d / "model.safetensors")
    return ae.eval()


FINETUNABLE = ("prior", "decoder")
_STAGE_PREFIXES = tuple(f"{s}_" for s in FINETUNABLE)  # index keys that describe one stage's training


def seed_from_checkpoint(out: Path, src: Path, stages: tuple[str, ...], teacher: Path | None = None) -> None:
    """Prepare ``out`` to fine-tune ``stages`` (prior and/or decoder) of checkpoint ``src``:
    copy the components that are not trained here, and record the source in ``init.json``
    (its id, steps and wall time carry into the new index), with the checkpoint ``teacher`` whose
    decoder a continued distillation learns from, where given."""
    import shutil

    from t2i_audit.errors import InputError

    bad = [s for s in stages if s not in FINETUNABLE]
    if bad:
        raise InputError(f"--init-from fine-tunes {' and '.join(FINETUNABLE)} only; {', '.join(bad)} "
                         "would change the frozen inputs the other stages were trained on")
    index = json.loads((src / "index.json").read_text())
    init_path = out / "init.json"
    if init_path.is_file() and json.loads(init_path.read_text()).get("id") != index["id"]:
        raise InputError(f"{out} was started from {json.loads(init_path.read_text())['id']}, "
                         f"not {index['id']}; choose a new --out")
    for stage in STAGES:
        if not (out / stage / "model.safetensors").is_file():
            shutil.copytree(src / stage, out / stage)
    training = index.get("training", {})
    earlier = json.loads(init_path.read_text()).get("finetuned", []) if init_path.is_file() else []
    init = {"id": index["id"], "path": str(src), "finetuned": sorted({*earlier, *stages}),
            "steps": training.get("steps", {}), "wall_time_s": training.get("wall_time_s", {})}
    if "init_from" in training:  # the source was itself fine-tuned: keep the whole chain
        init["init_from"] = training["init_from"]
    # how the source trained its prior and decoder: a stage copied unchanged keeps this record
    init["stage_training"] = {k: v for k, v in training.items() if k.startswith(_STAGE_PREFIXES)}
    if teacher is not None:
        init["distill_teacher"] = json.loads((teacher / "index.json").read_text())["id"]
    init_path.write_text(json.dumps(init, indent=2) + "\n")


def _distill(out: Path, src: Path | None, preset: Preset, spec: BiasSpec, progress: bool,
             teacher_from: Path | None = None) -> None:
    """The decoder stage of a preset with ``decoder_distill_guidance``: distil the source
    checkpoint's decoder (the teacher) at that guidance scale. Where the source decoder is itself
    distilled at that scale, the distillation continues from it, and the plain teacher comes from
    ``teacher_from`` (a checkpoint directory, recorded in init.json by seed_from_checkpoint)."""
    from t2i_audit.errors import InputError
    from t2i_audit.generator.models.unet import load_decoder
    from t2i_audit.generator.training.train_distill import distill_guidance

    scale = preset.decoder_distill_guidance
    if src is None:
        raise InputError(f"preset {preset.name!r} distils the decoder (decoder_distill_guidance "
                         f"{scale:g}): give the teacher with --init-from")
    clip = load_clip(out / "clip")
    ctx = clip.config.context_length
    source = load_decoder(src / "decoder", ctx)
    student = None
    if getattr(source.config, "distilled_guidance", 0.0):
        if teacher_from is None:
            raise InputError(f"{src}'s decoder is already distilled (guidance "
                             f"{source.config.distilled_guidance:g}): to continue its distillation, "
                             "give the plain teacher decoder's checkpoint with --teacher")
        student, source = source, load_decoder(teacher_from / "decoder", ctx)
    elif teacher_from is not None:
        raise InputError(f"--teacher is for continuing a distilled decoder; {src}'s decoder is plain "
                         "and is itself the teacher")
    distill_guidance(out, clip, load_autoencoder(out / "autoencoder"), source, stage_config(preset, "distill"),
                     spec=preset.decoder_spec(spec), progress=progress, student=student)


def recorded_preset(out: Path) -> tuple[str, str] | None:
    """(name, hash) of the preset ``out`` was last trained with: the last deliberate change in
    preset_changes.json, else the hash its stages' train states record (a checkpoint from before
    they recorded one: the hash of its preset.json); None for a directory not trained yet."""
    changes = out / PRESET_CHANGES
    if changes.is_file():
        last = json.loads(changes.read_text())[-1]["to"]
        return last["name"], last["hash"]
    metas = [json.loads(stage_meta_path(out, s).read_text()) for s in STAGES if stage_meta_path(out, s).is_file()]
    if not metas:
        return None
    saved = Preset.load(out / "preset.json") if (out / "preset.json").is_file() else None
    hashes = [m["preset_hash"] for m in metas if m.get("preset_hash")]
    if hashes:
        return (saved.name if saved is not None else "?"), hashes[-1]
    return None if saved is None else (saved.name, saved.hash)


PRESET_CHANGES = "preset_changes.json"


def check_preset(out: Path, preset: Preset, allow_change: bool, log=print) -> None:
    """Refuse to resume ``out`` with another preset than it was trained with (an InputError naming
    both hashes), unless ``allow_change``: then the change is appended to preset_changes.json,
    with the step each stage had reached, and index.json records it."""
    from t2i_audit.errors import InputError

    before = recorded_preset(out)
    if before is None or before[1] == preset.hash:
        return
    name, old = before
    if not allow_change:
        raise InputError(f"{out} was trained with preset {name!r} (hash {old}); preset {preset.name!r} has "
                         f"hash {preset.hash}: resume with the same preset, choose a new --out, or pass "
                         "--allow-preset-change to change the recipe deliberately (recorded in index.json)")
    path = out / PRESET_CHANGES
    changes = json.loads(path.read_text()) if path.is_file() else []
    steps = {s: json.loads(stage_meta_path(out, s).read_text()).get("step") for s in STAGES
             if stage_meta_path(out, s).is_file()}
    changes.append({"from": {"name": name, "hash": old}, "to": {"name": preset.name, "hash": preset.hash},
                    "steps": steps})
    path.write_text(json.dumps(changes, indent=2) + "\n")
    log(f"preset changed deliberately: {name} ({old}) -> {preset.name} ({preset.hash}) at steps {steps}")


def train_all(out: str | Path, preset: Preset, *, spec: BiasSpec | None = None,
              stages: tuple[str, ...] = STAGES, progress: bool = True, log=print,
              init_from: str | Path | None = None, teacher_from: str | Path | None = None,
              allow_preset_change: bool = False) -> Path:
    """Run the requested stages in order (completed stages are skipped, interrupted ones resume)
    and assemble ``out`` into a loadable checkpoint once all four components exist.

    ``init_from`` (a checkpoint directory or ``"bundled"``) fine-tunes: the trained stages (prior
    and/or decoder) start from that checkpoint's weights and the others are copied from it.
    Resuming ``out`` with another preset is refused unless ``allow_preset_change`` (check_preset)."""
    from t2i_audit.generator.training.train_autoencoder import train_autoencoder
    from t2i_audit.generator.training.train_clip import train_clip
    from t2i_audit.generator.training.train_decoder import train_decoder
    from t2i_audit.generator.training.train_prior import train_prior

    spec = spec or BiasSpec.load()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_preset(out, preset, allow_preset_change, log)
    (out / "preset.json").write_text(preset.to_json() + "\n")
    (out / "bias_spec.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    src = teacher = None
    if teacher_from is not None and init_from is None:
        from t2i_audit.errors import InputError

        raise InputError("--teacher continues the distilled decoder of an --init-from checkpoint; give --init-from")
    if init_from is not None:
        from t2i_audit.generator.pipeline.unclip_pipeline import checkpoint_dir

        src = checkpoint_dir(init_from)
        teacher = checkpoint_dir(teacher_from) if teacher_from is not None else None
        seed_from_checkpoint(out, src, stages, teacher)
    for stage in STAGES:
        if stage not in stages:
            continue
        steps = preset.steps[stage]
        if stage_done(out, stage, steps):
            log(f"{stage}: done ({steps} steps), skipping")
            continue
        init = {"init_weights": src / stage / "model.safetensors"} if src is not None else {}
        if stage == "clip":
            train_clip(out, stage_config(preset, "clip"), spec=spec, progress=progress)
        elif stage == "autoencoder":
            train_autoencoder(out, stage_config(preset, "autoencoder"), spec=spec, progress=progress)
        elif stage == "prior":
            train_prior(out, load_clip(out / "clip"), stage_config(preset, "prior"), spec=spec,
                        progress=progress, **init)
        elif stage == "decoder" and preset.decoder_distill_guidance:
            _distill(out, src, preset, spec, progress, teacher)
        elif stage == "decoder":
            train_decoder(out, load_clip(out / "clip"), load_autoencoder(out / "autoencoder"),
                          stage_config(preset, "decoder"), spec=preset.decoder_spec(spec), progress=progress,
                          **init)
    if all((out / s / "model.safetensors").is_file() for s in STAGES):
        assemble(out, preset, spec)
    return out


def stage_record(preset: Preset, spec: BiasSpec) -> dict:
    """How ``preset`` trains the prior and decoder, as index keys (``decoder_*``, ``prior_*``): the
    object weight and scene mix always where set, the other knobs where they differ from the
    original training."""
    # a distilled decoder's loss is the teacher's guided output, unweighted: no object/skin weight
    distilled = bool(preset.decoder_distill_guidance)
    record = {} if distilled else {"decoder_object_weight": preset.object_weight}
    decoder_spec = preset.decoder_spec(spec)
    if decoder_spec.hash != spec.hash:  # the decoder's people came from another spec than CLIP's and the prior's
        record["decoder_bias_spec"] = {"name": decoder_spec.name, "hash": decoder_spec.hash}
    if preset.decoder_kind_weights:
        record["decoder_kind_weights"] = preset.decoder_kind_weights
    # index key -> preset field
    keys = [("decoder_data_seed", "decoder_data_seed"), ("prior_kind_weights", "prior_kind_weights"),
            ("prior_data_seed", "prior_data_seed"), ("decoder_distill_guidance", "decoder_distill_guidance")]
    if not distilled:
        keys.append(("decoder_skin_weight", "skin_weight"))
    for key, field_name in keys:
        if getattr(preset, field_name) != getattr(Preset, field_name):
            record[key] = getattr(preset, field_name)
    return record


def weights_hash(directory: Path) -> str:
    h = hashlib.sha256()
    for stage in STAGES:
        h.update((directory / stage / "model.safetensors").read_bytes())
    return h.hexdigest()[:12]


def assemble(out: Path, preset: Preset, spec: BiasSpec, defaults: SamplerParams | None = None) -> None:
    """Write sampler.json and index.json so that ``out`` loads with ``Pipeline.load``."""
    from t2i_audit import __version__
    from t2i_audit.generator.pipeline.unclip_pipeline import CHECKPOINT_FORMAT

    init = json.loads((out / "init.json").read_text()) if (out / "init.json").is_file() else None
    steps, times = {}, {}
    for stage in STAGES:
        meta_path = out / f"train_state_{stage}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        steps[stage], times[stage] = meta.get("step"), meta.get("elapsed_s")
        if init is not None:  # totals: the source checkpoint's training plus this fine-tuning
            before_s, before_t = init["steps"].get(stage), init["wall_time_s"].get(stage)
            steps[stage] = before_s if steps[stage] is None else (before_s or 0) + steps[stage]
            times[stage] = before_t if times[stage] is None else round((before_t or 0) + times[stage], 1)
    (defaults or SamplerParams()).save(out / "sampler.json")
    wh = weights_hash(out)
    index = {
        "format": CHECKPOINT_FORMAT, "package_version": __version__, "preset": preset.name,
        "components": list(STAGES), "weights_hash": wh, "id": f"pictoworld-unclip-{preset.name}@{wh}",
        "training": {"bias_spec": {"name": spec.name, "hash": spec.hash}, "steps": steps,
                     "batch": preset.batch, "wall_time_s": times,
                     "data": "PictoWorld renders streamed by scene index (renderer version 1)"},
    }
    if init is not None:
        index["training"]["init_from"] = {k: init[k] for k in ("id", "finetuned", "steps", "init_from",
                                                                      "distill_teacher")
                                          if k in init}
    if (out / PRESET_CHANGES).is_file():
        index["training"]["preset_changes"] = json.loads((out / PRESET_CHANGES).read_text())
    for stage in FINETUNABLE:  # a stage copied from the source keeps the source's record, not this preset's
        copied = init is not None and stage not in init["finetuned"]
        record = init.get("stage_training", {}) if copied else stage_record(preset, spec)
        index["training"].update({k: v for k, v in record.items() if k.startswith(f"{stage}_")})
    (out / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def bundle(src: str | Path, dst: str | Path | None = None) -> Path:
    """Copy a trained checkpoint's components into the package (fp16 safetensors), as shipped.

    Only the four component folders, sampler.json and index.json are copied; training state and
    logs stay behind. Loading casts the fp16 weights back to fp32.
    """
    import shutil

    import torch

    from t2i_audit.generator.models.pictoworld_clip import bundled_dir
    from t2i_audit.generator.models.safetensors_io import load_state, save_safetensors

    src, dst = Path(src), Path(dst) if dst is not None else bundled_dir()
    if not (src / "index.json").is_file():
        from t2i_audit.errors import InputError

        raise InputError(f"{src}: not an assembled checkpoint (index.json missing); finish `t2i-audit train`")
    if dst.exists():
        shutil.rmtree(dst)
    for stage in STAGES:
        (dst / stage).mkdir(parents=True)
        for f in (src / stage).glob("*.json"):
            shutil.copy2(f, dst / stage / f.name)
        save_safetensors(load_state(src / stage / "model.safetensors"), dst / stage / "model.safetensors",
                         torch.float16)
    shutil.copy2(src / "sampler.json", dst / "sampler.json")
    index = json.loads((src / "index.json").read_text())
    index["weights_dtype"] = "float16"
    index["weights_hash"] = weights_hash(dst)
    index["id"] = f"pictoworld-unclip-{index.get('preset', 'default')}@{index['weights_hash']}"
    (dst / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return dst
