"""Prompt suites: expansion, include, hashing, seed policies, built-in suites and validation errors."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.evals.suites.loader import SeedPolicy, builtin_names, load_suite, parse_suite

BASE = """\
name: mini
version: "1"
images_per_prompt: 2
seeds: {kind: range, start: 0}
slots:
  color: [red, blue]
  shape: [circle, square]
  number:
    - {text: two, n: 2}
    - {text: three, n: 3, weight: 2}
templates:
  - template: "a {color} {shape}"
    category: colour
    tags: ["color={color}"]
    expect: {objects: [{shape: "{shape}", color: "{color}"}], count: 1}
  - template: "{number} {color} circles"
    category: counting
    expect: {objects: [{shape: circle, color: "{color}"}], count: "{number.n}"}
"""


def write(tmp_path, text, name="suite.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_expansion_product_fields_types_and_weights():
    s = parse_suite(BASE, "mini.yaml")
    assert [p.text for p in s.prompts[:4]] == ["a red circle", "a red square", "a blue circle", "a blue square"]
    assert s.prompts[0].tags == ("color=red",)
    assert s.prompts[0].expect == {"objects": [{"shape": "circle", "color": "red"}], "count": 1}
    counting = [p for p in s.prompts if p.category == "counting"]
    assert [p.text for p in counting] == ["two red circles", "two blue circles", "three red circles",
                                          "three blue circles"]
    assert counting[2].expect["count"] == 3 and isinstance(counting[2].expect["count"], int)
    assert [p.n_images() for p in counting] == [2, 2, 4, 4]  # weight 2 doubles the images
    assert s.n_images() == 4 * 2 + 12
    assert s.n_images(images_per_prompt=1) == 4 + 6
    assert counting[0].slots == {"number": "two", "color": "red"}


def test_prompt_ids_content_derived_and_hash_normalised():
    s = parse_suite(BASE, "a.yaml")
    # Reformatting, reordering keys and editing the description change neither ids nor hash.
    reformatted = BASE.replace('version: "1"', 'description: other words\nversion: "1"').replace(
        "seeds: {kind: range, start: 0}", "seeds:\n  start: 0\n  kind: range")
    s2 = parse_suite(reformatted, "b.yaml")
    assert s2.hash == s.hash
    assert [p.prompt_id for p in s2.prompts] == [p.prompt_id for p in s.prompts]
    # Adding a template leaves existing prompt ids alone but changes the hash.
    extra = BASE + '  - template: "a {shape}"\n    category: shape\n'
    s3 = parse_suite(extra, "c.yaml")
    assert [p.prompt_id for p in s3.prompts[:len(s.prompts)]] == [p.prompt_id for p in s.prompts]
    assert s3.hash != s.hash
    # Changing a slot value changes that prompt's id and the hash.
    s4 = parse_suite(BASE.replace("[red, blue]", "[red, green]"), "d.yaml")
    assert s4.hash != s.hash
    assert s4.prompts[0].prompt_id == s.prompts[0].prompt_id  # "a red circle" unchanged
    assert s4.prompts[2].prompt_id != s.prompts[2].prompt_id
    assert all(p.prompt_id.startswith("mini-") for p in s.prompts)


def test_seed_policies():
    assert SeedPolicy("range", 5).seeds_for("x", 3) == [5, 6, 7]
    assert SeedPolicy("fixed", seeds=(9, 4, 1)).seeds_for("x", 2) == [9, 4]
    with pytest.raises(InputError, match="lists 3 seeds"):
        SeedPolicy("fixed", seeds=(9, 4, 1)).seeds_for("x", 4)
    a = SeedPolicy("prompt_hash").seeds_for("p1", 4)
    assert a == SeedPolicy("prompt_hash").seeds_for("p1", 4) and len(set(a)) == 4
    assert a != SeedPolicy("prompt_hash").seeds_for("p2", 4)
    assert SeedPolicy.from_dict(SeedPolicy("fixed", seeds=(1, 2)).to_dict()) == SeedPolicy("fixed", seeds=(1, 2))


def test_plan_and_round_robin_limit():
    s = parse_suite(BASE, "mini.yaml")
    plan = s.plan()
    assert len(plan) == s.n_images()
    assert [seed for p, seed in plan if p.text == "three red circles"] == [0, 1, 2, 3]
    chosen = s.select(limit=2)
    assert {p.category for p in chosen} == {"colour", "counting"}


def test_include_builtin_relative_path_and_category_filter(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    write(tmp_path, """\
        name: combo
        include:
          - base.yaml
          - {suite: pictoworld-bias, categories: [explicit]}
        templates:
          - template: "a triangle"
            category: extra
        """, "combo.yaml")
    s = load_suite(tmp_path / "combo.yaml")
    base = load_suite(tmp_path / "base.yaml")
    bias = load_suite("pictoworld-bias")
    assert s.categories == ["colour", "counting", "explicit", "extra"]
    # Included prompts keep the id given by the suite that defines them.
    assert [p.prompt_id for p in s.prompts[:len(base.prompts)]] == [p.prompt_id for p in base.prompts]
    assert sum(p.category == "explicit" for p in s.prompts) == sum(p.category == "explicit" for p in bias.prompts)
    assert any(i.startswith("mini@") for i in s.includes)


def test_include_cycle_and_unknown(tmp_path):
    write(tmp_path, "name: a\ninclude: [b.yaml]\n", "a.yaml")
    write(tmp_path, "name: b\ninclude: [a.yaml]\n", "b.yaml")
    with pytest.raises(InputError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")
    write(tmp_path, "name: c\ninclude: [pictoworld-skils]\n", "c.yaml")
    with pytest.raises(InputError, match="did you mean 'pictoworld-skills'"):
        load_suite(tmp_path / "c.yaml")


@pytest.mark.parametrize("text, pattern", [
    # unknown key with its line and the closest valid name
    (BASE.replace("    category: colour", "    categroy: colour"),
     r"mini\.yaml:13: templates\[0\]\.categroy: unknown key 'categroy' in a template; did you mean 'category'"),
    (BASE.replace("images_per_prompt: 2", "image_per_prompt: 2"),
     r"mini\.yaml:3: image_per_prompt: unknown key .*did you mean 'images_per_prompt'"),
    # unknown slot in a template
    (BASE.replace('"a {color} {shape}"', '"a {colour} {shape}"'),
     r"mini\.yaml:12: templates\[0\]\.template: unknown slot \{colour\}.*did you mean 'color'"),
    # bad seed policy
    (BASE.replace("kind: range", "kind: rnage"), r"mini\.yaml:4: seeds.kind: unknown seed policy 'rnage'; did you mean 'range'"),
    (BASE.replace("{kind: range, start: 0}", "{kind: fixed, seeds: [1, 1]}"), r"seeds repeat"),
    (BASE.replace("{kind: range, start: 0}", "{kind: range, seeds: [1]}"), r"unknown key 'seeds' in seeds of kind range"),
    (BASE.replace("{kind: range, start: 0}", "{kind: range, start: -1}"), r"must be >= 0"),
    # expectation values the oracle does not know
    (BASE.replace("[red, blue]", "[red, blu]"), r"templates\[0\]\.expect\.objects\[0\]\.color: 'blu' is not a color.*did you mean 'blue'"),
    (BASE.replace("count: 1}", "cuont: 1}"), r"unknown key 'cuont' in expect; did you mean 'count'"),
    # a field that a slot value lacks
    (BASE.replace("{number.n}", "{number.nn}"), r"mini\.yaml:18: templates\[1\]\.expect\.count: .*has no field 'nn'; did you mean 'n'"),
    # structure
    (BASE.replace("templates:", "templates:\n  - template: \"a {shape}\"\n    slots: {size: [big]}"),
     r"slot 'size' is defined here but"),
    (BASE.replace('tags: ["color={color}"]', 'tags: ["size={size}"]'), r"references slot \{size\}"),
    ("name: empty\nversion: 1\n", r"empty\.yaml:1: the suite is empty"),
    ("name: Bad Name\ntemplates: [{template: x}]\n", r"must be lower-case"),
    ("name: x\ntemplates:\n  - template: a\n  - template: a\n", r"duplicate prompt 'a'"),
    ("name: x\ntemplates:\n  - {template: a, category: c}\n  - {template: \"b {\"}\n",
     r"x\.yaml:4: templates\[1\]\.template: unbalanced brace"),
    ("name: x\nname: y\n", r"x\.yaml:2: duplicate key 'name'"),
    ("name: x\ntemplates: [\n", r"YAML syntax error"),
    ("name: x\ntemplates:\n  - template: \"a {s}\"\n    slots: {s: [a, a]}\n", r"listed twice"),
    ("name: x\ntemplates:\n  - template: \"a {s}\"\n    sample: 5\n    slots: {s: [a, b]}\n", r"only 2 combinations"),
    ("name: x\ntemplates:\n  - template: \"a {s\"\n    slots: {s: [a]}\n", r"unbalanced brace"),
])
def test_validation_errors(text, pattern):
    src = "empty.yaml" if "empty" in text[:12] else ("x.yaml" if text.startswith("name: x") else "mini.yaml")
    with pytest.raises(InputError, match=pattern):
        parse_suite(text, src)


def test_literal_braces_and_article():
    s = parse_suite('name: x\nslots: {o: [apple, pear]}\ntemplates:\n  - template: "{{{o.article}}} {o}"\n', "x.yaml")
    assert [p.text for p in s.prompts] == ["{an} apple", "{a} pear"]


def test_builtin_suites_meet_their_brief():
    assert set(builtin_names()) >= {"pictoworld-skills", "pictoworld-bias", "pictoworld-quality",
                                    "occupations", "compositional"}
    from t2i_audit.world.captions import HELD_OUT_FRAMES, TRAIN_FRAMES
    from t2i_audit.world.vocab import PROFESSIONS

    skills = load_suite("pictoworld-skills")
    cats = skills.summary()["categories"]
    assert set(cats) == {"single_shape", "two_shapes", "counting", "position", "colour", "people"}
    assert all(c["images"] >= 400 for c in cats.values()), cats
    assert all(p.expect for p in skills.prompts)
    held = tuple(f.split("{x}")[0] for f in HELD_OUT_FRAMES)
    train = tuple(f.split("{x}")[0] for f in TRAIN_FRAMES if f != "{x}")
    assert all(p.text.startswith(held) and not p.text.startswith(train) for p in skills.prompts)
    assert {p.expect["count"] for p in skills.prompts if p.category == "counting"} == {1, 2, 3, 4}

    bias = load_suite("pictoworld-bias")
    for prof in PROFESSIONS:
        neutral = [p for p in bias.prompts if p.category == "neutral" and p.slots["profession"] == prof]
        assert len({p.template for p in neutral}) >= 10  # prompts-as-sample intervals need >= 5 prompts
    assert any("{presentation}" in p.template and "{skin}" in p.template for p in bias.prompts)

    occ = load_suite("occupations")
    assert len({p.slots["occupation"] for p in occ.prompts if p.category == "neutral"}) >= 80
    assert all(p.expect is None for p in occ.prompts)
    for occupation in {p.slots["occupation"] for p in occ.prompts}:
        assert sum(p.category == "neutral" and p.slots["occupation"] == occupation for p in occ.prompts) >= 10
    assert "a photo of an accountant" in {p.text for p in occ.prompts}

    comp = load_suite("compositional")
    assert len(comp.categories) >= 5 and all(p.expect is None for p in comp.prompts)

    quality = load_suite("pictoworld-quality")
    assert quality.reference == "world"


def test_quality_suite_matches_the_world_caption_distribution():
    from t2i_audit.evals.suites.loader import BUILTIN_DIR, BUILTIN_PACKAGE
    from t2i_audit.evals.suites.world import quality_suite_yaml

    shipped = load_suite("pictoworld-quality")
    assert shipped.n_images() == 1000
    regenerated = parse_suite(quality_suite_yaml(), "regenerated")
    assert regenerated.hash == shipped.hash, (
        f"the world's captions changed: regenerate {BUILTIN_PACKAGE}/{BUILTIN_DIR}/pictoworld-quality.yaml "
        "with `python -m t2i_audit.evals.suites.world`")


def test_cli_suites_ls_show_validate(tmp_path):
    r = CliRunner().invoke(main, ["suites", "ls"])
    assert r.exit_code == 0 and "pictoworld-skills" in r.output and "occupations" in r.output
    r = CliRunner().invoke(main, ["suites", "show", "pictoworld-skills", "--n", "2"])
    assert r.exit_code == 0 and "two_shapes" in r.output and load_suite("pictoworld-skills").hash in r.output
    good = write(tmp_path, BASE)
    r = CliRunner().invoke(main, ["suites", "validate", str(good)])
    assert r.exit_code == 0 and "ok: mini" in r.output
    bad = write(tmp_path, BASE.replace("category: colour", "categroy: colour"), "bad.yaml")
    r = CliRunner().invoke(main, ["suites", "validate", str(bad)])
    assert r.exit_code == 2 and "bad.yaml:13" in r.output and "did you mean 'category'" in r.output


def test_control_characters_in_a_template_are_refused():
    with pytest.raises(InputError, match=r"x\.yaml:3: templates\[0\]\.template: control character '\\x07'"):
        parse_suite('name: x\ntemplates:\n  - template: "a \\a b"\n', "x.yaml")


def test_included_prompts_keep_their_own_seed_policy(tmp_path):
    write(tmp_path, "name: outer\nseeds: {kind: range, start: 100}\ninclude: [pictoworld-bias]\n"
                    "templates:\n  - template: a square\n", "outer.yaml")
    outer = load_suite(tmp_path / "outer.yaml")
    bias = load_suite("pictoworld-bias")
    seeds = {(p.prompt_id, s) for p, s in outer.plan()}
    assert {(p.prompt_id, s) for p, s in bias.plan()} <= seeds  # the same images as the bias suite alone
    assert [s for p, s in outer.plan() if p.text == "a square"] == [100]
