"""Attribute probes: definitions as data, zero-shot rules, oracle and callable probes, calibration."""

import json

import numpy as np
import pytest
import torch

from t2i_audit.audits.probes.attribute_probes import (
    NO_PERSON,
    UNSURE,
    CallableProbe,
    JointProbe,
    OracleProbe,
    ProbeError,
    ProbeSpec,
    ZeroShotProbe,
    builtin_probe_names,
    load_probe_spec,
    make_probe,
)
from t2i_audit.audits.probes.probe_calibration import calibrate, calibrate_on_pictoworld, pictoworld_people


class WordExtractor:
    """Text -> one-hot of the first class word it contains; images are given as embeddings."""

    id = "words"
    words = ("woman", "man", "circle")

    def embed_texts(self, texts):
        out = torch.zeros(len(texts), 3)
        for i, t in enumerate(texts):
            for j, w in enumerate(self.words):
                if w in t.split():
                    out[i, j] = 1
                    break
        return out


SPEC = ProbeSpec(name="t", attribute="presentation", prompts={"man": ["a man {p}"], "woman": ["a woman {p}"]},
                 none_prompts=["a circle"], margin=0.3, temperature=10.0, slots={"p": ["chef", "doctor"]})


def test_builtin_probes_load_and_expand():
    names = builtin_probe_names()
    assert {"pictoworld-presentation", "pictoworld-skin", "pictoworld-profession", "real-gender-presentation",
            "real-skin-tone"} <= set(names)
    for n in names:
        s = load_probe_spec(n)
        assert s.limits, f"{n} must state its limits"
        ex = s.expanded()
        assert all(len(v) >= 3 for v in ex.values())
        assert not any("{" in t or "}" in t for v in ex.values() for t in v)
    skin = load_probe_spec("real-skin-tone")
    assert skin.classes == ("light", "medium", "dark") and "Monk" in skin.limits
    assert ProbeSpec.from_dict(SPEC.to_dict()) == SPEC


def test_probe_spec_errors(tmp_path):
    with pytest.raises(ProbeError, match="did you mean 'margin'"):
        ProbeSpec.from_dict({**SPEC.to_dict(), "margn": 0.1})
    with pytest.raises(ProbeError, match="margin"):
        ProbeSpec.from_dict({**SPEC.to_dict(), "margin": 2})
    with pytest.raises(ProbeError, match="placeholder"):
        ProbeSpec.from_dict({**SPEC.to_dict(), "slots": {}})
    with pytest.raises(ProbeError, match="at least two"):
        ProbeSpec.from_dict({"name": "x", "attribute": "a", "prompts": {"one": ["x"]}})
    with pytest.raises(ProbeError, match="unknown probe"):
        load_probe_spec("pictoworld-presentaton")
    (tmp_path / "p.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ProbeError, match="not valid YAML"):
        load_probe_spec(tmp_path / "p.yaml")
    with pytest.raises(ProbeError, match="needs an evaluator"):
        make_probe("pictoworld-skin")


def test_zero_shot_rules_margin_and_no_person():
    p = ZeroShotProbe(SPEC, WordExtractor())
    emb = np.array([[0.0, 1.0, 0.0],   # man
                    [1.0, 0.0, 0.0],   # woman
                    [0.7, 0.72, 0.0],  # nearly tied -> unsure
                    [0.0, 0.0, 1.0]])  # no person prompts win
    out = p.classify_embeddings(emb)
    assert out.labels.tolist() == [0, 1, UNSURE, NO_PERSON]
    assert out.names() == ["man", "woman", "unsure", "no person"]
    # prompts of a class are averaged: the text matrix has one unit row per class (+ none)
    assert p.text_matrix().shape == (3, 3)
    np.testing.assert_allclose(np.linalg.norm(p.text_matrix(), axis=1), 1.0)


def test_zero_shot_probe_runs_on_tiny_random_open_clip(tmp_path):
    import open_clip

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / "tiny-audit-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-audit-clip", pretrained=None).eval()
    from safetensors.torch import save_file

    from t2i_audit.evals.features.extractors import load_extractor

    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    ext = load_extractor(f"open_clip:{path}:{tmp_path / 'w.safetensors'}")
    imgs, _ = pictoworld_people(6, seed=1)
    for name in ("real-gender-presentation", "real-skin-tone", "pictoworld-presentation"):
        probe = make_probe(name, ext)
        out = probe.predict(imgs)
        assert out.labels.shape == (6,) and set(out.labels) <= set(range(len(probe.classes))) | {UNSURE, NO_PERSON}
        # the same images through precomputed embeddings give the same labels
        assert (probe.classify_embeddings(probe.embed(imgs)).labels == out.labels).all()
        assert probe.describe()["extractor"].startswith("open_clip:")


def test_oracle_probe_reads_renders_and_calibrates_to_identity():
    imgs, table = pictoworld_people(30, seed=4)
    pres, skin = OracleProbe("presentation"), OracleProbe("skin")
    assert pres.predict(imgs).names() == list(table.presentation)
    cals = calibrate_on_pictoworld([pres, skin, JointProbe(pres, skin)], n=30, seed=4)
    for c in cals.values():
        assert c.accuracy == 1.0 and c.counts.sum() == 30
    assert cals["oracle-presentation×oracle-skin"].classes[0] == "man|light"
    with pytest.raises(ProbeError):
        OracleProbe("hair")


def test_callable_probe_and_calibration_of_a_noisy_classifier():
    truth = ["man"] * 50 + ["woman"] * 50
    flip = {3, 7, 60}

    def fn(images):
        return [("woman" if t == "man" else "man") if i in flip else (None if i == 10 else t)
                for i, t in enumerate(truth)]

    p = CallableProbe("noisy", "presentation", ("man", "woman"), fn)
    cal = calibrate(p, list(range(100)), truth)
    assert cal.counts.tolist() == [[47, 2, 1, 0], [1, 49, 0, 0]]
    A, a = cal.conditional()
    np.testing.assert_allclose(A[0], [47 / 49, 2 / 49])
    assert a[0] == pytest.approx(1 / 50)
    with pytest.raises(ProbeError, match="not one of"):
        CallableProbe("x", "presentation", ("man", "woman"), lambda ims: ["cat"] * len(ims)).predict([0])
