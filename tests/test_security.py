"""Untrusted weights: no loader that takes a user path ever runs a pickle.

Every payload below would create a marker file if it were unpickled (its ``__reduce__`` calls
``open(marker, "w")``). Each loader must refuse it with a one-line reason, and the marker must never
exist. Payloads come in both pickle formats: a raw pickle stream and torch.save's zip container.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from test_bad_inputs import make_run  # noqa: E402  (a tiny complete run)

PICKLE_SUFFIXES = (".pt", ".bin", ".ckpt", ".pth")


class _Payload:
    """Unpickling this calls open(marker, 'w'): a file appears if anything unpickles it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_payload(path: Path, marker: Path, zip_format: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"state_dict": {"weight": _Payload(marker)}}
    if zip_format:
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj))
    return path


@pytest.fixture()
def marker(tmp_path):
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a pickle payload was executed"


def one_line_exit_2(args: list[str]) -> str:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


def test_payload_is_live(tmp_path):
    """Negative control: plain pickle.load of the payload does create the marker, so the other tests'
    'marker absent' assertions can fail."""
    m = tmp_path / "PWNED"
    p = write_payload(tmp_path / "x.pt", m)
    pickle.loads(p.read_bytes())
    assert m.exists()


# ------------------------------------------------------------------ generator checkpoints
@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
@pytest.mark.parametrize("zip_format", [False, True])
def test_generator_weights_refuse_pickle_suffixes_unopened(tmp_path, marker, suffix, zip_format):
    from t2i_audit.generator.models.safetensors_io import load_state

    f = write_payload(tmp_path / f"model{suffix}", marker, zip_format)
    with pytest.raises(InputError, match="refusing to load a pickle-format file.*arbitrary code"):
        load_state(f)


def test_generator_weights_refuse_a_pickle_renamed_safetensors(tmp_path, marker):
    from t2i_audit.generator.models.safetensors_io import load_state

    for zip_format in (False, True):
        f = write_payload(tmp_path / "model.safetensors", marker, zip_format)
        with pytest.raises(InputError, match="not a readable safetensors file"):
            load_state(f)


