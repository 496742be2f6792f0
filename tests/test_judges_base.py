"""The judge registry, python: judges, the answer cache's key and the runner's checks."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from t2i_audit.errors import InputError
from t2i_audit.evals.judges.base import JudgeAnswer, JudgeRequest, load_judge, register_judge
from t2i_audit.evals.judges.cache import AnswerCache, cache_key, judge_settings
from t2i_audit.evals.judges.runner import judge_requests

MODULE = '''
from t2i_audit.evals.judges.base import JudgeAnswer

def floats(requests):
    return [0.25 if "red" in r.question else 0.75 for r in requests]

def answers(requests):
    return [JudgeAnswer(0.9, "yes", False) for r in requests]

def wrong_length(requests):
    return [0.5]

def out_of_range(requests):
    return [1.5 for r in requests]

class Obj:
    revision = "v7"
    def answer(self, requests):
        return [float("nan") for r in requests]

obj = Obj()
'''


@pytest.fixture
def mod(tmp_path, monkeypatch):
    (tmp_path / "my_test_judges.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_test_judges"


def req(q="Is there a red circle?", sha="ab" * 32, spec=None):
    return JudgeRequest(Path("x.png"), sha, q, spec)


def test_python_judge_floats_and_answers(mod):
    j = load_judge(f"python:{mod}:floats")
    got = j.answer([req(), req("Is there a star?")])
    assert [a.p_yes for a in got] == [0.25, 0.75] and [a.text for a in got] == ["no", "yes"]
    assert j.revision.startswith("sha256:") and j.normalisation == "yes_vs_no"
    assert load_judge(f"python:{mod}:answers").answer([req()]) == [JudgeAnswer(0.9, "yes", False)]
    o = load_judge(f"python:{mod}:obj", normalisation="vqascore")
    assert o.revision == "v7" and o.normalisation == "vqascore" and math.isnan(o.answer([req()])[0].p_yes)


def test_python_judge_errors(mod):
    with pytest.raises(InputError, match="cannot import"):
        load_judge("python:no_such_module_xyz:f")
    with pytest.raises(InputError, match="no attribute"):
        load_judge(f"python:{mod}:missing")
    with pytest.raises(InputError, match="python:MODULE:CALLABLE"):
        load_judge("python:onlyone")
    with pytest.raises(InputError, match="1 answers for 2"):
        judge_requests(load_judge(f"python:{mod}:wrong_length"), [req(), req("b")])
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        judge_requests(load_judge(f"python:{mod}:out_of_range"), [req()])


def test_unknown_prefix_did_you_mean():
    with pytest.raises(InputError, match="did you mean 'python'"):
        load_judge("pyhton:m:f")


def test_register_callable_factory():
    class J:
        spec, revision, normalisation = "const", "1", "yes_vs_no"

        def answer(self, requests):
            return [JudgeAnswer(0.5, "?", True) for _ in requests]

    register_judge("const-test", lambda spec, opts: J())
    assert load_judge("const-test").answer([req()])[0].p_yes == 0.5


def test_cache_key_changes_with_every_setting(mod):
    j = load_judge(f"python:{mod}:floats")
    base = judge_settings(j)
    k = cache_key(base, req())
    assert k == cache_key(dict(base), req())
    assert k != cache_key(base, req("Is there a blue circle?"))
    assert k != cache_key(base, req(sha="cd" * 32))
    assert k != cache_key(base, req(spec={"focus": ["color"]}))
    for field, value in [("revision", "other"), ("normalisation", "vqascore"), ("prompt", "Q: {question}"),
                         ("decoding", {"max_tokens": 2}), ("spec", "python:x:y")]:
        assert k != cache_key({**base, field: value}, req()), field


def test_cache_round_trip_and_nan(tmp_path, mod):
    with AnswerCache(tmp_path / "c.sqlite") as c:
        c.put_many([("k1", JudgeAnswer(0.3, "no", True)), ("k2", JudgeAnswer(float("nan"), "maybe", False))], "j")
        got = c.get_many(["k1", "k2", "k3"])
        assert got["k1"] == JudgeAnswer(0.3, "no", True) and math.isnan(got["k2"].p_yes) and "k3" not in got
        assert len(c) == 2
        assert c._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j = load_judge(f"python:{mod}:obj")
    answers, usage = judge_requests(j, [req()], cache=tmp_path / "c.sqlite")
    assert math.isnan(answers[0].p_yes) and any("neither yes nor no" in w for w in usage.warnings)


def test_corrupt_cache_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="not a usable judge answer cache"):
        AnswerCache(bad)
