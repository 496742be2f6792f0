"""The hf: judge on a tiny random LLaVA saved in transformers' format (built offline): batched answers
equal one-at-a-time ones, hub ids resolve from a local hub cache, pickles are refused."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from hub_cache import add_to_cache
from t2i_audit.errors import InputError
from t2i_audit.evals.judges.base import JudgeRequest, load_judge
from t2i_audit.evals.judges.runner import judge_requests
from t2i_audit.evals.judges.tiny_vlm import build_tiny_vlm

QUESTIONS = ["Is there a red circle?", "Is the blue square left of the green triangle?",
             'Does this figure show "two yellow stars above a circle"? Please answer yes or no.']


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava")


@pytest.fixture(scope="module")
def reqs(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    out = []
    for i in range(5):  # different sizes and contents; questions of different lengths -> padding
        p = d / f"{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20 + 6 * i, 28, 3), dtype=np.uint8)).save(p)
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        out += [JudgeRequest(p, sha, q) for q in QUESTIONS]
    return out


@pytest.mark.parametrize("normalisation", ["yes_vs_no", "vqascore"])
def test_batched_equals_one_at_a_time(vlm, reqs, normalisation):
    batched = load_judge(f"hf:{vlm}", batch_size=8, normalisation=normalisation).answer(reqs)
    single = load_judge(f"hf:{vlm}", batch_size=1, normalisation=normalisation).answer(reqs)
    a, b = np.array([x.p_yes for x in batched]), np.array([x.p_yes for x in single])
    assert np.abs(a - b).max() <= 1e-5
    assert all(x.soft for x in batched) and np.all((a >= 0) & (a <= 1))
    assert a.std() > 1e-3  # the answers depend on image and question
    assert [x.text for x in batched] == [x.text for x in single]


def test_p_yes_is_the_first_token_distribution(vlm, reqs):
    j = load_judge(f"hf:{vlm}", batch_size=1)
    r = reqs[0]
    enc = j.processor(images=[Image.open(r.image_path).convert("RGB")], text=j._texts([r]), return_tensors="pt")
    with torch.no_grad():
        probs = j.model(**enc).logits[0, -1].softmax(-1)
    py, pn = probs[j.yes_ids].sum().item(), probs[j.no_ids].sum().item()
    assert j.answer([r])[0].p_yes == pytest.approx(py / (py + pn), abs=1e-6)
    v = load_judge(f"hf:{vlm}", normalisation="vqascore").answer([r])[0].p_yes
    assert v == pytest.approx(py, abs=1e-6)
    assert len(j.yes_ids) == 3 and len(j.no_ids) == 3  # yes, Yes, YES / no, No, NO


def test_hub_id_from_the_local_cache(vlm, reqs, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    commit = add_to_cache(cache, "tiny-org/tiny-llava", vlm)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    j = load_judge("hf:tiny-org/tiny-llava@main")
    assert j.revision == commit
    local = load_judge(f"hf:{vlm}")
    assert [a.p_yes for a in j.answer(reqs[:3])] == pytest.approx([a.p_yes for a in local.answer(reqs[:3])], abs=1e-6)
    with pytest.raises(InputError, match="not in the Hugging Face cache"):
        load_judge("hf:tiny-org/absent")


def test_pickle_weights_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(InputError, match="pickle"):
        load_judge(f"hf:{tmp_path}")
    with pytest.raises(InputError, match="no such folder"):
        load_judge(f"hf:{tmp_path / 'missing'}")


def test_runner_caches_hf_answers(vlm, reqs, tmp_path):
    j = load_judge(f"hf:{vlm}")
    a1, u1 = judge_requests(j, reqs, cache=tmp_path / "c.sqlite")
    a2, u2 = judge_requests(j, reqs, cache=tmp_path / "c.sqlite")
    assert u1.sent == len(reqs) and u2.cache_hits == len(reqs) and u2.sent == 0
    assert [a.p_yes for a in a1] == [a.p_yes for a in a2]
    assert u1.prompt_tokens is None and u1.soft_scores_available


def test_judge_ask_with_an_hf_judge(vlm, reqs):
    import json

    from click.testing import CliRunner

    from t2i_audit.cli import main

    r0 = reqs[1]
    r = CliRunner().invoke(main, ["judge", "ask", "--judge", f"hf:{vlm}", str(r0.image_path), r0.question,
                                  "--threads", "1", "--judge-option", "batch_size=4", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    want = load_judge(f"hf:{vlm}").answer([r0])[0]
    assert got["answers"][0]["p_yes"] == pytest.approx(want.p_yes, abs=1e-6) and got["answers"][0]["soft"]
    assert got["usage"]["soft_scores_available"] is True and got["usage"]["revision"].startswith("sha256:")
    bad = CliRunner().invoke(main, ["judge", "ask", "--judge", f"hf:{vlm}", str(r0.image_path), "q",
                                    "--judge-option", "batchsize=4"])
    assert bad.exit_code == 2 and "did you mean 'batch_size'" in bad.stderr
