"""Gate: comparable or refuse (fingerprints), three verdicts, noise floors, metrics that failed to compute."""

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.reports.gate.fingerprint import run_fingerprint
from t2i_audit.reports.gate.noise import NoiseFloors, calibrate
from t2i_audit.reports.results import load_run

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def runs(tmp_path):
    for name in ("run_a", "run_b"):
        shutil.copytree(FIX / name, tmp_path / name)
    return tmp_path / "run_a", tmp_path / "run_b"


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _gate(*args):
    r = CliRunner().invoke(main, ["gate", *map(str, args)])
    return r.exit_code, r.output


def _rules(tmp_path, *rules) -> Path:
    p = tmp_path / "gate.yaml"
    p.write_text("rules:\n" + "".join(f"  - {json.dumps(r)}\n" for r in rules))
    return p


def test_other_clip_weights_is_an_input_error_unless_allowed(runs, tmp_path):
    a, b = runs
    # what `score --clip bundled-clip:OTHER_DIR` records: the evaluator id carries the weights hash
    _edit(b / "scores/results.json", lambda d: d["evaluators"].update(clip="bundled-clip:pictoworld-clip@0.1:"
                                                                           "sha256:0ther0ther"))
    rules = _rules(tmp_path, "clip_score no worse than baseline by more than 5")
    code, out = _gate(b, "--rules", rules, "--baseline", a, "--junit", tmp_path / "j.xml")
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "evaluator differs" in out and "scores.evaluator.clip" in out and "--allow-drift" in out
    assert ET.parse(tmp_path / "j.xml").getroot().find(".//error") is not None
    code, out = _gate(b, "--rules", rules, "--baseline", a, "--allow-drift", "scores.evaluator.clip",
                      "--json", tmp_path / "g.json")
    assert code == 0, out
    assert "drift allowed (--allow-drift): scores.evaluator.clip" in out
    assert json.loads((tmp_path / "g.json").read_text())["drift"][0].startswith("scores.evaluator.clip")


def test_rules_read_only_their_measures_and_list_environment_drift(runs, tmp_path):
    a, b = runs
    _edit(b / "audits/bias.json", lambda d: d["probe"].update(model="another-clip"))
    _edit(b / "run.json", lambda d: d.update(device="cuda", environment={"torch": "9.9"}))
    # a scores-only rule does not read the bias probe: no refusal, the device difference is listed
    code, out = _gate(b, "--rules", _rules(tmp_path, "clip_score no worse than baseline by more than 5"),
                      "--baseline", a)
    assert code == 0 and "environment differs: sample.device" in out and "sample.torch" in out, out
    code, out = _gate(b, "--rules", _rules(tmp_path, "bias.presentation.share[*:woman] same as baseline"),
                      "--baseline", a)
    assert code == 2 and "probe differs" in out and "bias.probe" in out, out


def test_fingerprint_sections(runs):
    fp = run_fingerprint(load_run(runs[0]))
    assert fp["measures"]["scores.evaluator.clip"].startswith("pictoworld-clip")
    assert "scores.method.clip_score" in fp["measures"] and "bias.probe" in fp["measures"]
    assert fp["measures"]["suite"].startswith("fixture-suite") and fp["runs"]["sample.package_version"] == "0.1.0"


def test_baseline_of_another_suite_is_exit_2(runs, tmp_path):
    a, b = runs
    _edit(a / "run.json", lambda d: d["suite"].update(hash="0ther5uite", name="other"))
    code, out = _gate(b, "--rules", _rules(tmp_path, "skill >= baseline - 0.5"), "--baseline", a)
    assert code == 2 and "suite 'other'" in out and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("policy, code", [("pass", 0), ("warn", 0), ("fail", 1)])
def test_inconclusive_policy_and_images_needed(runs, tmp_path, policy, code):
    a, _ = runs
    rules = _rules(tmp_path, "skill no worse than baseline by more than 0.05")
    got, out = _gate(a, "--rules", rules, "--baseline", a, "--inconclusive", policy, "--junit", tmp_path / "j.xml",
                     "--summary-md", tmp_path / "s.md", "--json", tmp_path / "g.json")
    assert got == code, out
    data = json.loads((tmp_path / "g.json").read_text())
    check = data["rules"][0]
    assert check["verdict"] == "inconclusive" and check["images_needed"] > check["n"]
    assert f"needs ≈ {check['images_needed']} images per group" in out
    md = (tmp_path / "s.md").read_text()
    assert "inconclusive" in md.lower() and str(check["images_needed"]) in md
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite.get("skipped"), suite.get("failures")) == {"pass": ("0", "0"), "warn": ("1", "0"),
                                                             "fail": ("0", "1")}[policy]


def test_missing_or_nan_metric_is_an_error(runs, tmp_path):
    a, b = runs
    agg = pd.read_parquet(b / "scores/aggregates.parquet")
    agg.loc[agg["metric"] == "skill", "value"] = float("nan")
    agg.to_parquet(b / "scores/aggregates.parquet")
    code, out = _gate(b, "--rules", _rules(tmp_path, "skill >= 0.1"))
    assert code == 2 and "not a finite number" in out
    code, out = _gate(a, "--rules", _rules(tmp_path, "skill >= baseline - 0.9"), "--baseline", b)
    assert code == 2 and "[baseline]" in out
    code, out = _gate(a, "--rules", _rules(tmp_path, "cmmd <= 1"))
    assert code == 2 and "unknown metric 'cmmd'" in out


def test_noise_file_round_trip_and_noise_margins(runs, tmp_path):
    a, b = runs
    aa = []
    for i, shift in enumerate((0.0, 0.01, -0.02)):
        d = tmp_path / f"aa{i}"
        shutil.copytree(a, d)
        _edit(d / "run.json", lambda m, i=i: m.update(seed_policy={"kind": "range", "start": 0, "offset": 1000 * i}))
        agg = pd.read_parquet(d / "scores/aggregates.parquet")
        agg.loc[agg["metric"] == "skill", ["value", "ci_low", "ci_high"]] += shift
        agg.to_parquet(d / "scores/aggregates.parquet")
        aa.append(d)
    r = CliRunner().invoke(main, ["gate", "calibrate", *map(str, aa), "--out", str(tmp_path / "noise.json")])
    assert r.exit_code == 0, r.output
    floors = NoiseFloors.load(tmp_path / "noise.json")
    data = calibrate(aa)
    assert floors.metrics == json.loads(json.dumps(data["metrics"]))
    sk = floors.metrics["skill"]
    assert sk["spread"] == pytest.approx(pd.Series([0.6875, 0.6975, 0.6675]).std())
    assert sk["noise"] == pytest.approx(2 ** 0.5 * max(sk["spread"], sk["se"]))
    code, out = _gate(b, "--rules", _rules(tmp_path, "skill no worse than baseline by more than 1 noise"),
                      "--baseline", a, "--noise", tmp_path / "noise.json", "--json", tmp_path / "g.json")
    check = json.loads((tmp_path / "g.json").read_text())["rules"][0]
    assert check["margin_noise"] == 1 and check["noise"] == pytest.approx(sk["noise"])
    assert "noise ×" in check["threshold_text"]
    code, out = _gate(b, "--rules", _rules(tmp_path, "skill no worse than baseline by more than 1 noise"),
                      "--baseline", a)
    assert code == 2 and "needs --noise FILE" in out
    same = CliRunner().invoke(main, ["gate", "calibrate", str(aa[0]), str(aa[0]), "--out", str(tmp_path / "n2")])
    assert same.exit_code == 2 and "same seeds" in same.output
