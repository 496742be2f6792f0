"""PictoWorld renderer, manifest and bias spec: determinism, schema, validation errors."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from t2i_audit.errors import InputError
from t2i_audit.world.bias import BiasSpec, BiasSpecError
from t2i_audit.world.dataset import MANIFEST_COLUMNS, iter_scenes, load_manifest, render_dataset
from t2i_audit.world.render import render


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_same_seed_same_bytes_different_seed_differs():
    a = [_png(render(s, 32)) for _, s in iter_scenes(20, seed=7)]
    b = [_png(render(s, 32)) for _, s in iter_scenes(20, seed=7)]
    c = [_png(render(s, 32)) for _, s in iter_scenes(20, seed=8)]
    assert a == b
    assert a != c


def test_scene_depends_on_index_not_on_batch():
    whole = [s for _, s in iter_scenes(10, seed=3)]
    tail = [s for _, s in iter_scenes(5, seed=3, start=5)]
    assert whole[5:] == tail


def test_dataset_files_identical_across_runs(tmp_path):
    render_dataset(tmp_path / "a", 12, seed=5, progress=False)
    render_dataset(tmp_path / "b", 12, seed=5, progress=False)
    for i in range(12):
        fa = (tmp_path / "a" / "images" / f"{i:07d}.png").read_bytes()
        fb = (tmp_path / "b" / "images" / f"{i:07d}.png").read_bytes()
        assert hashlib.sha256(fa).digest() == hashlib.sha256(fb).digest()


def test_manifest_schema_and_card(tmp_path):
    card = render_dataset(tmp_path, 30, seed=1, progress=False)
    df = load_manifest(tmp_path)
    assert tuple(df.columns) == MANIFEST_COLUMNS
    assert len(df) == 30 and card["n"] == 30
    for col in ("seed", "index", "n_objects", "background", "size"):
        assert df[col].dtype.kind == "i", col
    for col in ("said_presentation", "said_skin", "said_position"):
        assert df[col].dtype == bool, col
    for col in ("id", "file", "kind", "caption", "bare_caption", "scene_json", "bias_spec_hash"):
        assert df[col].map(type).eq(str).all(), col
    person = df[df.kind == "person"]
    shapes = df[df.kind != "person"]
    assert person.profession.notna().all() and shapes.profession.isna().all()
    assert (shapes.n_objects == shapes.shapes.map(len)).all()
    assert all(len(p) == 4 for p in df.paraphrases)
    assert json.loads((tmp_path / "card.json").read_text())["bias_spec"]["hash"] == BiasSpec.load().hash


def _spec_text(**override) -> str:
    import yaml

    data = BiasSpec.load().to_dict()
    data.update(override)
    return yaml.safe_dump(data)


def _load(tmp_path, text: str) -> BiasSpec:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return BiasSpec.load(p)


def test_spec_unknown_profession_suggests(tmp_path):
    d = BiasSpec.load().to_dict()
    d["professions"]["firefigher"] = d["professions"].pop("firefighter")
    import yaml

    with pytest.raises(BiasSpecError, match="did you mean 'firefighter'"):
        _load(tmp_path, yaml.safe_dump(d))


def test_spec_probabilities_must_sum_to_one():
    d = {"professions": {p: {"presentation": {"man": 0.5, "woman": 0.5},
                             "skin": {"light": 0.5, "medium": 0.3, "dark": 0.3}} for p in
                         ("firefighter", "chef", "police officer", "construction worker", "doctor")}}
    with pytest.raises(BiasSpecError, match="sum to 1.1"):
        BiasSpec.from_dict(d)


def test_spec_missing_class_and_missing_profession():
    base = {"presentation": {"man": 0.5, "woman": 0.5}, "skin": {"light": 0.5, "medium": 0.5}}
    with pytest.raises(BiasSpecError, match="missing dark"):
        BiasSpec.from_dict({"professions": {"chef": base}})
    ok = {"presentation": {"man": 0.5, "woman": 0.5}, "skin": {"light": 0.5, "medium": 0.25, "dark": 0.25}}
    with pytest.raises(BiasSpecError, match="professions missing"):
        BiasSpec.from_dict({"professions": {"chef": ok}})


def test_spec_bad_yaml_names_the_line(tmp_path):
    with pytest.raises(BiasSpecError, match="line 3"):
        _load(tmp_path, "name: x\nprofessions:\n  chef: : bad\n")


def test_spec_joint_and_marginal_conflict():
    entry = {"presentation": {"man": 1.0, "woman": 0.0}, "joint": {"man": {"light": 1.0}}}
    with pytest.raises(BiasSpecError, match="either 'joint' or the marginals"):
        BiasSpec.from_dict({"professions": {"chef": entry}})


def test_spec_error_is_an_input_error_and_hash_ignores_formatting(tmp_path):
    assert issubclass(BiasSpecError, InputError)
    reformatted = _load(tmp_path, _spec_text(name="renamed", description="other words"))
    assert reformatted.hash == BiasSpec.load().hash


def test_uniform_spec_is_a_valid_spec_with_equal_cells():
    import random

    u = BiasSpec.uniform()
    assert BiasSpec.from_dict(u.to_dict()).hash == u.hash  # passes the same validation as a file
    assert u.hash != BiasSpec.load().hash
    for prof in u.joint:
        assert u.marginal(prof, "presentation") == pytest.approx({"man": 0.5, "woman": 0.5})
        assert u.marginal(prof, "skin") == pytest.approx({"light": 1 / 3, "medium": 1 / 3, "dark": 1 / 3})
    rng = random.Random(0)
    draws = [u.sample(rng, "firefighter")[1] for _ in range(6000)]
    assert abs(draws.count("light") / 6000 - 1 / 3) < 0.03  # the default spec has 0.60 here
