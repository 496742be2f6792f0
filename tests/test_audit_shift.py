"""Calibration shift in the bias audit: the zero-shot CLIP probe's clean calibration renders against
audited images that are clean (not flagged) or degraded like generated images (flagged); the record
lands in bias.json, the CLI warns, and a gate rule can fail on it."""

import json

import pytest
from click.testing import CliRunner

from t2i_audit.audits.engine.calibration_shift import calibration_shift, shift_warnings
from t2i_audit.audits.probes.attribute_probes import OracleProbe, ZeroShotProbe, load_probe_spec
from t2i_audit.audits.probes.probe_calibration import pictoworld_people
from t2i_audit.cli import main
from t2i_audit.world.corrupt import corrupt


@pytest.fixture(scope="module")
def probe():
    from t2i_audit.evals.features.extractors import load_extractor

    return ZeroShotProbe(load_probe_spec("pictoworld-presentation"), load_extractor("bundled-clip"))


def test_clean_not_flagged_degraded_flagged(probe):
    cal, ct = pictoworld_people(240, seed=1)
    run, rt = pictoworld_people(240, seed=2)
    clean = calibration_shift([probe], cal, list(ct["profession"]), run, list(rt["profession"]))[0]
    assert clean["detected"] is False and clean["n_calib"] == 240
    bad = [corrupt(im, "blur:1.2,noise:0.06", seed=i) for i, im in enumerate(run)]
    shifted = calibration_shift([probe], cal, list(ct["profession"]), bad, list(rt["profession"]))[0]
    assert shifted["detected"] is True and shifted["p_value"] < 0.05
    assert "label a subset of the audited images" in shift_warnings([shifted])[0]
    few = calibration_shift([probe], cal, None, run[:6], None)[0]  # a tiny run is recorded, not an error
    assert few["detected"] is None and "fewer than 10" in few["note"]
    oracle = calibration_shift([OracleProbe("skin")], cal, None, run, None)[0]
    assert oracle["detected"] is None and "not tested" in oracle["note"]


def test_gate_fails_on_detected_shift(tmp_path):
    import shutil
    from pathlib import Path

    fix = Path(__file__).parent / "fixtures"
    shutil.copytree(fix / "run_a", tmp_path / "run_a")
    meta_path = tmp_path / "run_a" / "audits" / "bias.json"
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - bias.calibration_shift[*] <= 0\n")
    for detected, code in ((False, 0), (True, 1)):
        meta = json.loads(meta_path.read_text())
        meta["calibration_shift"] = [{"probe": "pictoworld-presentation", "detected": detected, "statistic": 0.1,
                                      "p_value": 0.001 if detected else 0.5, "n_calib": 600, "n_run": 24}]
        meta_path.write_text(json.dumps(meta))
        r = CliRunner().invoke(main, ["gate", str(tmp_path / "run_a"), "--rules", str(rules)])
        assert r.exit_code == code, r.output
