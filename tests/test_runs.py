"""Generation runs: layout, resume after SIGKILL, no double generation, locks, identity checks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.core.io import Journal
from t2i_audit.errors import InputError
from t2i_audit.evals.runs.locking import RunLock, RunLockedError
from t2i_audit.evals.runs.sampling import MANIFEST_COLUMNS, RunMismatchError, SampleConfig, load_run, sample

# A tiny deterministic generator: renders a PictoWorld scene chosen by (prompt, seed). It logs every
# image it draws to $GEN_LOG, can SIGKILL its own process at call $GEN_KILL_AT (before drawing), and
# sleeps $GEN_SLEEP seconds per image so an outside kill lands mid-run.
GEN_SOURCE = '''
import os, signal, time, zlib
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng

_SPEC = BiasSpec.load()
_CALLS = [0]

def draw(prompts, seeds, params):
    _CALLS[0] += 1
    if _CALLS[0] == int(os.environ.get("GEN_KILL_AT", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(os.environ.get("GEN_SLEEP", "0")) * len(prompts))
    out = [render(sample_scene(scene_rng(s, zlib.crc32(p.encode())), _SPEC), int(params.get("size", 32)))
           for p, s in zip(prompts, seeds)]
    log = os.environ.get("GEN_LOG")
    if log:
        with open(log, "a") as f:
            f.writelines(f"{p}\\t{s}\\n" for p, s in zip(prompts, seeds))
    return out
'''

SUITE = """\
name: tiny
version: "1"
images_per_prompt: 3
seeds: {kind: range, start: 0}
slots:
  color: [red, blue, green]
  shape: [circle, square]
templates:
  - template: "a drawing of a {color} {shape}"
    category: colour
    expect: {objects: [{shape: "{shape}", color: "{color}"}], count: 1}
