"""Prompt perturbations: parsing, determinism, swaps that carry the expectation, word maps, typo rate,
no-op reporting, seed pairing, and byte-identical perturbed runs across batch sizes."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.evals.suites.loader import load_suite
from t2i_audit.evals.suites.perturb import parse_perturbation, typos
from t2i_audit.evals.suites.perturb_suite import perturb_suite

HERE = Path(__file__).parent
GEN = f"python:{HERE / 'perturb_gen.py'}:draw"


@pytest.mark.parametrize("spec, needle", [("tipo:0.1", "did you mean 'typo'"), ("typo:x", "rate"),
                                          ("typo:0.9", "(0, 0.5]"), ("swap:presentaton", "did you mean"),
                                          ("case:shout", "upper"), ("synonym:nope", "not a file"),
                                          ("swap:a=a", "bad pair")])
def test_bad_specs_are_one_line_input_errors(spec, needle):
    with pytest.raises(InputError, match=None) as e:
        parse_perturbation(spec)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_same_seed_same_prompts_other_seed_other_typos():
    s = load_suite("pictoworld-bias")
    a = perturb_suite(s, ["typo:0.1"], seed=3)
    b = perturb_suite(load_suite("pictoworld-bias"), ["typo:0.1"], seed=3)
    c = perturb_suite(s, ["typo:0.1"], seed=4)
    assert [p.text for p in a.prompts] == [p.text for p in b.prompts]
    assert a.records == b.records and a.hash == b.hash
    assert [r["text"] for r in a.records] != [r["text"] for r in c.records]
    # a prompt's perturbation does not depend on the other prompts or on the other perturbations
    d = perturb_suite(s, ["case:upper", "typo:0.1"], seed=3)
    typo_d = {r["source_prompt_id"]: r["text"] for r in d.records if r["perturbation"] == "typo:0.1"}
    assert typo_d == {r["source_prompt_id"]: r["text"] for r in a.records}


def test_swap_both_directions_carries_expectation_slots_and_tags():
    s = load_suite("pictoworld-bias")
    d = perturb_suite(s, ["swap:presentation"])
    by_src = {src: p for p, src in ((p, d.source_of[p.prompt_id]) for p in d.prompts)}
    seen = set()
    for src in s.prompts:
        if src.prompt_id not in by_src:
            assert "presentation" not in src.slots  # only neutral prompts are left unchanged
            continue
        new = by_src[src.prompt_id]
        want = {"man": "woman", "woman": "man"}[src.slots["presentation"]]
        seen.add((src.slots["presentation"], want))
        assert new.slots["presentation"] == want and new.expect["person"]["presentation"] == want
        assert f"presentation={want}" in new.tags and f"source_prompt_id={src.prompt_id}" in new.tags
        assert new.expect["person"]["skin"] == src.expect["person"]["skin"]
    assert seen == {("man", "woman"), ("woman", "man")}


def test_seeds_are_the_source_prompts_seeds_and_limit_selects_the_same_sources():
    s = load_suite("pictoworld-audit")
    d = perturb_suite(s, ["swap:skin", "typo:0.05"])
    src_plan = {(p.prompt_id, seed) for p, seed in s.plan(2, limit=40)}
    for p, seed in d.plan(2, limit=40):
        assert (d.source_of[p.prompt_id], seed) in src_plan


def test_word_maps_from_yaml_and_csv_and_synonyms_keep_expectation(tmp_path):
    (tmp_path / "m.yaml").write_text("chef: cook\npolice officer: cop\n")
    (tmp_path / "m.csv").write_text("from,to\nchef,cook\npolice officer,cop\n")
    s = load_suite("pictoworld-bias")
    a = perturb_suite(s, [f"synonym:{tmp_path / 'm.yaml'}"])
    b = perturb_suite(s, [f"dialect:{tmp_path / 'm.csv'}"])
    assert [p.text for p in a.prompts] == [p.text for p in b.prompts]
    assert any(p.text == "a photo of a cop" for p in a.prompts)
    cop = next(p for p in a.prompts if p.text == "a photo of a cop")
    assert cop.expect == {"person": {"profession": "police officer"}}
    (tmp_path / "bad.csv").write_text("chef,cook,extra\n")
    with pytest.raises(InputError, match="two columns"):
        parse_perturbation(f"synonym:{tmp_path / 'bad.csv'}")


def test_noop_perturbation_is_reported():
    s = load_suite("pictoworld-bias")
    with pytest.raises(InputError, match="changes nothing"):
        perturb_suite(s, ["dialect:en-us"])
    d = perturb_suite(s, ["dialect:en-us", "swap:skin"])
    notes = " ".join(d.notes())
    assert "dialect:en-us changes nothing: 0 of 90" in notes and "swap:skin: 70 of 90 prompts unchanged" in notes
    assert d.counts()["dialect:en-us"] == {"prompts": 90, "changed": 0, "unchanged": 90}


def test_typo_rate_is_the_stated_rate_per_letter():
    def lev(a, b):
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
        return row[-1]

    text = "a photo of a construction worker with medium skin " * 100
    letters = sum(c.isalpha() for c in text)
    for rate in (0.05, 0.1):
        new, changes = typos(text, rate, random.Random(1))
        # typos never cross a space, so words stay aligned
        edited = sum(lev(a, b) for a, b in zip(text.split(" "), new.split(" ")))
        # a substitution or deletion edits 1 letter, a transposition 2: expected ~4/3 x rate x letters
        assert 0.9 * rate * letters < edited < 1.8 * rate * letters, (rate, edited, letters)
        assert changes and all(str(c.before) != str(c.after) for c in changes)


def test_perturbed_run_bytes_identical_across_runs_and_batch_sizes(tmp_path):
    outs = []
    for i, bs in enumerate((1, 7)):
        out = tmp_path / f"r{i}"
        r = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-bias", "--generator", GEN, "--limit", "8",
                                      "--images-per-prompt", "2", "--batch-size", str(bs), "--perturb", "typo:0.1",
                                      "--perturb", "swap:presentation", "--perturb-seed", "5", "--out", str(out),
                                      "--no-progress"])
        assert r.exit_code == 0, r.output
        outs.append(out)
    m0, m1 = (pd.read_parquet(o / "manifest.parquet") for o in outs)
    assert m0[["prompt_id", "text", "seed", "sha256"]].equals(m1[["prompt_id", "text", "seed", "sha256"]])
    assert (outs[0] / "perturb" / "prompts.parquet").read_bytes() == (outs[1] / "perturb" / "prompts.parquet").read_bytes()
    meta = json.loads((outs[0] / "perturb" / "perturb.json").read_text())
    assert meta["perturbations"] == ["typo:0.1", "swap:presentation"] and meta["seed"] == 5
    table = pd.read_parquet(outs[0] / "perturb" / "prompts.parquet")
    assert set(m0["prompt_id"]) <= set(table[table["changed"]]["prompt_id"])  # unchanged prompts are not drawn
    assert m0["tags"].map(lambda t: any(x.startswith("source_prompt_id=") for x in t)).all()
    # the same source and seed drawn with a swapped identity: the swap shows in the image, seeds pair
    src = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-bias", "--generator", GEN, "--limit", "8",
                                    "--images-per-prompt", "2", "--out", str(tmp_path / "src"), "--no-progress"])
    assert src.exit_code == 0, src.output
    ms = pd.read_parquet(tmp_path / "src" / "manifest.parquet")
    pairs = m0.assign(src=m0["prompt_id"].str.split("~").str[0]).merge(
        ms, left_on=["src", "seed"], right_on=["prompt_id", "seed"], suffixes=("", "_s"))
    assert len(pairs) == len(m0)


def test_cli_reports_noop_and_refuses_all_noop(tmp_path):
    r = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-bias", "--generator", GEN, "--limit", "4",
                                  "--images-per-prompt", "1", "--perturb", "dialect:en-us", "--out",
                                  str(tmp_path / "x"), "--no-progress"])
    assert r.exit_code == 2 and "changes nothing" in r.output
    r = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-bias", "--generator", GEN, "--limit", "4",
                                  "--images-per-prompt", "1", "--perturb", "dialect:en-us", "--perturb", "case:upper",
                                  "--out", str(tmp_path / "y"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "dialect:en-us changes nothing" in r.output


def test_bundled_generator_perturbed_images_identical_across_batch_sizes(tmp_path):
    shas = []
    for bs in (1, 3):
        out = tmp_path / f"b{bs}"
        r = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-skills", "--limit", "3", "--images-per-prompt",
                                      "1", "--batch-size", str(bs), "--threads", "1", "--perturb", "typo:0.1",
                                      "--out", str(out), "--no-progress"])
        assert r.exit_code == 0, r.output
        shas.append(pd.read_parquet(out / "manifest.parquet")[["prompt_id", "text", "seed", "sha256"]])
    assert len(shas[0]) >= 2 and shas[0].equals(shas[1])
