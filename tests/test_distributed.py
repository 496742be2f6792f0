"""Sharded runs: shard assignment, single-process collectives, launcher detection, and (slow)
`accelerate launch --cpu --num_processes 2` (mpirun underneath) of sample + score, and
`accelerate launch --multi_gpu` (torchrun underneath) of sample, against a single-process run."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import t2i_audit.evals.distributed.launch as distributed
from system_tools import require_tool
from t2i_audit.core.threads import set_threads
from t2i_audit.errors import InputError
from t2i_audit.evals.distributed.launch import Dist, launch_env, shard_indices, unsharded_launch_warning


@pytest.mark.parametrize("n", [0, 1, 5, 16, 37])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_partition_every_item_once_in_order(n, world):
    parts = [shard_indices(n, r, world) for r in range(world)]
    flat = sorted(i for p in parts for i in p)
    assert flat == list(range(n))
    assert all(p == sorted(p) for p in parts)
    sizes = [len(p) for p in parts]
    assert max(sizes, default=0) - min(sizes, default=0) <= 1  # balanced
    with pytest.raises(InputError):
        shard_indices(n, world, world)


def test_single_process_collectives_are_the_identity():
    d = Dist()
    assert not d.sharded and d.is_main and d.describe() == "1 process"
    assert d.gather_shards(4, lambda idx: [i * i for i in idx]) == [0, 1, 4, 9]
    rows = d.gather_rows(3, lambda idx: np.arange(6, dtype=np.float32).reshape(3, 2)[idx])
    assert rows.shape == (3, 2) and rows[2, 1] == 5
    s = d.sum({"a": np.array([1.5, 2.0])})
    assert s["a"].dtype == np.float64 and s["a"].tolist() == [1.5, 2.0]
    assert d.on_main(lambda: "x") == "x" and d.all_gather(3) == [3]
    with pytest.raises(ValueError, match="boom"):
        d.agree(lambda: (_ for _ in ()).throw(ValueError("boom")))


def test_accelerate_cpu_single_process_launch_is_detected(monkeypatch):
    asked = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    msg = unsharded_launch_warning(asked)
    assert msg and "--mpirun_hostfile" in msg and "localhost:N" in msg and "torchrun" in msg
    assert unsharded_launch_warning({**asked, "WORLD_SIZE": "2"}) is None
    assert unsharded_launch_warning({**asked, "PMI_SIZE": "2"}) is None  # mpirun started the ranks
    assert unsharded_launch_warning({"ACCELERATE_USE_CPU": "True"}) is None  # --num_processes 1
    monkeypatch.setenv("PATH", "")  # no mpirun: the warning says how to get one
    assert "apt-get install mpich" in unsharded_launch_warning(asked)


def test_accelerate_cpu_launch_without_mpirun_is_fanned_out_through_torchrun():
    """The parent's command line, parsed by Accelerate's own parser, decides: only `accelerate launch
    --cpu --num_processes N -m t2i_audit ...` with N > 1, one machine and no hostfile fans out."""
    from t2i_audit.evals.distributed.fanout import requested_fanout

    asked = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    tail = ["-m", "t2i_audit", "sample", "--suite", "pictoworld-skills", "--out", "runs/x"]
    cli = ["/usr/bin/python3", "/usr/local/bin/accelerate", "launch", "--cpu", "--num_processes", "2"] + tail
    assert requested_fanout(cli, asked) == (2, tail[2:])
    mod = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "3",
           "--num_machines", "1"] + tail
    assert requested_fanout(mod, asked) == (3, tail[2:])
    assert requested_fanout(cli[:5] + ["1"] + tail, asked) is None  # one process asked for
    assert requested_fanout(cli[:6] + ["--mpirun_hostfile", "h"] + tail, asked) is None  # mpirun starts them
    assert requested_fanout(cli[:6] + ["--num_machines", "2"] + tail, asked) is None
    assert requested_fanout(cli[:6] + ["train.py"], asked) is None  # not t2i_audit
    assert requested_fanout(["bash", "-c", "x"], asked) is None  # another parent
    assert requested_fanout(cli, {**asked, "WORLD_SIZE": "2"}) is None  # already a rank
    assert requested_fanout(cli, {**asked, "T2I_AUDIT_FANOUT": "2"}) is None  # never twice
    assert requested_fanout(cli, {**asked, "T2I_AUDIT_NO_FANOUT": "1"}) is None
    assert requested_fanout(cli, {"MASTER_ADDR": "127.0.0.1"}) is None  # not accelerate --cpu


def test_launch_env_maps_mpirun_variables_to_torch_names():
    mpich = {"PMI_SIZE": "2", "PMI_RANK": "1", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29600"}
    assert launch_env(mpich) == {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    ompi = {"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "3"}
    assert launch_env(ompi) == {"RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "3",
                                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert launch_env({**mpich, "WORLD_SIZE": "2", "RANK": "1"}) == {}  # torchrun's names win
    assert launch_env({}) == {}
    with pytest.raises(InputError, match="rank 2"):
        launch_env({**mpich, "PMI_RANK": "2"})
    with pytest.raises(InputError, match="MASTER_ADDR"):  # two machines need rank 0's address
        launch_env({**ompi, "OMPI_COMM_WORLD_LOCAL_SIZE": "1"})


def test_device_settings_cpu_and_threads(monkeypatch):
    monkeypatch.setenv(distributed.DEVICE_ENV, "cpu")
    s = distributed.device_settings(Dist())
    assert (s.device, s.dtype, s.kind) == ("cpu", "float32", "cpu")
    assert (s.sample_batch, s.embed_batch) == distributed.BATCH_SIZES["cpu"]
    monkeypatch.setenv(distributed.DEVICE_ENV, "tpu")
    with pytest.raises(InputError, match="expected auto, cpu or cuda"):
        distributed.device_settings(Dist())
    with pytest.raises(InputError, match="--threads 0"):
        set_threads(0)


def test_bad_world_size_env_is_an_input_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="WORLD_SIZE"):
        distributed._join()
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "x")
    with pytest.raises(InputError, match="PMI_RANK"):
        distributed._join()


def test_killed_sharded_run_resumes_in_one_process(tmp_path):
    """Rank journals left by a killed 2-process run are read on resume (by any world size), only the
    missing images are drawn, the journals are folded into journal.jsonl, and the manifest equals an
    uninterrupted run's."""
    from t2i_audit.core.io import Journal
    from t2i_audit.evals.runs.sampling import SampleConfig, load_run, sample
    from test_runs import GEN_SOURCE, N_IMAGES, SUITE

    (tmp_path / "gen.py").write_text(GEN_SOURCE)
    (tmp_path / "s.yaml").write_text(SUITE)

    def cfg(out):
        return SampleConfig(suite=str(tmp_path / "s.yaml"), out=str(out), generator=f"python:{tmp_path / 'gen.py'}:draw",
                            batch_size=4, progress=False)

    ref, run = tmp_path / "ref", tmp_path / "run"
    sample(cfg(ref))
    sample(cfg(run))
    # What a 2-process run killed before its merge leaves: rank journals (strided shares), no
    # journal.jsonl, no manifest, status running, and a few images of each rank not yet drawn.
    recs = Journal.read(run / "journal.jsonl")
    for r in range(2):
        (run / f"journal.rank{r}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs[r::2][:-2]))
    for x in recs[-4:]:
        (run / x["path"]).unlink()
    (run / "journal.jsonl").unlink()
    (run / "manifest.parquet").unlink()
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "running"}))

    r = sample(cfg(run))
    assert (r.n_generated, r.n_reused) == (4, N_IMAGES - 4)
    assert not list(run.glob("journal.rank*.jsonl")) and len(Journal.read(run / "journal.jsonl")) == N_IMAGES
    a, b = (load_run(d)[1].drop(columns=["seconds"]) for d in (ref, run))
    pd.testing.assert_frame_equal(a, b)
    assert _digest(ref) == _digest(run)


