"""Each benchmark file format loads from a fixture written here; malformed input names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from t2i_audit.errors import InputError
from t2i_audit.evals.alignment.formats import detect_format, load_questions
from t2i_audit.evals.alignment.questions import read_question_file, write_questions

FIX = Path(__file__).parent / "fixtures" / "alignment"


def test_tifa():
    qs = load_questions(FIX / "tifa_questions.json")
    assert [q.question_id for q in qs] == ["t1:q1", "t1:q2", "t1:q3", "t2:q1"]
    assert qs[0].answer == "yes" and qs[0].skill == "object" and qs[0].prompt == "two green kites over a lake"
    assert qs[1].text == 'how many kites are there? Is the answer "2"?' and qs[1].answer == "yes"
    assert qs[1].extra["original_answer"] == "2" and qs[1].extra["choices"] == ["1", "2", "3"]
    assert qs[2].answer == "no"


def test_dsg_dependencies():
    qs = load_questions(FIX / "dsg.csv")
    assert detect_format(FIX / "dsg.csv") == "dsg"
    by = {q.question_id: q for q in qs}
    assert by["d1:1"].parents == () and by["d1:3"].parents == ("d1:1",)
    assert by["d1:5"].parents == ("d1:1", "d1:2") and by["d1:5"].skill == "relation"
    assert by["d1:3"].extra["category_detailed"] == "color"


def test_geneval2():
    qs = load_questions(FIX / "geneval2.jsonl")
    assert len(qs) == 6 and {q.prompt_id for q in qs} == {"geneval2-00001", "geneval2-00003"}
    assert qs[0].skill == "count" and qs[0].text.endswith('Is the answer "three"?')
    assert qs[1].answer == "yes" and qs[1].text == "Are the boats wooden?" and qs[4].skill == "position"


def test_geneval_metadata():
    qs = load_questions(FIX / "geneval_metadata.jsonl")
    texts = [q.text for q in qs]
    assert "Are there exactly three apples?" in texts
    assert "Is the bus yellow?" in texts and "Is the clock purple?" in texts
    rel = next(q for q in qs if q.skill == "relation")
    assert rel.text == "Is the fork right of the cup?" and len(rel.parents) == 2
    color = next(q for q in qs if q.text == "Is the bus yellow?")
    assert color.parents == (next(q for q in qs if q.text == "Is there a bus?").question_id,)


@pytest.mark.parametrize("name,prompts", [
    ("parti.tsv", ["A lighthouse at dusk", "A glass of milk next to a ladder"]),
    ("drawbench.csv", ["A pink rhino wearing boots", 'A sign that says "open", in neon']),
    ("compbench_color.txt", ["a red book and a yellow vase", "a blue bench and a green cup"]),
])
def test_prompt_lists(name, prompts):
    qs = load_questions(FIX / name)
    assert [q.prompt for q in qs] == prompts
    assert all(q.skill == "whole-prompt" and q.text.startswith('Does this figure show "') for q in qs)


def test_question_file_round_trip(tmp_path):
    qs = load_questions(FIX / "dsg.csv")
    write_questions(tmp_path / "q.jsonl", qs)
    assert read_question_file(tmp_path / "q.jsonl") == qs
    assert load_questions(tmp_path / "q.jsonl") == qs


def test_malformed_inputs_name_file_and_line(tmp_path):
    with pytest.raises(InputError, match=r"bad\.jsonl:1: not valid JSON"):
        load_questions(FIX / "bad.jsonl")
    with pytest.raises(InputError, match=r"bad_dsg\.csv:2: dependency 'x'"):
        load_questions(FIX / "bad_dsg.csv")
    p = tmp_path / "g2.jsonl"
    p.write_text('{"prompt": "x", "vqa_list": [["q?", "Yes"]], "skills": ["a", "b"]}\n')
    with pytest.raises(InputError, match=r"g2\.jsonl:1: 'skills' must list one skill"):
        load_questions(p)
    p = tmp_path / "q.yaml"
    p.write_text("x")
    with pytest.raises(InputError, match="cannot tell the format"):
        load_questions(p)
