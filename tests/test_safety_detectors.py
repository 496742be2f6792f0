"""Detectors of the safety audit on a planted embedding space: the concept checker flags exactly the
images whose cosine reaches a concept's threshold, the Q16-style probe follows its softmax rule, the
callable detector maps bools / names / scores, and a real-model run without thresholds is refused."""

import numpy as np
import pytest

from t2i_audit.audits.safety.safety_audit import SafetyAuditConfig, build_detector
from t2i_audit.audits.safety.unsafe_detectors import CallableDetector, ConceptChecker, Q16Probe, parse_concept
from t2i_audit.errors import InputError

AXES = {"a police officer": 0, "a red triangle": 1, "an inappropriate image": 2, "an appropriate image": 3}


class PlantedExtractor:
    """Texts map to basis vectors; an 'image' is its own embedding (a 4-vector)."""

    id = "planted"

    def embed_texts(self, texts):
        return np.stack([np.eye(4)[AXES.get(t, 3)] for t in texts])

    def embed_images(self, images):
        return np.asarray(images, dtype=float)


def test_concept_checker_flags_by_cosine_and_threshold():
    angles = np.linspace(0, np.pi / 2, 7)
    imgs = [[np.cos(a), np.sin(a), 0, 0] for a in angles]  # from 'police officer' to 'red triangle'
    chk = ConceptChecker(
        PlantedExtractor(),
        [parse_concept("cop=a police officer@0.8"), parse_concept("tri=a red triangle@0.9")],
    )
    det = chk.detect(imgs)
    np.testing.assert_allclose(det.scores[:, 0], np.cos(angles), atol=1e-9)
    assert det.flags[:, 0].tolist() == (np.cos(angles) >= 0.8).tolist()
    assert det.flags[:, 1].tolist() == (np.sin(angles) >= 0.9).tolist()
    assert det.readings().tolist() == [0 if f else 1 for f in det.flags.any(1)]
    assert chk.describe()["thresholds"] == {"cop": 0.8, "tri": 0.9}


def test_q16_probe_follows_its_softmax_rule():
    q = Q16Probe(
        PlantedExtractor(),
        threshold=0.5,
        temperature=10.0,
        prompts={"inappropriate": ["an inappropriate image"], "appropriate": ["an appropriate image"]},
    )
    d = np.array([-0.2, -0.01, 0.01, 0.3])
    imgs = [[0, 0, 0.5 + x, 0.5 - x] for x in d]
    det = q.detect(imgs)
    cos = (
        np.array([[0.5 + x, 0.5 - x] for x in d])
        / np.linalg.norm([[0.5 + x, 0.5 - x] for x in d], axis=1)[:, None]
    )
    p = 1 / (1 + np.exp(-10 * (cos[:, 0] - cos[:, 1])))
    np.testing.assert_allclose(det.scores[:, 0], p, atol=1e-9)
    assert det.flags[:, 0].tolist() == [False, False, True, True]


def test_callable_detector_and_refusals(tmp_path, monkeypatch):
    mod = tmp_path / "mydet.py"
    mod.write_text(
        "def fn(images):\n    return [True, False, None, 'violence', {'sexual': 0.7}, {'sexual': 0.2}]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    det = CallableDetector("python:mydet:fn", threshold=0.5).detect([0] * 6)
    assert det.categories == ("sexual", "unsafe", "violence")
    assert det.unsafe.tolist() == [True, False, False, True, True, False]
    with pytest.raises(InputError, match="returned 6 results for 2 images"):
        CallableDetector("python:mydet:fn").detect([0, 0])
    with pytest.raises(InputError, match="cannot import"):
        CallableDetector("python:no_such_module_xyz:fn")
    cfg = SafetyAuditConfig(detector="concepts", concepts=["cop=a police officer"])
    with pytest.raises(InputError, match="calibrated only on PictoWorld runs"):
        build_detector(cfg, "real", PlantedExtractor())
    with pytest.raises(InputError, match="--concept NAME=TEXT@THRESHOLD"):
        build_detector(SafetyAuditConfig(detector="concepts"), "real", PlantedExtractor())
    with pytest.raises(InputError, match="unknown"):
        build_detector(SafetyAuditConfig(detector="q17"), "real", PlantedExtractor())
