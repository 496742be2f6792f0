"""`t2i-audit audit ...` end to end on a fabricated run directory (docs/results-schema.md)."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng


def fabricate_run(run, per_prof=24, ipp=4, profs=("firefighter", "chef"), suite="pictoworld-bias"):
    """A complete run directory: run.json, manifest.parquet, images/, with known attributes."""
    (run / "images").mkdir(parents=True)
    spec = BiasSpec.load()
    rows, i = [], 0
    for prof in profs:
        for j in range(per_prof):
            sc = sample_scene(scene_rng(5, i), spec, kind="person", profession=prof, mode="neutral")
            rows.append((f"neutral-{prof}-{j // ipp}", "neutral", {"profession": prof}, f"a {prof}", j, sc))
            i += 1
        for pres in ("man", "woman"):
            for j in range(4):
                sc = sample_scene(scene_rng(6, i), spec, kind="person", profession=prof, mode="presentation")
                sc = replace(sc, person=replace(sc.person, presentation=pres))
                rows.append((f"explicit-{prof}-{pres}", "explicit", {"profession": prof, "presentation": pres},
                             f"a {pres} {prof}", j, sc))
                i += 1
    man = []
    for pid, cat, slots, text, seed, sc in rows:
        iid = f"{pid}-s{seed}"
        render(sc).save(run / "images" / f"{iid}.png")
        man.append({"prompt_id": pid, "category": cat, "template": "t", "slots": json.dumps(slots), "text": text,
                    "tags": [cat], "expect": None, "seed": seed, "image_id": iid, "path": f"images/{iid}.png",
                    "sha256": "0" * 64, "width": 32, "height": 32, "seconds": 0.0,
                    "_pres": sc.person.presentation})
    df = pd.DataFrame(man)
    df.drop(columns="_pres").to_parquet(run / "manifest.parquet", index=False)
    (run / "run.json").write_text(json.dumps({"schema": "t2i-audit/run/1", "run_id": "fab", "status": "complete",
                                              "suite": {"name": suite, "version": "1", "hash": "x"},
                                              "generator": {"id": "fabricated"}}))
    return df


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("audit") / "run"
    df = fabricate_run(run)
    return run, df


def test_audit_bias_oracle_end_to_end(run_dir):
    run, df = run_dir
    r = CliRunner().invoke(main, ["audit", "bias", str(run), "--probe", "oracle-presentation", "--probe",
                                  "oracle-skin", "--bootstrap", "100", "--calibration-n", "60", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "raw → corrected" in r.output and "limits:" in r.output and "adherence asked=woman" in r.output
    out = run / "audits"
    bias = pd.read_parquet(out / "bias.parquet")
    for col in ("attribute", "group", "cls", "raw", "raw_ci_low", "raw_ci_high", "corrected", "corr_ci_low",
                "corr_ci_high", "reference", "n_images", "n_prompts", "abstain_rate", "probe"):
        assert col in bias.columns
    # the oracle is exact on renders: raw = corrected = the planted share of the neutral images
    neu = df[df.category == "neutral"]
    fire = neu[neu.prompt_id.str.contains("firefighter")]
    row = bias[(bias.probe == "oracle-presentation") & (bias.group == "firefighter") & (bias.cls == "man")].iloc[0]
    assert row.raw == pytest.approx((fire._pres == "man").mean())
    assert row.corrected == pytest.approx(row.raw, abs=1e-6)
    assert row.raw_ci_low <= row.raw <= row.raw_ci_high and row.n_images == 24 and row.n_prompts == 6
    assert row.training == pytest.approx(0.85)  # default bias spec
    stats = pd.read_parquet(out / "bias_stats.parquet")
    adh = stats[(stats.statistic == "adherence") & (stats.group == "asked=woman")].iloc[0]
    assert adh.value == pytest.approx(1.0)
    assert {"parity_gap", "normalized_entropy", "tv_to_reference", "kl_to_reference", "chi2_p_holm",
            "amplification[man]"} <= set(stats.statistic)
    summ = json.loads((out / "bias.json").read_text())
    assert summ["schema"] == "t2i-audit/bias/1" and summ["limits"] and "correction" in summ["methodology"]
    assert set(bias.attribute) == {"presentation", "skin", "presentation×skin"}


def test_audit_bias_reference_csv_and_errors(run_dir, tmp_path):
    run, _ = run_dir
    ref = tmp_path / "ref.csv"
    ref.write_text("attribute,group,cls,share\npresentation,*,man,0.8\npresentation,*,woman,0.2\n")
    r = CliRunner().invoke(main, ["audit", "bias", str(run), "--probe", "oracle-presentation", "--reference",
                                  str(ref), "--bootstrap", "60", "--calibration", "none", "--no-progress"])
    assert r.exit_code == 0, r.output
    bias = pd.read_parquet(run / "audits" / "bias.parquet")
    assert set(bias.reference.round(3)) == {0.8, 0.2} and bias.corrected.isna().all()
    ref.write_text("attribute,group,cls,share\npresentation,*,man,0.8\npresentation,*,woman,0.3\n")
    bad = [
        ["audit", "bias", str(tmp_path / "nope")],
        ["audit", "bias", str(run), "--probe", "oracle-hair"],
        ["audit", "bias", str(run), "--probe", "pictoworld-presentaton"],
        ["audit", "bias", str(run), "--probe", "oracle-presentation", "--reference", str(ref)],
        ["audit", "bias", str(run), "--probe", "oracle-presentation", "--calibration", str(tmp_path / "x")],
        ["audit", "plan", "--gap", "1.5"],
        ["audit", "memorization", str(run), "--train", str(tmp_path / "missing")],
    ]
    for args in bad:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output


def test_audit_memorization_end_to_end(run_dir, tmp_path):
    run, df = run_dir
    train = tmp_path / "train"
    train.mkdir()
    spec = BiasSpec.load()
    for i in range(40):
        render(sample_scene(scene_rng(77, i), spec, kind="multi")).save(train / f"t{i}.png")
    from PIL import Image

    Image.open(run / df.path[0]).save(train / "copied.png")  # one generated image is a training image
    r = CliRunner().invoke(main, ["audit", "memorization", str(run), "--train", str(train), "--top", "3"])
    assert r.exit_code == 0, r.output
    pairs = pd.read_parquet(run / "audits" / "memorization.parquet")
    top = pairs.iloc[0]
    assert top.image_id == df.image_id[0] and top.pixel_train_id == "copied.png" and top.near_copy
    summ = json.loads((run / "audits" / "memorization.json").read_text())
    assert summ["near_copies"] >= 1 and summ["n_generated"] == len(df)


def test_audit_plan_cli():
    r = CliRunner().invoke(main, ["audit", "plan", "--gap", "0.1", "--power", "0.8"])
    assert r.exit_code == 0 and "images per group: 194" in r.output
    r = CliRunner().invoke(main, ["audit", "plan", "--gap", "0.1", "--icc", "0.05", "--images-per-prompt", "8",
                                  "--simulate", "400"])
    assert r.exit_code == 0 and "33 prompts x 8 images per prompt" in r.output
    sim = float(r.output.split("repeats: ")[1].split()[0])
    assert abs(sim - 0.8) < 0.1


@pytest.mark.slow
def test_occupations_like_run_with_real_probes_on_tiny_clip(tmp_path):
    """Real-world probes on a tiny random open_clip: mechanics only (no calibration)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / "tiny-audit-cli-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    torch.manual_seed(0)
    save_file(open_clip.create_model("tiny-audit-cli-clip", pretrained=None).state_dict(), str(tmp_path / "w.safetensors"))
    run = tmp_path / "run"
    fabricate_run(run, per_prof=8, profs=("chef",), suite="occupations")
    m = pd.read_parquet(run / "manifest.parquet")
    m["slots"] = [json.dumps({"occupation": "nurse", **({"gender": json.loads(s)["presentation"]}
                                                         if "presentation" in s else {})}) for s in m.slots]
    m.to_parquet(run / "manifest.parquet", index=False)
    # a user probe file without abstention, beside the two shipped real-world probes
    (tmp_path / "p.yaml").write_text("name: my-gender\nattribute: presentation\ndomain: real\n"
                                     "prompts: {man: [a photo of a man], woman: [a photo of a woman]}\n")
    clip = f"open_clip:{path}:{tmp_path / 'w.safetensors'}"
    r = CliRunner().invoke(main, ["audit", "bias", str(run), "--clip", clip, "--probe", "real-gender-presentation",
                                  "--probe", "real-skin-tone", "--probe", str(tmp_path / "p.yaml"),
                                  "--bootstrap", "60", "--no-progress"])
    assert r.exit_code == 0, r.output
    bias = pd.read_parquet(run / "audits" / "bias.parquet")
    assert set(bias.probe) >= {"real-gender-presentation", "real-skin-tone", "my-gender"}
    assert bias.corrected.isna().all() and "no calibration" in r.output
    assert set(bias.group) >= {"nurse", "all", "asked=man", "asked=woman"}
    assert ((bias.abstain_rate < 1) == np.isfinite(bias.raw)).all()
    mine = bias[bias.probe == "my-gender"]
    assert (mine.abstain_rate == 0).all() and np.allclose(mine.groupby("group").raw.sum(), 1.0)


