"""The README's shell blocks for real models run as written against tiny real-format models
(offline): a random diffusers StableDiffusionPipeline stands in for /models/sd15, a folder of
planned images for /exports/api_images, and a random transformers CLIP for the open_clip weights.
Only paths and CPU-sized counts are substituted (SUBSTITUTE, each checked to occur), and the
labelling step's human is a CSV written from the drawn sample."""

from __future__ import annotations

import csv
import re
import shlex
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from t2i_audit.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Audit your own model"


def shell_commands(text: str, section: str = SECTION) -> list[list[str]]:
    """The ``t2i-audit`` commands of the ```bash blocks in ``section`` of a markdown text, as argv
    lists (line continuations joined, comments dropped)."""
    body = text.split(section, 1)[1]
    body = body.split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"^```bash\n(.*?)^```", body, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                assert argv[0] == "t2i-audit", line
                out.append(argv[1:])
    return out


def test_shell_commands_parse():
    md = "## A\n```bash\nt2i-audit x \\\n  --y 1  # note\n# only a comment\n```\n## B\n```bash\nt2i-audit z\n```\n"
    assert shell_commands(md, "## A") == [["x", "--y", "1"]]


@pytest.fixture
def models(tmp_path):
    from evals_fixtures import tiny_hf_clip
    from test_adapters import build_tiny_sd

    build_tiny_sd(tmp_path / "sd15")
    tiny_hf_clip(tmp_path / "clip")
    folder = tmp_path / "api_images"
    folder.mkdir()
    res = CliRunner().invoke(main, ["suites", "plan", "compositional", "--out", str(folder / "manifest.csv")])
    assert res.exit_code == 0, res.output
    (folder / "images").mkdir()
    with open(folder / "manifest.csv") as f:
        for i, row in enumerate(csv.DictReader(f)):  # a closed model's exports: any images
            Image.new("RGB", (16, 16), (i % 256, 80, 160)).save(folder / row["path"])
    return tmp_path


def test_audit_your_own_model_blocks_run_as_written(models, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    substitute = {  # README text -> what runs here
        "/models/sd15": str(models / "sd15"),
        "/exports/api_images": str(models / "api_images"),
        "open_clip:ViT-B-32:/weights/vit_b32.safetensors": f"hf-clip:{models / 'clip'}",
        "--images-per-prompt 8": "--images-per-prompt 1 --limit 6",  # CPU-sized
        "num_inference_steps=30": "num_inference_steps=2",
        "dtype=float16": "dtype=float32",  # the block is for a GPU; half precision on CPU is not its point
    }
    text = README.read_text()
    for old in substitute:
        assert old in text, f"README no longer says {old!r}: update this test's substitutions"
    commands = shell_commands(text)
    assert [c[0] for c in commands] == ["sample", "sample", "score", "label", "audit", "audit", "report"]
    outputs = {}
    for argv in commands:
        line = shlex.join(argv)
        for old, new in substitute.items():
            line = line.replace(old, new)
        argv = shlex.split(line)
        if argv[:2] == ["audit", "bias"]:  # the human step: label the drawn images, save labels.csv
            with open(tmp_path / "runs" / "sd15" / "labels" / "sample.csv") as f:
                ids = [r["image_id"] for r in csv.DictReader(f)]
            (tmp_path / "labels.csv").write_text("image_id,attribute,label\n" + "".join(
                f"{i},skin,{('light', 'medium', 'dark')[k % 3]}\n" for k, i in enumerate(ids)))
        res = CliRunner().invoke(main, argv)
        if res.exception and not isinstance(res.exception, SystemExit):  # shown on failure
            traceback.print_exception(res.exception)
        assert res.exit_code == 0, (line, res.output, res.exception)
        outputs[" ".join(argv[:2])] = res.output
    assert "probes: real-background, real-age-group, real-clothing-colour" in outputs["audit diversity"]
    for attr in ("background", "age", "clothing"):
        assert any(ln.startswith(attr) for ln in outputs["audit diversity"].splitlines()), outputs["audit diversity"]
    assert (tmp_path / "runs" / "sd15" / "report" / "report.html").is_file()
    assert (tmp_path / "runs" / "api" / "manifest.parquet").is_file()
