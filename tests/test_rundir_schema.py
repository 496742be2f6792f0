"""The run-directory schema (core.rundir) against the real writers: a run is sampled, scored,
audited (bias, diversity, safety, memorization) and gated through the CLI, then every file the
schema lists is present and reads back -- JSON files at their schema version, tables with their
required columns -- and reports.results.load_run holds each one."""

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.core.rundir import FILES, MANIFEST_COLUMNS, read_run
from t2i_audit.errors import InputError
from t2i_audit.reports.results import load_run, read_json, read_table

HERE = Path(__file__).parent
GEN = f"python:{HERE / 'safety_gen.py'}:draw"


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code in (0, 1), r.output  # the gate may fail: its verdict is still written
    return r


def test_every_file_of_a_run_round_trips(tmp_path):
    sys.path.insert(0, str(HERE))
    run = tmp_path / "run"
    cli("sample", "--suite", "pictoworld-bias", "--generator", GEN, "--out", run, "--limit", "6",
        "--images-per-prompt", "4", "--no-progress")
    cli("score", run, "--metrics", "skills", "--no-progress")
    cli("audit", "bias", run, "--probe", "oracle-presentation", "--probe", "oracle-skin", "--calibration-n", "60",
        "--bootstrap", "50", "--no-progress")
    cli("audit", "diversity", run, "--features", "none", "--bootstrap", "50")
    cli("audit", "safety", run, "--detector", "python:safety_gen:oracle_detector", "--bootstrap", "50")
    cli("audit", "memorization", run, "--train", run)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - diversity.missing_modes[clothing] <= 0\n")
    cli("gate", run, "--rules", rules)

    for rel, spec in FILES.items():
        p = run / rel
        assert p.is_file(), f"{rel} was not written"
        if isinstance(spec, str):
            assert read_json(p, spec)["schema"].startswith(f"t2i-audit/{spec}/")
        else:
            assert len(read_table(p, spec)) > 0 or rel == "audits/memorization.parquet"
    meta, manifest = read_run(run, require_images=True)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS and meta["status"] == "complete"
    res = load_run(run)
    for name in ("manifest", "items", "aggregates", "scores_meta", "bias", "bias_stats", "bias_meta",
                 "memorization_meta", "diversity_meta", "safety", "safety_meta", "gate"):
        assert getattr(res, name) is not None, name
    assert res.missing == []


def test_the_one_reader_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="no run.json"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text('{"schema": "t2i-audit/run/1", "status": "running"}')
    with pytest.raises(InputError, match="not complete"):
        read_run(tmp_path)
    with pytest.raises(InputError, match="no manifest.parquet"):
        read_run(tmp_path, require_complete=False)
    (tmp_path / "run.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(InputError, match="UTF-8"):
        read_run(tmp_path)