@pytest.mark.slow
def test_occupations_suite_sampled_by_tiny_diffusers_then_audited(tmp_path, monkeypatch):
    """Real-model mechanics: `sample` the occupations suite with a tiny random diffusers pipeline,
    then `audit bias` it with the real-world probes on a tiny random open_clip."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from test_adapters import build_tiny_sd

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    build_tiny_sd(tmp_path / "sd")
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["sample", "--suite", "occupations", "--out", str(run), "--generator",
                                  f"diffusers:{tmp_path / 'sd'}", "--limit", "6", "--images-per-prompt", "2",
                                  "--param", "num_inference_steps=2", "--param", "height=16", "--param", "width=16"])
    assert r.exit_code == 0, r.output
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / "tiny-audit-sd-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    torch.manual_seed(0)
    save_file(open_clip.create_model("tiny-audit-sd-clip", pretrained=None).state_dict(),
              str(tmp_path / "w.safetensors"))
    r = CliRunner().invoke(main, ["audit", "bias", str(run), "--clip", f"open_clip:{path}:{tmp_path / 'w.safetensors'}",
                                  "--bootstrap", "50", "--no-progress"])
    assert r.exit_code == 0, r.output
    bias = pd.read_parquet(run / "audits" / "bias.parquet")
    assert set(bias.probe) >= {"real-gender-presentation", "real-skin-tone"} and bias.n_images.max() >= 2
    assert "Perceived" in r.output or "perceived" in r.output


def test_bias_audit_config_round_trips():
    from t2i_audit.audits.bias.bias_audit import BiasAuditConfig

    c = BiasAuditConfig(probes=["oracle-skin"], reference="r.csv", bootstrap=77, group_slots=("occupation",))
    assert BiasAuditConfig.from_dict(json.loads(c.to_json())) == c


def test_probe_agreement_on_images_both_probes_answered():
    """Planted readings: probe B abstains on 4 of A's 'woman' images. On all answered images the
    shares differ (A 6/10 women, B 2/6); on the 6 images both answered they agree exactly."""
    from types import SimpleNamespace

    from t2i_audit.audits.bias.bias_audit import probe_agreement
    from t2i_audit.audits.probes.attribute_probes import UNSURE, ProbeOutput

    classes = ("man", "woman")
    images = pd.DataFrame({"image_id": [f"i{j}" for j in range(12)], "prompt_id": ["p"] * 12,
                           "group": ["chef"] * 10 + ["doctor"] * 2,
                           "slots": [{"profession": "chef"}] * 10 + [{"profession": "doctor"}] * 2})
    a = ProbeOutput(classes, np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0]))
    b = ProbeOutput(classes, np.array([UNSURE] * 4 + [1, 1, 0, 0, 0, 0, 1, 1]))
    bias = pd.DataFrame([{"attribute": "presentation", "group": "chef", "cls": c, "raw": r, "corrected": np.nan,
                          "probe": p, "section": "neutral"}
                         for p, shares in (("A", (0.4, 0.6)), ("B", (4 / 6, 2 / 6))) for c, r in zip(classes, shares)])
    probes = [SimpleNamespace(name="A", classes=classes), SimpleNamespace(name="B", classes=classes)]
    (row,) = probe_agreement(bias, {"A": a, "B": b}, probes, images)
    assert row["max_abs_diff"] == pytest.approx(0.6 - 2 / 6)
    assert row["common"] == {"n": 6, "n_group": 10, "max_abs_diff": 0.0, "per_image_agreement": 1.0}
    assert "common" not in probe_agreement(bias)[0]  # without per-image outputs: the estimates only
