"""`t2i-audit audit diversity`: a planted clothing-colour collapse is found and flagged, the full
world is not; findings, sentences and files as documented."""

import json
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng


def make_run(run, colours, per_prof=64, ipp=4, profs=("chef", "police officer", "firefighter")):
    """A complete neutral-prompt run whose clothing colours are restricted to ``colours``."""
    (run / "images").mkdir(parents=True)
    spec, rows, i = BiasSpec.load(), [], 0
    for prof in profs:
        for j in range(per_prof):
            sc = sample_scene(scene_rng(11, i), spec, kind="person", profession=prof, mode="neutral")
            sc = replace(sc, person=replace(sc.person, clothing=colours[i % len(colours)]))
            pid, iid = f"{prof}-{j // ipp}", f"{prof}-{j // ipp}-s{j % ipp}"
            render(sc).save(run / "images" / f"{iid}.png")
            rows.append({"prompt_id": pid, "category": "neutral", "template": "t",
                         "slots": json.dumps({"profession": prof}), "text": f"a {prof}", "tags": ["neutral"],
                         "expect": None, "seed": j % ipp, "image_id": iid, "path": f"images/{iid}.png",
                         "sha256": "0" * 64, "width": 32, "height": 32, "seconds": 0.0})
            i += 1
    pd.DataFrame(rows).to_parquet(run / "manifest.parquet", index=False)
    (run / "run.json").write_text(json.dumps({"schema": "t2i-audit/run/1", "run_id": run.name, "status": "complete",
                                              "suite": {"name": "pictoworld-bias", "version": "1", "hash": "x"},
                                              "generator": {"id": "fabricated"}}))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("diversity")
    return (make_run(base / "collapsed", ("purple", "pink")),
            make_run(base / "full", ("purple", "orange", "teal", "pink")))


def test_collapse_flagged(runs):
    collapsed, _ = runs
    r = CliRunner().invoke(main, ["audit", "diversity", str(collapsed), "--bootstrap", "200", "--features", "none"])
    assert r.exit_code == 0, r.output
    assert "finding: clothing: 2 of 4 modes missing for chef" in r.output
    f = pd.read_parquet(collapsed / "audits" / "diversity_findings.parquet")
    cl = f[(f.attribute == "clothing") & (f.group != "all")]
    assert cl.groupby("group")["flagged"].all().all()
    miss = cl[cl.statistic == "missing_modes"]
    assert (miss["value"] == 2).all() and set(miss["detail"]) == {"orange, teal"}
    ratio = cl[cl.statistic == "entropy_ratio"]["value"]
    assert ratio.between(0.45, 0.55).all()  # log 2 / log 4
    summ = json.loads((collapsed / "audits" / "diversity.json").read_text())
    assert summ["schema"] == "t2i-audit/diversity/1" and "flagged =" in summ["rule"]
    assert {"attribute", "group", "statistic", "value", "ci_low", "ci_high", "flagged"} <= set(summ["findings"][0])
    bg = f[(f.attribute == "background") & (f.group != "all")]
    assert not bg["flagged"].any()  # backgrounds are drawn as in training


@pytest.mark.slow
def test_full_world_not_flagged(runs):
    _, full = runs
    from t2i_audit.audits.diversity.diversity_audit import DiversityAuditConfig, run_diversity_audit

    res = run_diversity_audit(full, DiversityAuditConfig(bootstrap=100, reference_min=64, progress=False))
    f = res["findings"].set_index(["attribute", "group", "statistic"])
    assert f.loc[("features", "chef", "coverage"), "value"] > 0.5  # renders like the reference
    assert not res["findings"]["flagged"].any()
    assert res["summary"]["sentences"] == []


def test_real_run_uses_the_default_real_probes_and_says_so(tmp_path):
    run = make_run(tmp_path / "r", ("purple",), per_prof=4, profs=("chef",))
    meta = json.loads((run / "run.json").read_text())
    meta["suite"]["name"] = "my-suite"
    (run / "run.json").write_text(json.dumps(meta))
    m = pd.read_parquet(run / "manifest.parquet")
    m["slots"] = json.dumps({"occupation": "baker"})
    m.to_parquet(run / "manifest.parquet", index=False)
    r = CliRunner().invoke(main, ["audit", "diversity", str(run), "--no-progress", "--features", "none"])
    assert r.exit_code == 0, r.output
    assert "probes: real-background, real-age-group, real-clothing-colour (the defaults" in r.output
    summary = json.loads((run / "audits" / "diversity.json").read_text())
    assert summary["default_probes"] == ["real-background", "real-age-group", "real-clothing-colour"]
    assert {p["name"] for p in summary["probe"]} == set(summary["default_probes"])
    r = CliRunner().invoke(main, ["audit", "diversity", str(run), "--no-progress", "--features", "none",
                                  "--probe", "real-background"])
    assert r.exit_code == 0 and "probes:" not in r.output  # named probes: no defaults to announce


def test_gate_on_diversity(runs, tmp_path):
    collapsed, full = runs
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - diversity.missing_modes[clothing:*] <= 0\n  - diversity.entropy_ratio[clothing] >= 0.8\n")
    for run, code in ((full, 0), (collapsed, 1)):
        if not (run / "audits" / "diversity.json").is_file():
            CliRunner().invoke(main, ["audit", "diversity", str(run), "--bootstrap", "200", "--features", "none"])
        r = CliRunner().invoke(main, ["gate", str(run), "--rules", str(rules)])
        assert r.exit_code == code, r.output
