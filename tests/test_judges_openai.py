"""The openai: judge against a real loopback HTTP server: answers, retries, timeouts, missing logprobs,
the answer cache and the `t2i-audit judge ask` command."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from judge_server import JudgeServer
from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.evals.judges.base import JudgeRequest, load_judge
from t2i_audit.evals.judges.runner import judge_requests
from t2i_audit.evals.judges.yesno import p_yes_from_top, render_prompt

QUESTIONS = ["Is there a red circle?", "Is the square left of the star?", "Are there two triangles?"]


def answer_fn(image: bytes, prompt: str) -> float:
    """A deterministic judge: P(yes) from the image bytes and the question."""
    h = hashlib.sha256(image + prompt.encode()).digest()
    return (h[0] + 1) / 258


@pytest.fixture
def requests_(tmp_path):
    out = []
    for i in range(4):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        out += [JudgeRequest(p, sha, q, {"k": i}) for q in QUESTIONS]
    return out


def expected(reqs) -> list[float]:
    return [answer_fn(r.image_path.read_bytes(), render_prompt(r.question)) for r in reqs]


def fast(server, **kw):
    return load_judge(server.spec(), **{"max_retries": 3, "backoff_s": 0.01, "timeout_s": 5, **kw})


def test_soft_answers_match_the_server(requests_):
    with JudgeServer(answer_fn) as srv:
        answers, usage = judge_requests(fast(srv), requests_)
    assert [a.p_yes for a in answers] == pytest.approx(expected(requests_), abs=1e-9)
    assert all(a.soft for a in answers) and usage.soft_scores_available and not usage.warnings
    assert usage.sent == usage.http_requests == len(requests_) and usage.retries == 0
    assert usage.prompt_tokens > 0 and usage.completion_tokens == len(requests_)
    assert {a.text for a in answers} <= {"Yes", "No"}


def test_vqascore_normalisation_is_unnormalised(requests_):
    with JudgeServer(answer_fn) as srv:
        answers, _ = judge_requests(fast(srv, normalisation="vqascore"), requests_)
    # the server keeps 2% of the first-token mass for another token: P(yes) over the vocabulary
    assert [a.p_yes for a in answers] == pytest.approx([0.98 * p for p in expected(requests_)], abs=1e-9)


def test_429_and_500_are_retried_with_identical_scores(requests_):
    with JudgeServer(answer_fn) as srv:
        clean, _ = judge_requests(fast(srv), requests_)
        srv.fail(429, 2)
        srv.fail(500, 2)
        retried, usage = judge_requests(fast(srv, concurrency=1, max_retries=5), requests_)
        assert srv.counts["failed"] == 4
    assert [a.p_yes for a in retried] == [a.p_yes for a in clean]
    assert usage.retries == 4 and usage.http_requests == len(requests_) + 4


def test_persistent_500_fails_with_one_line(requests_):
    with JudgeServer(answer_fn) as srv:
        srv.fail(500, 100)
        with pytest.raises(InputError, match=r"HTTP 500 after 3 tries"):
            judge_requests(fast(srv, max_retries=2, concurrency=1), requests_[:1])


def test_hang_past_timeout_exits_2_and_caches_nothing(requests_, tmp_path):
    cache = tmp_path / "answers.sqlite"
    img = requests_[0].image_path
    with JudgeServer(answer_fn, hang_s=10) as srv:
        srv.hang(100)
        r = CliRunner().invoke(main, ["judge", "ask", "--judge", srv.spec(), str(img), QUESTIONS[0], QUESTIONS[1],
                                      "--timeout", "0.3", "--judge-option", "max_retries=1",
                                      "--judge-option", "backoff_s=0.01", "--judge-cache", str(cache)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no answer within the timeout after 2 tries" in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0


def test_no_logprobs_falls_back_to_text_and_says_so(requests_, tmp_path):
    img = requests_[0].image_path
    with JudgeServer(answer_fn) as srv:
        srv.logprobs = False
        answers, usage = judge_requests(fast(srv), requests_)
        r = CliRunner().invoke(main, ["judge", "ask", "--judge", srv.spec(), str(img), QUESTIONS[0]])
    want = [1.0 if p >= 0.5 else 0.0 for p in expected(requests_)]
    assert [a.p_yes for a in answers] == want and not any(a.soft for a in answers)
    assert usage.soft_scores_available is False
    assert any("soft scores unavailable" in w for w in usage.warnings)
    assert r.exit_code == 0, r.output
    assert "soft scores available: false" in r.stdout and "soft scores unavailable" in r.stderr


def test_cache_hit_on_rerun_sends_nothing(requests_, tmp_path):
    cache = tmp_path / "c.sqlite"
    with JudgeServer(answer_fn) as srv:
        first, u1 = judge_requests(fast(srv), requests_ + requests_[:3], cache=cache)
        n = srv.counts["received"]
        again, u2 = judge_requests(fast(srv), requests_, cache=cache)
        assert srv.counts["received"] == n
        other, u3 = judge_requests(fast(srv, normalisation="vqascore"), requests_[:2], cache=cache)
    assert u1.sent == len(requests_) and u1.cache_hits == 0 and u1.requests == len(requests_) + 3
    assert u2.cache_hits == len(requests_) and u2.sent == 0 and u2.http_requests == 0
    assert u2.prompt_tokens is None
    assert [a.p_yes for a in again] == [a.p_yes for a in first[:len(requests_)]]
    assert u3.sent == 2  # another normalisation is another cache key
    assert json.loads(json.dumps(u2.to_dict()))["cache_hits"] == len(requests_)


def test_ask_prints_p_yes_text_soft(requests_):
    r0 = requests_[0]
    with JudgeServer(answer_fn) as srv:
        r = CliRunner().invoke(main, ["judge", "ask", "--judge", srv.spec(), str(r0.image_path), r0.question,
                                      "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["answers"][0]
    assert got["p_yes"] == pytest.approx(expected([r0])[0], abs=1e-9) and got["soft"] is True


@pytest.mark.parametrize("spec, msg", [
    ("openai:http://127.0.0.1:1/v1", "openai:BASE_URL#MODEL"),
    ("openai:localhost:8000#m", "must start with http"),
    ("opena:http://x#m", "did you mean 'openai'"),
])
def test_bad_specs_are_one_line_errors(spec, msg):
    with pytest.raises(InputError, match=msg):
        load_judge(spec)


def test_unknown_option_and_normalisation():
    with pytest.raises(InputError, match="did you mean 'timeout_s'"):
        load_judge("openai:http://127.0.0.1:1/v1#m", timeout=3)
    with pytest.raises(InputError, match="normalisation"):
        load_judge("openai:http://127.0.0.1:1/v1#m", normalisation="softmax")


def test_p_yes_sums_surface_variants():
    top = [("Yes", math.log(0.5)), (" yes", math.log(0.1)), ("▁YES", math.log(0.06)), ("No", math.log(0.2)),
           ("no.", math.log(0.1)), ("maybe", math.log(0.04))]
    assert p_yes_from_top(top, "yes_vs_no") == pytest.approx(0.66 / 0.96)
    assert p_yes_from_top(top, "vqascore") == pytest.approx(0.66)
    assert math.isnan(p_yes_from_top([("maybe", 0.0)], "yes_vs_no"))


def test_served_judge_and_server_process(requests_, mod_judge):
    """serve_judge asks a Judge the original request (spec included); a server in a child process
    answers the same as one in a thread."""
    from judge_server import serve_judge
    from t2i_audit.evals.judges.loopback import ProcessJudgeServer
    from t2i_audit.evals.judges.runner import JudgeUsage

    inner = load_judge(mod_judge)
    want = [a.p_yes for a in inner.answer(requests_)]
    with JudgeServer(serve_judge(inner, requests_)) as srv:
        got, usage = judge_requests(fast(srv), requests_)
    with ProcessJudgeServer(serve_judge(inner, requests_)) as srv:
        got2, _ = judge_requests(fast(srv), requests_)
    assert [a.p_yes for a in got] == pytest.approx(want, abs=1e-12) == [a.p_yes for a in got2]
    assert JudgeUsage.from_dict(json.loads(json.dumps(usage.to_dict()))) == usage


@pytest.fixture
def mod_judge(tmp_path, monkeypatch):
    (tmp_path / "spec_judge_mod.py").write_text(
        "def answer(requests):\n"
        "    return [0.1 + 0.8 * (len(r.question) % 7) / 6 + 0.01 * r.spec['k'] for r in requests]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "python:spec_judge_mod:answer"
