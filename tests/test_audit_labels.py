"""`t2i-audit label` then `audit bias --labels`: a stratified subset labelled by the oracle, the
label-calibrated estimates in bias.parquet / bias.json, and a probe with planted errors corrected."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.audits.bias.bias_audit import BiasAuditConfig, audit_outputs, image_table
from t2i_audit.audits.engine.share_estimates import NOT_LABELLED, truths_from_labels
from t2i_audit.audits.probes.attribute_probes import ProbeOutput
from t2i_audit.cli import main
from test_audit_cli import fabricate_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("labels") / "run"
    fabricate_run(run, per_prof=40, ipp=4)
    man = pd.read_parquet(run / "manifest.parquet")  # real hashes: the labelling page checks them
    man["sha256"] = [hashlib.sha256((run / p).read_bytes()).hexdigest() for p in man["path"]]
    man.to_parquet(run / "manifest.parquet", index=False)
    return run


def test_label_oracle_then_bias_with_labels(run_dir):
    r = CliRunner().invoke(main, ["label", str(run_dir), "--attribute", "presentation", "--attribute", "skin",
                                  "--labeller", "oracle", "--n", "30", "--seed", "3"])
    assert r.exit_code == 0, r.output
    labels = pd.read_csv(run_dir / "labels" / "labels.csv")
    assert list(labels.columns) == ["image_id", "attribute", "label"]
    sample = pd.read_csv(run_dir / "labels" / "sample.csv")
    assert sample.groupby("group").size().to_dict() == {"chef": 30, "firefighter": 30}  # stratified
    again = CliRunner().invoke(main, ["label", str(run_dir), "--attribute", "presentation", "--labeller", "oracle",
                                      "--n", "30", "--seed", "3", "--out", str(run_dir / "again")])
    assert again.exit_code == 0
    assert list(pd.read_csv(run_dir / "again" / "sample.csv")["image_id"]) == list(sample["image_id"])  # seeded
    r = CliRunner().invoke(main, ["audit", "bias", str(run_dir), "--probe", "oracle-presentation", "--probe",
                                  "oracle-skin", "--bootstrap", "100", "--calibration-n", "60", "--no-progress",
                                  "--labels", str(run_dir / "labels" / "labels.csv")])
    assert r.exit_code == 0, r.output
    assert "label-calibrated (PPI++, headline)" in r.output
    bias = pd.read_parquet(run_dir / "audits" / "bias.parquet")
    neu = bias[(bias.section == "neutral") & (bias.group != "all") & (bias.attribute == "presentation")]
    assert (neu["n_labelled"] >= 25).all()
    # the oracle labels its own readings: the group's confusion matrix is the identity, so the
    # label-calibrated confusion estimate is the raw share; PPI weighs labelled and unlabelled images
    # by its tuned lambda, close to raw
    assert np.allclose(neu["label_confusion"], neu["raw"], atol=1e-6)
    assert np.allclose(neu["ppi"], neu["raw"], atol=0.05)
    assert ((neu["ppi_ci_low"] <= neu["ppi"]) & (neu["ppi"] <= neu["ppi_ci_high"])).all()
    summ = json.loads((run_dir / "audits" / "bias.json").read_text())
    assert summ["labels"]["headline"] == "label-calibrated (PPI++)" and "labels" in summ["methodology"]
    st = pd.read_parquet(run_dir / "audits" / "bias_stats.parquet")
    assert set(st[st.statistic == "parity_gap"]["basis"]) == {"label-calibrated (PPI++)"}


def test_label_page_written(run_dir):
    r = CliRunner().invoke(main, ["label", str(run_dir), "--attribute", "skin", "--n", "5",
                                  "--out", str(run_dir / "page")])
    assert r.exit_code == 0, r.output
    html = (run_dir / "page" / "label_skin.html").read_text()
    assert "light" in html and "data:image/png;base64," in html and "http://" not in html


def test_planted_probe_error_corrected_by_labels(run_dir):
    """A probe that reads 30% of the women as men: raw shares are off, PPI with the true labels is not."""
    man = pd.read_parquet(run_dir / "manifest.parquet")
    images = image_table(man, ("profession",))
    rng = np.random.default_rng(0)
    from t2i_audit.audits.engine.readings import load_images
    from t2i_audit.audits.probes.attribute_probes import OracleProbe

    truth = OracleProbe("presentation").predict(load_images(run_dir, man)).labels
    pred = np.where((truth == 1) & (rng.random(len(truth)) < 0.3), 0, truth)

    class P:
        name, attribute, classes = "bad-probe", "presentation", ("man", "woman")

    sub = rng.random(len(truth)) < 0.5  # a random half is labelled
    labels = pd.DataFrame({"image_id": images["image_id"][sub], "attribute": "presentation",
                           "label": [("man", "woman")[t] if t >= 0 else "unsure" for t in truth[sub]]})
    truths = truths_from_labels(labels, [P], images["image_id"])
    assert ((truths["bad-probe"] != NOT_LABELLED) == sub).all()
    cfg = BiasAuditConfig(bootstrap=200)
    out = audit_outputs({"bad-probe": ProbeOutput(P.classes, pred)}, [P], images, {}, cfg, truths=truths)["bias"]
    row = out[(out.group == "all") & (out.cls == "woman") & (out.section == "neutral")].iloc[0]
    neutral = np.array(["presentation" not in s for s in images["slots"]]) & (truth >= 0)
    true_share = np.mean(truth[neutral] == 1)
    assert abs(row["raw"] - true_share) > 0.05
    assert abs(row["ppi"] - true_share) < 0.02


def test_plan_labels_cli():
    r = CliRunner().invoke(main, ["audit", "plan", "--labels", "--agreement", "0.85", "--width", "0.1",
                                  "--images", "2000"])
    assert r.exit_code == 0 and "labels per group: 217" in r.output
    r = CliRunner().invoke(main, ["audit", "plan", "--labels"])
    assert r.exit_code == 2 and "--labels needs --agreement" in r.output
    r = CliRunner().invoke(main, ["audit", "plan"])
    assert r.exit_code == 2 and "needs --gap" in r.output