# ----------------------------------------------------------------- launched by accelerate / torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digest(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run / "images").iterdir())}


def _accelerate(*flags: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", *flags, "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
            "-m", "t2i_audit"]


def _launch(cmd: list[str], **extra: str) -> subprocess.CompletedProcess:
    # Open MPI refuses to start as root without these (MPICH ignores them).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", **extra}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


SCORE_ARGS = ["--metrics", "clip_score,skills,fd,kid", "--reference", "world", "--reference-n", "12",
              "--reps", "50", "--dist-reps", "4", "--kid-subsets", "6", "--kid-subset-size", "5",
              "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """A tiny-preset checkpoint, and `sample` + `score` of 10 images in this one process."""
    from t2i_audit.cli import main
    from t2i_audit.generator.training.presets import get_preset
    from t2i_audit.generator.training.train_all_stages import train_all

    tmp = tmp_path_factory.mktemp("one_process")
    ckpt = tmp / "ckpt"
    train_all(ckpt, get_preset("tiny"), progress=False, log=lambda *a: None)
    sample_args = ["sample", "--suite", "pictoworld-skills", "--limit", "5", "--images-per-prompt", "2",
                   "--generator", f"checkpoint:{ckpt}", "--param", "steps=2", "--param", "prior_steps=2",
                   "--param", "micro_batch=4", "--batch-size", "3", "--threads", "1", "--no-progress"]
    score_args = [*SCORE_ARGS, "--features", f"bundled-clip:{ckpt}", "--clip", f"bundled-clip:{ckpt}"]
    run = tmp / "one"
    for args in (sample_args + ["--out", str(run)], ["score", str(run), *score_args, "--cache-dir", str(tmp / "cache")]):
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        assert r.exit_code == 0, r.output
    return run, sample_args, score_args


def _same_sample(one: Path, two: Path) -> None:
    """The same bytes, the same manifest rows (timings aside) in the same order, merged by rank 0."""
    assert json.loads((two / "run.json").read_text())["processes"] == 2
    assert not list(two.glob("journal.rank*.jsonl"))  # folded into journal.jsonl by rank 0
    assert _digest(one) == _digest(two) and len(_digest(one)) == 10
    m1, m2 = (pd.read_parquet(d / "manifest.parquet").drop(columns=["seconds"]) for d in (one, two))
    pd.testing.assert_frame_equal(m1, m2)


@pytest.mark.slow
def test_accelerate_cpu_two_processes_equal_one_process(one_process, tmp_path, monkeypatch):
    """`accelerate launch --cpu --num_processes 2` of sample and score (Accelerate's CPU
    launcher, which runs mpirun; gloo): byte-identical images, the same manifest rows and items, and
    aggregates equal to 1e-9, against a single process."""
    require_tool("mpirun", "mpiexec", install="apt-get install mpich; .ci/run does")
    one, sample_args, score_args = one_process
    hostfile = tmp_path / "hostfile"
    mpich = b"Open MPI" not in subprocess.run(["mpirun", "--version"], capture_output=True).stdout
    hostfile.write_text("localhost:2\n" if mpich else "localhost slots=2\n")
    launch = _accelerate("--cpu", "--num_processes", "2", "--mpirun_hostfile", str(hostfile))
    two = tmp_path / "two"
    monkeypatch.delenv("T2I_AUDIT_DEVICE", raising=False)  # --cpu alone must keep the ranks on the CPU
    p = _launch(launch + sample_args + ["--out", str(two)])
    assert "rank 0 of 2 (accelerate+mpirun, gloo)" in p.stdout, p.stdout + p.stderr[-2000:]
    _launch(launch + ["score", str(two), *score_args, "--cache-dir", str(tmp_path / "cache")])
    _same_run(one, two)


def _same_run(one: Path, two: Path) -> None:
    """Sample and score of a two-process run equal the single-process run's."""
    _same_sample(one, two)
    meta = json.loads((two / "run.json").read_text())
    assert (meta["device"], meta["dtype"]) == ("cpu", "float32")

    # CLIPScore comes from float32 embeddings, whose last bits depend on how many images share a
    # forward pass (batch size 5 vs 10 on one process already moves a score by ~3e-6 relative); two
    # ranks split the batches, so CLIPScore (0-100 scale) agrees to 1e-4 and every other metric to 1e-9
    i1, i2 = (pd.read_parquet(d / "scores" / "items.parquet") for d in (one, two))
    pd.testing.assert_frame_equal(i1.drop(columns="value"), i2.drop(columns="value"))
    clip = (i1["metric"] == "clip_score").to_numpy()
    for mask, rtol, atol in ((clip, 1e-6, 1e-4), (~clip, 1e-9, 1e-12)):
        np.testing.assert_allclose(i2["value"].to_numpy()[mask], i1["value"].to_numpy()[mask], rtol=rtol, atol=atol)
    a1, a2 = (pd.read_parquet(d / "scores" / "aggregates.parquet") for d in (one, two))
    assert a1[["metric", "group", "n_prompts", "n_images"]].equals(a2[["metric", "group", "n_prompts", "n_images"]])
    aclip = (a1["metric"] == "clip_score").to_numpy()
    for col in ("value", "ci_low", "ci_high"):
        for mask, rtol, atol in ((aclip, 1e-6, 1e-4), (~aclip, 1e-6, 1e-9)):  # FD, KID: the same embeddings
            np.testing.assert_allclose(a2[col].to_numpy()[mask], a1[col].to_numpy()[mask], rtol=rtol, atol=atol)
    assert {"fd", "kid", "clip_score", "skills"} <= set(a1.metric)
    res = json.loads((two / "scores" / "results.json").read_text())
    assert res["processes"] == 2
    assert res["cache"]["misses"] > 0 and res["cache"]["hits"] == 0  # each image embedded once, across both ranks


@pytest.mark.slow
def test_accelerate_cpu_two_processes_without_mpirun_equal_one_process(one_process, tmp_path, monkeypatch):
    """`accelerate launch --cpu --num_processes 2` with no hostfile. Accelerate
    starts one process; t2i-audit reads the launch it was asked for and runs the 2 ranks through
    torchrun (gloo). Same bytes, rows and aggregates as one process."""
    one, sample_args, score_args = one_process
    launch = _accelerate("--cpu", "--num_processes", "2")
    two = tmp_path / "two"
    monkeypatch.delenv("T2I_AUDIT_DEVICE", raising=False)
    p = _launch(launch + sample_args + ["--out", str(two)])
    assert "through torchrun" in p.stderr and "rank 0 of 2 (accelerate+torchrun, gloo)" in p.stdout, \
        p.stdout + p.stderr[-2000:]
    _launch(launch + ["score", str(two), *score_args, "--cache-dir", str(tmp_path / "cache")])
    _same_run(one, two)


@pytest.mark.slow
def test_accelerate_multi_gpu_launcher_on_cpu_equal_one_process(one_process, tmp_path):
    """Accelerate's other launcher (torchrun underneath, no MPI needed) sharding `sample` on the CPU:
    the same images and manifest as one process."""
    one, sample_args, _ = one_process
    two = tmp_path / "two"
    p = _launch(_accelerate("--multi_gpu", "--num_processes", "2") + sample_args + ["--out", str(two)],
                T2I_AUDIT_DEVICE="cpu")
    assert "rank 0 of 2 (accelerate, gloo)" in p.stdout, p.stdout + p.stderr[-2000:]
    _same_sample(one, two)
