"""Hostile inputs, second round (issue 40): decompression bombs, YAML alias bombs, oversized suites,
folder paths that leave the folder, foreign diffusers pipelines, stale scores, foreign baselines,
HTML in Markdown and a full disk.

Every row of the issue's table goes through the CLI here and must end in exit code 2, exactly one
line on stderr (``error: ...`` naming the input), no traceback, and nothing new where nothing should
be: the watched path is absent afterwards, or byte-for-byte what it was.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from t2i_audit.cli import main
from test_bad_inputs import (  # noqa: F401 - run_factory is a fixture shared with the first round
    SUITE,
    Case,
    _random_clip,
    _sample,
    _suite,
    make_run,
    run_factory,
    snapshot,
    write_generator,
)

PROMPTS = [f"a drawing of a {c} {s}" for c in ("red", "blue") for s in ("circle", "square")]


def bomb_png(path: Path, w: int = 30000, h: int = 30000) -> Path:
    """A PNG whose header says w x h (2.7 GB decoded at 30000 x 30000) in a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def folder(tmp: Path, path_of=lambda k, d: f"img{k}.png", name: str = "imgs") -> Path:
    """An image folder serving the tiny suite's 8 (prompt, seed) pairs; ``path_of(k, dir)`` is the CSV
    path of row k (the image itself is written at ``dir/img{k}.png``)."""
    d = tmp / name
    d.mkdir()
    rows = ["prompt,seed,path"]
    k = 0
    for p in PROMPTS:
        for seed in (0, 1):
            Image.fromarray(np.full((32, 32, 3), 100 + k, np.uint8)).save(d / f"img{k}.png")
            rows.append(f"{p},{seed},{path_of(k, d)}")
            k += 1
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    return d