"""
N_IMAGES = 18


@pytest.fixture()
def env(tmp_path):
    gen = tmp_path / "gen.py"
    gen.write_text(GEN_SOURCE)
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE)
    return {"gen": f"python:{gen}:draw", "suite": str(suite), "tmp": tmp_path}


def cfg(env, out, **kw):
    return SampleConfig(suite=env["suite"], out=str(out), generator=env["gen"], progress=False, **kw)


def comparable(run_dir) -> pd.DataFrame:
    meta, df = load_run(run_dir)
    return df.drop(columns=["seconds"]).reset_index(drop=True)


def cli_cmd(env, out, batch=2):
    return [sys.executable, "-m", "t2i_audit", "sample", "--suite", env["suite"], "--out", str(out),
            "--generator", env["gen"], "--batch-size", str(batch), "--no-progress"]


def test_run_layout_and_manifest_schema(env, monkeypatch):
    monkeypatch.setenv("GEN_LOG", str(env["tmp"] / "log.txt"))
    out = env["tmp"] / "run"
    r = sample(cfg(env, out, batch_size=4))
    assert (r.n_images, r.n_generated, r.n_reused) == (N_IMAGES, N_IMAGES, 0)
    meta, df = load_run(out)
    assert meta["schema"] == "t2i-audit/run/1" and meta["status"] == "complete"
    assert meta["suite"]["name"] == "tiny" and len(meta["suite"]["hash"]) == 16
    assert meta["generator"]["kind"] == "python" and len(meta["generator"]["config_hash"]) == 16
    assert meta["package_version"] and "created" in meta and meta["seed_policy"] == {"kind": "range", "start": 0}
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert str(df.seed.dtype) == "int64" and str(df.width.dtype) == "int64"
    assert (df.image_id == df.prompt_id + "-s" + df.seed.astype(str)).all()
    assert (df.path == "images/" + df.image_id + ".png").all()
    # File names come from prompt id and seed, never from prompt text.
    assert not any("drawing" in p.name for p in (out / "images").iterdir())
    assert json.loads(df.expect[0])["count"] == 1 and isinstance(df.tags[0].tolist(), list)
    assert sorted(os.listdir(out)) == ["images", "journal.jsonl", "manifest.parquet", "run.json"]
    # Re-running the same command generates nothing.
    r2 = sample(cfg(env, out, batch_size=4))
    assert (r2.n_generated, r2.n_reused) == (0, N_IMAGES)
    assert len((env["tmp"] / "log.txt").read_text().splitlines()) == N_IMAGES


def test_killed_run_resumes_to_the_same_manifest_without_regenerating(env):
    ref = env["tmp"] / "ref"
    subprocess.run(cli_cmd(env, ref), check=True, capture_output=True)
    log = env["tmp"] / "log.txt"
    out = env["tmp"] / "killed"
    e = {**os.environ, "GEN_LOG": str(log), "GEN_KILL_AT": "4"}  # SIGKILL inside the 4th batch
    p = subprocess.run(cli_cmd(env, out), env=e, capture_output=True)
    assert p.returncode == -signal.SIGKILL
    assert len(log.read_text().splitlines()) == 6  # three batches of 2 were drawn and kept
    e.pop("GEN_KILL_AT")
    p = subprocess.run(cli_cmd(env, out), env=e, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "12 generated, 6 reused" in p.stdout  # the stale lock of the killed writer was taken over
    drawn = Counter(log.read_text().splitlines())
    assert len(drawn) == N_IMAGES and max(drawn.values()) == 1  # no image generated twice
    pd.testing.assert_frame_equal(comparable(out), comparable(ref))


def test_kill_at_a_random_moment_loses_at_most_the_batch_in_flight(env):
    ref = env["tmp"] / "ref"
    sample(cfg(env, ref))
    log = env["tmp"] / "log.txt"
    out = env["tmp"] / "killed"
    e = {**os.environ, "GEN_LOG": str(log), "GEN_SLEEP": "0.03"}
    proc = subprocess.Popen(cli_cmd(env, out, batch=1), env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(Journal.read(out / "journal.jsonl")) < 5:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(Journal.read(out / "journal.jsonl"))
    assert 5 <= n_done < N_IMAGES
    e.pop("GEN_SLEEP")
    subprocess.run(cli_cmd(env, out, batch=1), env=e, check=True, capture_output=True)
    drawn = Counter(log.read_text().splitlines())
    assert len(drawn) == N_IMAGES and sum(drawn.values()) <= N_IMAGES + 1
    pd.testing.assert_frame_equal(comparable(out), comparable(ref))
    assert not [p for p in (out / "images").iterdir() if p.name.startswith(".tmp-")]


def test_resume_repairs_corrupt_images_torn_journal_orphans_and_temp_files(env, monkeypatch):
    ref = env["tmp"] / "ref"
    sample(cfg(env, ref))
    out = env["tmp"] / "run"
    sample(cfg(env, out))
    _, df = load_run(out)
    # 1. an image edited after the fact (a valid PNG, but its hash no longer checks out)
    from PIL import Image

    Image.new("RGB", (32, 32)).save(out / df.path[0])
    # 2. an image written whose journal line never made it (killed between the two writes), and a
    #    torn last journal line
    lines = (out / "journal.jsonl").read_bytes().splitlines(keepends=True)
    orphan = json.loads(lines[-1])["image_id"]
    (out / "journal.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:17])
    # 3. a leftover temp file of an interrupted atomic write
    (out / "images" / ".tmp-x.png.abc").write_bytes(b"partial")
    monkeypatch.setenv("GEN_LOG", str(env["tmp"] / "log.txt"))
    r = sample(cfg(env, out))
    assert (r.n_regenerated, r.n_generated, r.n_adopted) == (1, 1, 1)
    assert (env["tmp"] / "log.txt").read_text().count("\n") == 1
    assert orphan in {rec["image_id"] for rec in Journal.read(out / "journal.jsonl") if rec.get("adopted")}
    assert not (out / "images" / ".tmp-x.png.abc").exists()
    pd.testing.assert_frame_equal(comparable(out), comparable(ref))


def test_a_second_writer_is_refused(env):
    out = env["tmp"] / "run"
    with RunLock(out):
        with pytest.raises(RunLockedError, match=f"another writer is running \\(pid {os.getpid()}"):
            sample(cfg(env, out))
    r = sample(cfg(env, out))  # released: works
    assert r.n_images == N_IMAGES and not (out / ".lock").exists()


def _write_lock(out: Path, **info):
    out.mkdir(parents=True, exist_ok=True)
    base = {"pid": os.getpid(), "host": socket.gethostname(), "start_time": None, "created": "then"}
    (out / ".lock").write_text(json.dumps({**base, **info}))


def test_stale_locks_are_recovered_and_foreign_hosts_refused(env):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = env["tmp"] / "run"
    _write_lock(out, pid=dead.pid)
    r = sample(cfg(env, out))
    assert r.stale_lock["pid"] == dead.pid and r.n_images == N_IMAGES
    # a live pid whose start time differs: the pid was reused by another process
    _write_lock(out, start_time="1")
    assert sample(cfg(env, out)).stale_lock["start_time"] == "1"
    # unreadable lock content (cannot happen with our writer, but must not wedge the run)
    (out / ".lock").write_text("{")
    assert sample(cfg(env, out)).stale_lock == {}
    _write_lock(out, host="elsewhere.example")
    with pytest.raises(RunLockedError, match="on host elsewhere.example.*delete"):
        sample(cfg(env, out))


def test_a_different_suite_generator_or_params_is_refused(env, tmp_path):
    out = env["tmp"] / "run"
    sample(cfg(env, out, limit=2))
    with pytest.raises(RunMismatchError, match=r"params \{\} \(in run.json\) vs \{\"size\": 64\}"):
        sample(cfg(env, out, limit=2, params={"size": 64}))
    with pytest.raises(RunMismatchError, match="limit 2"):
        sample(cfg(env, out))
    other = tmp_path / "other.yaml"
    other.write_text(SUITE.replace("green", "yellow"))
    with pytest.raises(RunMismatchError, match="suite hash"):
        sample(SampleConfig(suite=str(other), out=str(out), generator=env["gen"], limit=2, progress=False))
    gen2 = tmp_path / "gen2.py"
    gen2.write_text(GEN_SOURCE + "\n# edited\n")
    with pytest.raises(RunMismatchError, match="generator"):
        sample(SampleConfig(suite=env["suite"], out=str(out), generator=f"python:{gen2}:draw", limit=2,
                            progress=False))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not empty and has no run.json"):
        sample(cfg(env, tmp_path / "junk"))


def test_limit_param_and_images_per_prompt(env):
    out = env["tmp"] / "run"
    r = sample(cfg(env, out, limit=2, images_per_prompt=2, params={"size": 64}))
    meta, df = load_run(out)
    assert r.n_images == 4 and df.prompt_id.nunique() == 2 and set(df.width) == {64}
    assert meta["params"] == {"size": 64} and meta["images_per_prompt"] == 2 and meta["limit"] == 2


def test_sample_config_round_trips_json():
    c = SampleConfig(suite="s", out="o", params={"a": 1}, limit=3)
    assert SampleConfig.from_json(c.to_json()) == c


def test_cli_sample_and_errors(env):
    out = env["tmp"] / "run"
    args = ["sample", "--suite", env["suite"], "--out", str(out), "--generator", env["gen"], "--no-progress",
            "--param", "size=48", "--limit", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "3 images (3 generated" in r.output and "img/s" in r.output
    assert load_run(out)[0]["params"] == {"size": 48}
    r = CliRunner().invoke(main, [*args[:-4], "--param", "size=32", "--limit", "1"])
    assert r.exit_code == 2 and "holds a different run" in r.output
    r = CliRunner().invoke(main, [*args[:5], "--generator", "pyhton:x:y"])
    assert r.exit_code == 2 and "did you mean 'python'" in r.output
    r = CliRunner().invoke(main, [*args[:7], "--param", "novalue"])
    assert r.exit_code == 2 and "expected key=value" in r.output


def test_load_run_refuses_incomplete_runs(env, tmp_path):
    with pytest.raises(InputError, match="no run.json"):
        load_run(tmp_path)
    out = env["tmp"] / "run"
    sample(cfg(env, out, limit=1))
    meta = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**meta, "status": "running"}))
    with pytest.raises(InputError, match="not complete"):
        load_run(out)


@pytest.mark.slow
def test_sigkill_at_ten_random_moments(env):
    """Kill `sample` at 10 random moments, re-running each time. Every state left behind is
    clean (every image decodes, run.json parses, any manifest reads), and the final manifest equals an
    uninterrupted run's. Only the image in flight at a kill can be drawn twice."""
    import random

    from PIL import Image

    suite = env["tmp"] / "tiny.yaml"
    suite.write_text(SUITE.replace("images_per_prompt: 3", "images_per_prompt: 5"))  # 30 images
    n_images = 30
    ref = env["tmp"] / "ref"
    sample(cfg(env, ref))
    log = env["tmp"] / "log.txt"
    out = env["tmp"] / "killed"
    e = {**os.environ, "GEN_LOG": str(log), "GEN_SLEEP": "0.02"}
    rng = random.Random(8)
    kills = 0
    for _ in range(10):
        proc = subprocess.Popen(cli_cmd(env, out, batch=1), env=e, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        start = len(Journal.read(out / "journal.jsonl"))
        target = start + rng.randint(0, 4)
        deadline = time.time() + 60
        while (time.time() < deadline and proc.poll() is None
               and len(Journal.read(out / "journal.jsonl")) < target):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))  # land anywhere: mid-image, mid-append, mid-manifest
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        for p in (out / "images").iterdir() if (out / "images").is_dir() else ():
            if not p.name.startswith(".tmp-"):
                Image.open(p).load()
        if (out / "run.json").exists():
            json.loads((out / "run.json").read_text())
        if (out / "manifest.parquet").exists():
            pd.read_parquet(out / "manifest.parquet")
    subprocess.run(cli_cmd(env, out, batch=1), env=e, check=True, capture_output=True)
    drawn = Counter(log.read_text().splitlines())
    assert len(drawn) == n_images and sum(drawn.values()) <= n_images + kills
    pd.testing.assert_frame_equal(comparable(out), comparable(ref))
    assert not [p for p in out.rglob(".tmp-*")] and not (out / ".lock").exists()
    assert kills >= 5


def test_unwritable_output_is_a_clear_error(env):
    blocker = env["tmp"] / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create the run directory"):
        sample(cfg(env, blocker / "run"))
    r = CliRunner().invoke(main, ["sample", "--suite", env["suite"], "--out", str(blocker / "run"),
                                  "--generator", env["gen"]])
    assert r.exit_code == 2 and "choose a writable --out" in r.output