def _fake_checkpoint(root: Path, marker: Path, component: str) -> Path:
    """A checkpoint directory whose ``component`` weights are a pickle (renamed or beside configs)."""
    from t2i_audit.generator.pipeline.unclip_pipeline import CHECKPOINT_FORMAT

    (root / "index.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "index.json").write_text(f'{{"format": "{CHECKPOINT_FORMAT}"}}')
    write_payload(root / component / "model.safetensors", marker, zip_format=True)
    return root


def test_pictoworld_clip_and_checkpoint_loaders_refuse_pickles(tmp_path, marker):
    """bundled-clip:DIR, checkpoint:DIR and the Pipeline loader read model.safetensors only; a pickle
    there (or a pytorch_model.bin beside it) is never unpickled."""
    from t2i_audit.generator.models.component_configs import ClipConfig
    from t2i_audit.generator.models.pictoworld_clip import load_clip
    from t2i_audit.generator.pipeline.unclip_pipeline import Pipeline
    from t2i_audit.generator.training.presets import get_preset

    clip_dir = tmp_path / "ck" / "clip"
    clip_dir.mkdir(parents=True)
    ClipConfig.from_dict(get_preset("tiny").clip).save(clip_dir / "config.json")
    from t2i_audit.generator.models.tokenizer import CompactTokenizer, world_vocabulary_texts

    (clip_dir / "tokenizer.json").write_text(
        CompactTokenizer.build(world_vocabulary_texts(), context_length=16).config.to_json())
    _fake_checkpoint(tmp_path / "ck", marker, "clip")
    write_payload(clip_dir / "pytorch_model.bin", marker)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_clip(clip_dir)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        Pipeline.load(tmp_path / "ck")
    line = one_line_exit_2(["score", str(make_run(tmp_path / "run")), "--metrics", "clip_score", "--clip",
                            f"bundled-clip:{tmp_path / 'ck'}", "--no-progress", "--no-cache"])
    assert "not a readable safetensors file" in line
    (clip_dir / "model.safetensors").unlink()
    with pytest.raises(InputError, match="weights file missing"):
        load_clip(clip_dir)  # the .bin beside it is not a fallback


def test_open_clip_weights_file_refuses_pickled_code(tmp_path, marker):
    """open_clip:ARCH:FILE reads .pt/.bin with torch.load(weights_only=True), which refuses the payload;
    the refusal is a one-line InputError naming the reason, not an UnpicklingError traceback."""
    from t2i_audit.evals.features.extractors import load_open_clip

    for suffix, zip_format in ((".pt", True), (".bin", False), (".pth", True)):
        f = write_payload(tmp_path / f"w{suffix}", marker, zip_format)
        with pytest.raises(InputError, match="refused: the file pickles objects other than tensors"):
            load_open_clip("RN50", str(f))


def test_hf_clip_folder_with_only_a_pickle_is_refused(tmp_path, marker):
    from evals_fixtures import tiny_hf_clip
    from t2i_audit.evals.features.extractors import load_hf_clip

    d = tiny_hf_clip(tmp_path / "hf")
    for f in d.glob("*.safetensors"):
        f.unlink()
    write_payload(d / "pytorch_model.bin", marker, zip_format=True)
    with pytest.raises(InputError, match="no .safetensors weights.*unpickling can run code"):
        load_hf_clip(str(d))
    # use_safetensors=True also stops transformers itself from reaching for the .bin
    from transformers import CLIPModel

    with pytest.raises(OSError):
        CLIPModel.from_pretrained(str(d), local_files_only=True, use_safetensors=True)


def test_inception_weights_refuse_pickled_code(tmp_path, marker):
    from t2i_audit.evals.features.inception import read_state_dict

    for suffix, zip_format in ((".pth", True), (".pt", False), (".ckpt", True)):
        f = write_payload(tmp_path / f"inception{suffix}", marker, zip_format)
        with pytest.raises(InputError, match="not a safetensors file or a plain state dict.*Weights only load failed"):
            read_state_dict(f)


def test_diffusers_pipeline_with_pickle_weights_is_refused(tmp_path, marker):
    """diffusers:DIR loads with use_safetensors=True: components saved as .bin are refused (with the
    reason) instead of being read by torch.load."""
    from t2i_audit.evals.adapters.registry import load_generator
    from test_adapters import build_tiny_sd

    d = tmp_path / "sd"
    build_tiny_sd(d)
    for f in list(d.rglob("*.safetensors")):
        name = "pytorch_model.bin" if f.parent.name == "text_encoder" else "diffusion_pytorch_model.bin"
        f.unlink()
        write_payload(f.parent / name, marker, zip_format=True)
    g = load_generator(f"diffusers:{d}")
    with pytest.raises(InputError, match="safetensors only.*pickle.*can run code"):
        g(["a red circle"], [0], {"num_inference_steps": 1, "height": 16, "width": 16, "device": "cpu"})


def test_cli_refuses_pickled_evaluator_weights_in_one_line(tmp_path, marker):
    """Through `t2i-audit score`: a crafted open_clip weights file exits 2 with one line on stderr."""
    run = make_run(tmp_path / "run")
    f = write_payload(tmp_path / "w.pt", marker, zip_format=True)
    line = one_line_exit_2(["score", str(run), "--metrics", "clip_score", "--clip", f"open_clip:RN50:{f}",
                            "--no-progress", "--no-cache"])
    assert "refused" in line and "weights_only" in line


def test_no_source_file_calls_an_unsafe_loader():
    """Static guard: every torch.load in the package passes weights_only=True, no pickle.load/np.load
    with allow_pickle=True, no yaml.load without SafeLoader."""
    import re

    root = Path(__file__).resolve().parents[1] / "src" / "t2i_audit"
    bad = []
    for p in root.rglob("*.py"):
        text = p.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start():m.start() + 200].split("\n\n")[0]
            if "weights_only=True" not in call:
                bad.append(f"{p.name}: {call[:60]}")
        for pat in (r"pickle\.loads?\(", r"allow_pickle\s*=\s*True", r"yaml\.load\((?![^)]*SafeLoader)",
                    r"yaml\.unsafe_load", r"dill\.", r"joblib\.load"):
            bad += [f"{p.name}: {m.group(0)}" for m in re.finditer(pat, text)]
    assert not bad, bad


def test_every_file_image_and_user_yaml_goes_through_the_limits():
    """Static guard (issue 40): images are opened through core.images (pixel limit before decoding)
    and YAML through core.safe_yaml (size and alias limits), except the listed in-memory or packaged
    sources."""
    import re

    root = Path(__file__).resolve().parents[1] / "src" / "t2i_audit"
    allowed = {("core/images.py", "Image.open(path)"),  # the helper itself
               ("world/corrupt.py", "Image.open(buf)"),  # an in-memory PNG round trip
               ("evals/scoring/reference.py", "Image.open(io.BytesIO(blobs[i]))"),  # PictoWorld renders
               ("audits/probes/attribute_probes.py", "yaml.safe_load(text)"),  # a packaged probe file
               ("commands/sample.py", "yaml.safe_load(value)")}  # one --param scalar
    found = set()
    for p in root.rglob("*.py"):
        rel = p.relative_to(root).as_posix()
        for line in p.read_text().splitlines():
            code = line.split("#")[0]
            if "``" in code:  # docstring prose
                continue
            for m in re.finditer(r"(Image\.open|yaml\.safe_load|yaml\.load)\([^)]*\)?\)?", code):
                found.add((rel, m.group(0)))
    assert ('core/images.py', 'Image.open(path)') in found  # the scan sees calls
    assert found <= allowed, sorted(found - allowed)