def laughs(key: str = "description", levels: int = 9) -> str:
    """``key:`` holding 9 nested levels of 9 aliases each: 9**9 (387 million) strings once expanded."""
    lines = [f"{key}:", '  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"  - &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def billion_laughs() -> str:
    return SUITE.replace('version: "1"\n', 'version: "1"\n' + laughs())


def tiny_ddpm(path: Path) -> Path:
    """A tiny random unconditional DDPMPipeline in the real on-disk format: works, but takes no prompt."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=10)).save_pretrained(path)
    return path


def tiny_sd(path: Path) -> Path:
    from test_adapters import build_tiny_sd

    build_tiny_sd(path)
    return path


def edit_index(d: Path, **changes) -> Path:
    idx = json.loads((d / "model_index.json").read_text())
    idx.update(changes)
    (d / "model_index.json").write_text(json.dumps(idx))
    return d


def score_args(run: Path, *extra: str) -> list[str]:
    return ["score", str(run), "--no-progress", "--no-cache", "--reps", "50", *extra]


# Each builder gets (tmp_path, run) where ``run()`` builds a shared complete run on demand.
def build_cases() -> dict:
    c = {}

    # --- decompression bombs: folder generator, score --reference DIR, audit memorization --train DIR
    def folder_bomb(tmp, run):
        d = folder(tmp)
        bomb_png(d / "img3.png")
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("img3.png", "30000x30000",
                                                                                    "T2I_AUDIT_MAX_IMAGE_PIXELS"))
    c["bomb-png-in-folder-generator"] = folder_bomb

    def folder_bomb_env(tmp, run):  # the limit is configurable: 32x32 passes, 33x32 does not at 1024 px
        d = folder(tmp)
        Image.new("RGB", (33, 32)).save(d / "img0.png")
        os.environ["T2I_AUDIT_MAX_IMAGE_PIXELS"] = "1024"
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("img0.png", "1,056 pixels",
                                                                                    "1,024"))
    c["image-over-a-configured-pixel-limit"] = folder_bomb_env

    def reference_bomb(tmp, run):
        r = run()
        ref = tmp / "ref"
        ref.mkdir()
        for i in range(2):
            Image.new("RGB", (32, 32), (i * 90, 0, 0)).save(ref / f"{i}.png")
        bomb_png(ref / "2.png")
        clip = _random_clip(tmp / "clip")
        return Case(score_args(r, "--metrics", "fd", "--reference", str(ref), "--features", f"bundled-clip:{clip}",
                               "--dist-reps", "0"), r, ("2.png", "30000x30000"))
    c["bomb-png-in-score-reference"] = reference_bomb

    def train_bomb(tmp, run):
        r = run()
        train = tmp / "train"
        train.mkdir()
        Image.new("RGB", (32, 32)).save(train / "a.png")
        bomb_png(train / "b.png")
        return Case(["audit", "memorization", str(r), "--train", str(train)], r, ("b.png", "30000x30000"))
    c["bomb-png-in-memorization-train"] = train_bomb

    # --- YAML bombs and oversized suites
    def suite_case(text, args_of, *names):
        def f(tmp, run):
            p = _suite(tmp, text)
            args = ["suites", "validate", str(p)] if args_of == "validate" else _sample(tmp, p, write_generator(tmp / "g"))
            return Case(args, tmp / "out", (p.name, *names))
        return f

    c["billion-laughs-suite-validate"] = suite_case(billion_laughs(), "validate", "200,000 YAML nodes")
    c["billion-laughs-suite-sample"] = suite_case(billion_laughs(), "sample", "200,000 YAML nodes")
    many = SUITE.replace('version: "1"\n', 'version: "1"\ndescription: [&x lol, ' + ", ".join(["*x"] * 101) + "]\n")
    c["more-than-100-aliases"] = suite_case(many, "validate", "100 YAML aliases")
    c["recursive-alias"] = suite_case(SUITE.replace('version: "1"\n', 'version: "1"\ndescription: &r [*r]\n'),
                                      "validate", "recursive")
    c["suite-larger-than-1-mib"] = suite_case(SUITE.replace('version: "1"\n', 'version: "1"\ndescription: "'
                                                            + "x" * (1 << 20) + '"\n'), "validate", "1,048,576")
    huge = SUITE.replace("images_per_prompt: 2", "images_per_prompt: 1000000000")
    c["billion-images-validate"] = suite_case(huge, "validate", "4,000,000,000 images", "--allow-large")
    c["billion-images-sample"] = suite_case(huge, "sample", "4,000,000,000 images", "--allow-large")
    wide = SUITE.replace("slots:\n", "slots:\n  a: [" + ", ".join(f"a{i}" for i in range(400)) + "]\n  b: ["
                         + ", ".join(f"b{i}" for i in range(400)) + "]\n").replace(
        '"a drawing of a {color} {shape}"', '"a drawing of a {color} {shape} {a} {b}"')
    c["template-slot-product-bomb"] = suite_case(wide, "validate", "640,000", "100,000")

    def rules_bomb(tmp, run):
        r = run()
        rules = tmp / "rules.yaml"
        rules.write_text(laughs("confidence") + "rules:\n  - clip_score >= 0\n")
        return Case(["gate", str(r), "--rules", str(rules)], r, ("rules.yaml", "YAML nodes"))
    c["billion-laughs-gate-rules"] = rules_bomb

    # --- folder paths that leave the folder
    def climbing(tmp, run):
        other = tmp / "runs" / "other" / "images"
        other.mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(other / "x.png")
        d = folder(tmp / "runs", lambda k, d: "../other/images/x.png" if k == 2 else f"img{k}.png", name="mine")
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("../other/images/x.png",
                                                                                    "outside the folder",
                                                                                    "--allow-outside"))
    c["folder-path-climbs-out"] = climbing

    def absolute_outside(tmp, run):
        Image.new("RGB", (32, 32)).save(tmp / "elsewhere.png")
        d = folder(tmp, lambda k, d: str(tmp / "elsewhere.png") if k == 5 else f"img{k}.png")
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("elsewhere.png", "outside"))
    c["folder-absolute-path-outside"] = absolute_outside

    def symlink_out(tmp, run):
        secret = tmp / "secret"
        secret.mkdir()
        Image.new("RGB", (32, 32)).save(secret / "s.png")
        d = folder(tmp)
        (d / "img4.png").unlink()
        (d / "img4.png").symlink_to(secret / "s.png")
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("img4.png", "through a symlink",
                                                                                    "--allow-outside"))
    c["folder-symlink-leaves-folder"] = symlink_out

    # --- diffusers: a broken model_index.json, a pipeline that takes no prompt, a refused load
    def diffusers_case(build, *names):
        def f(tmp, run):
            d = build(tmp)
            return Case(_sample(tmp, _suite(tmp, SUITE), f"diffusers:{d}", "--param", "num_inference_steps=1"),
                        tmp / "out", names)
        return f

    c["diffusers-class-name-is-a-list"] = diffusers_case(
        lambda tmp: edit_index(tiny_ddpm(tmp / "p"), _class_name=["Foo", "Bar"]), "model_index.json", "_class_name",
        "['Foo', 'Bar']")
    c["diffusers-component-class-is-a-list"] = diffusers_case(
        lambda tmp: edit_index(tiny_ddpm(tmp / "p"), unet=["diffusers", ["UNet2DModel"]]), "model_index.json",
        "'unet'", "two strings")
    c["diffusers-unknown-component-class"] = diffusers_case(
        lambda tmp: edit_index(tiny_ddpm(tmp / "p"), unet=["diffusers", "EvilUNet"]), "model_index.json",
        "diffusers.EvilUNet")
    c["diffusers-pipeline-without-prompt"] = diffusers_case(lambda tmp: tiny_ddpm(tmp / "p"), "DDPMPipeline",
                                                            "not a text-to-image pipeline")

    def weights_gone(tmp):
        d = tiny_sd(tmp / "sd")
        for f in (d / "unet").glob("*.safetensors"):
            f.unlink()
        return d
    c["diffusers-load-refused-leaves-nothing"] = diffusers_case(weights_gone, "cannot load the pipeline offline")

    # --- scores that belong to the run; a baseline of another suite
    def stale_scores(tmp, run):
        r = run()
        ok = CliRunner().invoke(main, score_args(r, "--metrics", "skills"))
        assert ok.exit_code == 0, ok.output
        failed = CliRunner().invoke(main, score_args(r, "--metrics", "clip_score", "--clip",
                                                     f"bundled-clip:{tmp / 'no-such-clip'}"))
        assert failed.exit_code == 2, failed.output
        rules = tmp / "rules.yaml"
        rules.write_text("rules:\n  - skills >= 0\n")
        return Case(["gate", str(r), "--rules", str(rules)], r, ("stale", "failed", "no-such-clip"))
    c["gate-after-a-failed-rescore"] = stale_scores

    def foreign_baseline(tmp, run):
        r = run()
        other = make_run(tmp / "other", SUITE.replace("name: tiny", "name: other"))
        for x in (r, other):
            assert CliRunner().invoke(main, score_args(x, "--metrics", "skills")).exit_code == 0
        rules = tmp / "rules.yaml"
        rules.write_text("rules:\n  - skills >= baseline - 0.5\n")
        return Case(["gate", str(r), "--rules", str(rules), "--baseline", str(other)], r,
                    ("--baseline", "'other'", "'tiny'", "same suite"))
    c["gate-baseline-of-another-suite"] = foreign_baseline

    return c


CASES = build_cases()




@pytest.fixture(autouse=True)
def _restore_pixel_limit():
    old = os.environ.get("T2I_AUDIT_MAX_IMAGE_PIXELS")
    yield
    if old is None:
        os.environ.pop("T2I_AUDIT_MAX_IMAGE_PIXELS", None)
    else:
        os.environ["T2I_AUDIT_MAX_IMAGE_PIXELS"] = old


def invoke(args: list[str]):
    r = CliRunner().invoke(main, args)
    return r, [ln for ln in r.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_exits_2_with_one_line_and_leaves_nothing(name, tmp_path, run_factory):  # noqa: F811 - the fixture imported from test_bad_inputs
    case = CASES[name](tmp_path, run_factory)
    before = snapshot(case.watch)
    r, lines = invoke(case.args)
    assert "Traceback" not in r.output, r.output
    assert r.exit_code == 2, (r.exit_code, r.output, repr(r.exception))
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    for s in case.names:
        assert s in lines[0], (s, lines[0])
    assert snapshot(case.watch) == before, "the command left files behind"


def test_the_catalogue_covers_every_row_of_the_issue():
    assert len(CASES) == 23, sorted(CASES)


# ------------------------------------------------------------------ the limits are limits, not bans
def test_within_the_limits_everything_still_works(tmp_path):
    """--allow-large and --allow-outside accept what the defaults refuse; a suite under the limits
    validates; a 32x32 folder passes the pixel limit."""
    huge = _suite(tmp_path, SUITE.replace("images_per_prompt: 2", "images_per_prompt: 1000000"))
    r, lines = invoke(["suites", "validate", str(huge), "--allow-large"])
    assert r.exit_code == 0 and "4000000 images" in r.output and "--allow-large" in r.output, r.output
    other = tmp_path / "runs" / "other"
    other.mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(other / "x.png")
    d = folder(tmp_path / "runs", lambda k, d: "../other/x.png" if k == 2 else f"img{k}.png", name="mine")
    r, _ = invoke(_sample(tmp_path, _suite(tmp_path, SUITE, "ok.yaml"), f"folder:{d}", "--allow-outside"))
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "complete"


def test_a_succeeding_rescore_clears_the_failure(tmp_path):
    """After the failed re-score the gate refuses; a successful score makes the results current again."""
    r = make_run(tmp_path / "run")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - skills >= 0\n")
    assert invoke(score_args(r, "--metrics", "skills"))[0].exit_code == 0
    res, lines = invoke(score_args(r, "--metrics", "clip_score", "--clip", f"bundled-clip:{tmp_path / 'gone'}"))
    assert res.exit_code == 2 and len(lines) == 1
    marker = json.loads((r / "scores" / "incomplete.json").read_text())
    assert marker["status"] == "failed" and "gone" in marker["evaluator"]
    g, lines = invoke(["gate", str(r), "--rules", str(rules)])
    assert g.exit_code == 2 and "clip" in lines[0] and "gone" in lines[0]
    assert invoke(score_args(r, "--metrics", "skills"))[0].exit_code == 0
    assert not (r / "scores" / "incomplete.json").exists()
    g, _ = invoke(["gate", str(r), "--rules", str(rules)])
    assert g.exit_code == 0 and "gate: PASS" in g.output


def test_foreign_baseline_is_an_error_in_junit_too(tmp_path):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", SUITE.replace("name: tiny", "name: other"))
    for x in (a, b):
        assert invoke(score_args(x, "--metrics", "skills"))[0].exit_code == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - skills >= baseline - 0.5\n")
    junit = tmp_path / "ci" / "gate.xml"
    r, lines = invoke(["gate", str(a), "--rules", str(rules), "--baseline", str(b), "--junit", str(junit)])
    assert r.exit_code == 2 and len(lines) == 1
    import xml.etree.ElementTree as ET

    root = ET.parse(junit).getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0"
    err = root.find(".//testcase/error")
    assert err is not None and "same suite" in err.get("message") and "'other'" in err.get("message")


def test_refused_diffusers_load_prints_one_line_in_a_real_process(tmp_path):
    """Out of process, so that diffusers' own loggers and progress bars (bound to the real stderr) are
    seen: the refused load prints exactly the one error line and leaves no run directory."""
    d = tiny_sd(tmp_path / "sd")
    for f in (d / "vae").glob("*.safetensors"):
        f.write_bytes(b"\0" * 64)  # a corrupt weights file: diffusers starts loading, then fails
    suite = _suite(tmp_path, SUITE)
    p = subprocess.run([sys.executable, "-m", "t2i_audit", *_sample(tmp_path, suite, f"diffusers:{d}")],
                       capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: diffusers:"), p.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ a full disk
def test_disk_full_mid_run_names_the_file_and_resumes_identically(tmp_path, monkeypatch):
    """ENOSPC from fsync after the third image: exit 2, one line saying "disk full" and naming the
    file (not "fix its permissions"); the re-run resumes to the images of an uninterrupted run."""
    suite = _suite(tmp_path, SUITE)
    gen = write_generator(tmp_path / "g")
    ref = tmp_path / "ref"
    r, _ = invoke(["sample", "--suite", str(suite), "--out", str(ref), "--generator", gen, "--no-progress",
                   "--batch-size", "1"])
    assert r.exit_code == 0, r.output
    real_fsync, calls = os.fsync, {"n": 0}

    def full(fd):
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    args = ["sample", "--suite", str(suite), "--out", str(tmp_path / "out"), "--generator", gen, "--no-progress",
            "--batch-size", "1"]
    r, lines = invoke(args)
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "disk full" in lines[0] and str(tmp_path / "out") in lines[0] and "permissions" not in lines[0], lines
    monkeypatch.setattr(os, "fsync", real_fsync)
    r, _ = invoke(args)
    assert r.exit_code == 0, r.output
    assert snapshot(tmp_path / "out" / "images") == snapshot(ref / "images")


@pytest.mark.parametrize("code,cause", [(errno.ENOSPC, "disk full"), (errno.EACCES, "permission denied"),
                                        (errno.EROFS, "read-only file system"), (errno.EDQUOT, "quota")])
def test_io_error_line_names_file_and_cause(code, cause):
    from t2i_audit.cli import os_error_line

    line = os_error_line(OSError(code, os.strerror(code), "/runs/x/images/a.png"))
    assert line.startswith("/runs/x/images/a.png: ") and cause in line
    assert ("permissions" in line) == (code == errno.EACCES)
