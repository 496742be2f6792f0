"""TIFA, DSG (gated and not), Soft-TIFA AM/GM and VQAScore equal hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import gmean

from t2i_audit.evals.alignment.formats import load_questions
from t2i_audit.evals.alignment.scores import gated, image_scores, overall, prompt_scores, skill_table

FIX = Path(__file__).parent / "fixtures" / "alignment"


def _answers(qs, p_yes, image="i1"):
    return pd.DataFrame({"image_id": image, "prompt_id": [q.prompt_id for q in qs],
                         "question_id": [q.question_id for q in qs], "skill": [q.skill for q in qs],
                         "answer": [q.answer for q in qs], "parents": [q.parents for q in qs], "p_yes": p_yes})


def test_dsg_gated_and_soft_tifa_hand_values():
    qs = load_questions(FIX / "dsg.csv")  # 1 cat, 2 chair, 3 orange(1), 4 sleeping(1), 5 on(1,2)
    p = [0.9, 0.2, 0.8, 0.3, 0.7]
    s = image_scores(_answers(qs, p)).iloc[0]
    assert s["tifa"] == pytest.approx(3 / 5) and s["dsg"] == pytest.approx(3 / 5)
    assert s["dsg_gated"] == pytest.approx(2 / 5)  # q5 gated by the failed chair
    assert s["soft_tifa_am"] == pytest.approx(2.9 / 5, abs=1e-15)
    assert s["soft_tifa_gm"] == pytest.approx((0.9 * 0.2 * 0.8 * 0.3 * 0.7) ** 0.2, rel=1e-12)
    assert s["soft_tifa_gm"] == pytest.approx(gmean(p), rel=1e-12)
    assert np.isnan(s["vqascore"])


def test_gating_is_transitive_and_zero_gm():
    v = gated({"a": 0.0, "b": 1.0, "c": 1.0}, {"b": ("a",), "c": ("b",)})
    assert v == {"a": 0.0, "b": 0.0, "c": 0.0}
    qs = load_questions(FIX / "dsg.csv")
    assert image_scores(_answers(qs, [0.9, 0.0, 0.8, 0.3, 0.7])).iloc[0]["soft_tifa_gm"] == 0.0


def test_tifa_with_no_answers_and_vqascore():
    qs = load_questions(FIX / "tifa_questions.json") + load_questions(FIX / "parti.tsv")[:1]
    qs = [q for q in qs if q.prompt_id == "t1"]
    a = _answers(qs, [0.6, 0.4, 0.1])  # yes ok, count wrong, "no" answered no -> right (p_right 0.9)
    s = image_scores(a).iloc[0]
    assert s["tifa"] == pytest.approx(2 / 3)
    assert s["soft_tifa_am"] == pytest.approx((0.6 + 0.4 + 0.9) / 3)
    whole = pd.DataFrame({"image_id": ["i1", "i2"], "prompt_id": "p", "question_id": "p:vqa",
                          "skill": "whole-prompt", "answer": "yes", "p_yes": [0.25, 0.75]})
    per_image = image_scores(whole)
    assert list(per_image["vqascore"]) == [0.25, 0.75]
    assert prompt_scores(per_image)["vqascore"].iloc[0] == pytest.approx(0.5)


def test_per_prompt_mean_overall_interval_and_skills():
    qs = load_questions(FIX / "dsg.csv")
    rng = np.random.default_rng(0)
    frames = []
    for k in range(12):  # 12 prompts (copies of d1) x 2 images
        for im in range(2):
            f = _answers(qs, rng.uniform(size=5), f"img{k}-{im}")
            f["prompt_id"] = f"d{k}"
            f["question_id"] = [f"d{k}:{q.question_id}" for q in qs]
            f["parents"] = [tuple(f"d{k}:{p}" for p in q.parents) for q in qs]
            frames.append(f)
    a = pd.concat(frames, ignore_index=True)
    img = image_scores(a)
    per = prompt_scores(img)
    assert len(per) == 12 and (per["n_images"] == 2).all()
    assert per["tifa"].iloc[0] == pytest.approx(img[img.prompt_id == per.prompt_id.iloc[0]]["tifa"].mean())
    o = overall(img, reps=300)
    assert o["tifa"]["value"] == pytest.approx(img["tifa"].mean())
    assert o["tifa"]["ci_low"] <= o["tifa"]["value"] <= o["tifa"]["ci_high"] and o["tifa"]["n_prompts"] == 12
    assert "vqascore" not in o
    t = skill_table(a, reps=300)
    acc = t[(t.skill == "relation") & (t.statistic == "accuracy")].iloc[0]
    assert acc["value"] == pytest.approx((a[a.skill == "relation"]["p_yes"] >= 0.5).mean()) and acc["n"] == 24
