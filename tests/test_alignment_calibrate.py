"""Suite questions are a deterministic scene graph; PPI++ per question type recovers a planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from t2i_audit.errors import InputError
from t2i_audit.evals.alignment.calibrate import attach_labels, calibrated_table, read_labels, shift_warnings
from t2i_audit.evals.alignment.questions import questions_from_expect, questions_from_suite
from t2i_audit.evals.suites.loader import load_suite
from t2i_audit.world.expect import judge
from t2i_audit.world.oracle import read_image


def test_suite_questions_scene_graph():
    s = load_suite("pictoworld-skills")
    a, b = questions_from_suite(s), questions_from_suite(s)
    assert a == b and len({q.question_id for q in a}) == len(a)
    qs = questions_from_expect("p", "two shapes", {
        "objects": [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}], "count": 2,
        "relation": {"a": 0, "b": 1, "rel": "left of"}})
    by = {q.skill: q for q in qs}
    assert [q.text for q in qs if q.skill == "object"] == ["Is there a circle?", "Is there a square?"]
    assert by["relation"].text == "Is the red circle left of the blue square?"
    assert set(by["relation"].parents) == {"p:q1", "p:q3"} and [q.parents for q in qs if q.skill == "attribute"] == [("p:q1",), ("p:q3",)]
    assert by["whole-prompt"].spec["check"]["count"] == 2
    people = questions_from_expect("h", "a woman chef", {"person": {"profession": "chef", "presentation": "woman"}})
    assert [q.text for q in people][:3] == ["Is there a person?", "Is the person a chef?", "Is the person a woman?"]


def test_oracle_checks_answer_rendered_truth():
    from dataclasses import replace

    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_scene, scene_rng

    sc = sample_scene(scene_rng(5, 0), BiasSpec.load(), kind="pair")
    ex = {"objects": [{"shape": s.shape, "color": s.color} for s in sc.shapes], "count": 2,
          "relation": {"a": 0, "b": 1, "rel": sc.relation}}
    reading = read_image(render(sc, 32))
    assert all(judge(reading, q.spec["check"])[0] for q in questions_from_expect("p", "x", ex))
    flipped = replace(sc, shapes=(replace(sc.shapes[0], position=sc.shapes[1].position),
                                  replace(sc.shapes[1], position=sc.shapes[0].position)))
    verdicts = {q.skill: judge(read_image(render(flipped, 32)), q.spec["check"])[0]
                for q in questions_from_expect("p", "x", ex)}
    assert not verdicts["relation"] and verdicts["object"] and verdicts["count"]


def _planted(seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    for skill, share, acc in (("count", 0.6, 0.7), ("relation", 0.4, 0.55)):
        for p in range(60):
            pshare = np.clip(share + rng.normal(0, 0.15), 0, 1)  # prompt-level variation
            for k in range(10):
                right = rng.random() < pshare
                says_right = right if rng.random() < acc else not right
                rows.append({"image_id": f"{skill}{p}-{k}", "prompt_id": f"{skill}{p}", "question_id": f"{skill}{p}:q",
                             "skill": skill, "answer": "yes", "p_yes": 0.9 if says_right else 0.1, "_right": right})
    return pd.DataFrame(rows)


def test_ppi_per_type_recovers_planted_truth(tmp_path):
    a = _planted(0)
    rng = np.random.default_rng(1)
    lab = a.groupby("skill", group_keys=False).apply(lambda g: g.sample(150, random_state=2))
    labels = pd.DataFrame({"image": lab["image_id"], "question_id": lab["question_id"],
                           "label": np.where(lab["_right"], "yes", "no")})
    labels.loc[labels.index[:3], "label"] = "unsure"
    labels.to_csv(tmp_path / "labels.csv", index=False)
    got, unmatched = attach_labels(a, read_labels(tmp_path / "labels.csv"))
    assert unmatched == 0 and int((got["truth"] == -1).sum()) == 3
    t = calibrated_table(got, reps=500, seed=int(rng.integers(100)),
                         calibration={"relation": {"accuracy": 0.95, "n": 400}}).set_index("skill")
    for skill in ("count", "relation"):
        truth = a[a.skill == skill]["_right"].mean()
        r = t.loc[skill]
        assert abs(r["calibrated"] - truth) < 0.06
        assert r["calibrated_ci_low"] <= truth <= r["calibrated_ci_high"]
        assert abs(r["raw"] - truth) > abs(r["calibrated"] - truth) or abs(r["raw"] - truth) < 0.02
    assert t.loc["relation", "judge_accuracy"] == pytest.approx(0.55, abs=0.1) and t.loc["relation", "shift_detected"]
    assert any("relation" in w for w in shift_warnings(t.reset_index(), "bundled"))


def test_labels_errors(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("image,question_id,label\na.png,q1,yes\na.png,q2,maybe\n")
    with pytest.raises(InputError, match=r"l\.csv:3: label 'maybe'"):
        read_labels(p)
    p.write_text("img,question_id,label\n")
    with pytest.raises(InputError, match=r"l\.csv:1: need columns"):
        read_labels(p)


def test_soft_ppi_equals_table_ppi_on_hard_predictions_and_is_unbiased():
    """ppi_soft with f in {0, 1} is exactly stats.labelled.ppi_shares on the two-class tables; with a
    soft f it still recovers the planted share (PPI++ is unbiased for any prediction)."""
    from t2i_audit.evals.alignment.ppi_soft import prompt_sums, right_share
    from t2i_audit.stats.labelled import label_tables, ppi_shares

    rng = np.random.default_rng(3)
    for _ in range(10):
        n = 600
        pw, pr = rng.integers(0, 2, n), rng.integers(0, 40, n)
        truth = np.full(n, -9)
        idx = rng.choice(n, 150, replace=False)
        truth[idx] = rng.choice([0, 1, -1], 150, p=[0.6, 0.35, 0.05])
        t = label_tables(pw, truth, pr, 2)
        want = ppi_shares(t.L.sum(0), t.U.sum(0))[0]
        assert abs(right_share(prompt_sums(1 - pw, truth, pr).sum(0)) - want) < 1e-12
    est = []
    for _ in range(200):  # a soft, miscalibrated prediction; true share 0.7
        y = rng.random(4000) < 0.7
        f = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 4000), 0, 1)
        truth = np.full(4000, -9)
        lab = rng.choice(4000, 300, replace=False)
        truth[lab] = np.where(y[lab], 0, 1)
        est.append(right_share(prompt_sums(f, truth, np.arange(4000)).sum(0)))
    assert abs(np.mean(est) - 0.7) < 0.005
