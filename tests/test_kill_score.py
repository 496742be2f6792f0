"""`score` survives SIGKILL anywhere, and every writer into a run directory (sample, score, audits)
holds the run's one-writer lock. (`sample`'s own kill and lock tests live in tests/test_runs.py.)"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.evals.runs.locking import RunLock
from test_bad_inputs import SUITE, _random_clip, make_run


def score_cmd(run: Path, clip: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "t2i_audit", "score", str(run), "--metrics", "skills,clip_score", "--clip",
            f"bundled-clip:{clip}", "--cache-dir", str(cache), "--reps", "200", "--batch-size", "2",
            "--no-progress", "--threads", "1"]


def tables(run: Path) -> dict[str, pd.DataFrame]:
    out = {n: pd.read_parquet(run / "scores" / f"{n}.parquet") for n in ("items", "aggregates")}
    res = json.loads((run / "scores" / "results.json").read_text())
    out["results"] = pd.DataFrame(res["aggregates"])
    return out


def assert_clean_state(run: Path) -> None:
    """Whatever a kill left: every finished file is complete (Parquet reads, JSON parses)."""
    for p in (run / "scores").glob("*") if (run / "scores").is_dir() else ():
        if p.name.startswith(".tmp-"):
            continue  # an interrupted atomic write: invisible to readers, removed by the next writer
        if p.suffix == ".parquet":
            pd.read_parquet(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())


@pytest.mark.slow
def test_score_sigkilled_at_random_moments_ends_identical(tmp_path):
    """Kill `t2i-audit score` with SIGKILL at 6 seeded random moments, re-running after each: the state
    after every kill is readable, and the final tables equal an uninterrupted run's; no temp file, lock
    or corrupt cache is left. (With tests/test_runs.py's 10 kills of `sample`, >= 10 kills in all.)"""
    run = make_run(tmp_path / "run", SUITE.replace("images_per_prompt: 2", "images_per_prompt: 3"))
    clip = _random_clip(tmp_path / "clip")
    ref = tmp_path / "ref"
    shutil.copytree(run, ref)
    t = time.perf_counter()
    subprocess.run(score_cmd(ref, clip, tmp_path / "cache-ref"), check=True, capture_output=True)
    full = time.perf_counter() - t
    expected = tables(ref)

    rng = random.Random(8)
    cache = tmp_path / "cache"
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(score_cmd(run, clip, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.0) * full)  # anywhere from start-up to the last write
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert_clean_state(run)
    done = subprocess.run(score_cmd(run, clip, cache), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = tables(run)
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name])
    assert not list(run.rglob(".tmp-*")) and not list(run.rglob(".lock*"))
    with sqlite3.connect(cache / "embeddings.sqlite") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert kills >= 4, kills


# ------------------------------------------------------------------ one writer per run directory
@pytest.fixture()
def scored_run(tmp_path):
    return make_run(tmp_path / "run")


def _invoke(args):
    r = CliRunner().invoke(main, args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return r, lines


@pytest.mark.parametrize("args", [
    ["score", "{run}", "--metrics", "skills", "--no-progress", "--no-cache"],
    ["audit", "bias", "{run}", "--probe", "oracle-presentation", "--calibration", "none", "--no-progress",
     "--bootstrap", "50"],
    ["audit", "memorization", "{run}", "--train", "{run}"],
    ["sample", "--suite", "{suite}", "--out", "{run}", "--generator", "{gen}", "--no-progress"],
], ids=["score", "audit-bias", "audit-memorization", "sample"])
def test_every_writer_refuses_a_locked_run(scored_run, args):
    """While another live process holds RUN/.lock, score, both audits and sample exit 2 with one line
    naming the holder, and write nothing."""
    run = scored_run
    subs = {"run": str(run), "suite": str(run.parent / "run-suite.yaml"), "gen": f"python:{run.parent / 'run-gen' / 'gen_world.py'}:draw"}
    args = [a.format(**subs) for a in args]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        from t2i_audit.evals.runs.locking import _proc_start_time

        (run / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                               "start_time": _proc_start_time(holder.pid),
                                               "created": "now", "purpose": "sample"}))
        before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
        r, lines = _invoke(args)
        assert r.exit_code == 2 and len(lines) == 1, r.output
        assert f"pid {holder.pid}" in lines[0] and "another writer" in lines[0]
        assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_writers_stale_lock_is_taken_over_by_score_and_audit(scored_run):
    run = scored_run
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for args in (["score", str(run), "--metrics", "skills", "--no-progress", "--no-cache", "--reps", "50"],
                 ["audit", "bias", str(run), "--probe", "oracle-presentation", "--calibration", "none",
                  "--no-progress", "--bootstrap", "50"]):
        (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "start_time": None,
                                               "created": "then", "purpose": "score"}))
        r, _ = _invoke(args)
        assert r.exit_code == 0, r.output
        assert not (run / ".lock").exists()
    assert (run / "scores" / "results.json").is_file() and (run / "audits" / "bias.json").is_file()


def test_score_holds_the_lock_while_it_runs(scored_run, monkeypatch):
    """Inside score_run the run's lock names this process as a 'score' writer; a concurrent RunLock
    attempt is refused, and the lock is released afterwards."""
    import t2i_audit.evals.scoring.score as scoring
    from t2i_audit.evals.runs.locking import RunLockedError

    seen = {}
    real = scoring._score_run

    def spy(*a, **k):
        seen["lock"] = json.loads((scored_run / ".lock").read_text())
        with pytest.raises(RunLockedError, match="another writer"):
            RunLock(scored_run, purpose="sample").acquire()
        return real(*a, **k)

    monkeypatch.setattr(scoring, "_score_run", spy)
    scoring.score_run(scored_run, scoring.ScoreConfig(metrics=("skills",), reps=50, progress=False, cache=False))
    assert seen["lock"]["pid"] == os.getpid() and seen["lock"]["purpose"] == "score"
    assert not (scored_run / ".lock").exists()
