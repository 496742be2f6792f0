"""judge(): expectations against oracle readings, with readable reasons."""

from __future__ import annotations

from t2i_audit.world.dataset import iter_scenes
from t2i_audit.world.expect import expect_from_scene, judge
from t2i_audit.world.oracle import Reading, read_image
from t2i_audit.world.render import render


def _obj(shape, color, position, x, y):
    return {"shape": shape, "color": color, "position": position, "x": x, "y": y}


R = Reading("shapes", [_obj("square", "blue", "right", 26, 16), _obj("triangle", "yellow", "left", 6, 16)], 2)


def test_objects_matched_as_a_set_and_count():
    ok, why = judge(R, {"objects": [{"color": "yellow"}, {"shape": "square"}], "count": 2})
    assert ok and why == "ok"
    ok, why = judge(R, {"count": 3})
    assert not ok and why == "expected 3 objects, found 2"
    ok, why = judge(R, {"objects": [{"shape": "circle", "color": "red"}]})
    assert not ok and "expected a red circle; not found" in why
    ok, why = judge(R, {"objects": [{"color": "blue"}, {"color": "blue"}]})
    assert not ok and "distinct" in why


def test_relation_by_centroid_geometry():
    exp = {"objects": [{"shape": "square", "color": "blue"}, {"shape": "triangle", "color": "yellow"}],
           "relation": {"a": 0, "b": 1, "rel": "left of"}}
    ok, why = judge(R, exp)
    assert not ok
    assert why == "expected a blue square left of a yellow triangle; square is right of triangle"
    exp["relation"]["rel"] = "right of"
    assert judge(R, exp) == (True, "ok")
    exp["relation"]["rel"] = "above"
    ok, why = judge(R, exp)
    assert not ok and "level with" in why


def test_person_expectations():
    p = Reading("person", [], 1, profession="chef", presentation="woman", skin="unknown")
    assert judge(p, {"person": {"profession": "chef"}}) == (True, "ok")
    ok, why = judge(p, {"person": {"profession": "doctor", "skin": "dark"}})
    assert not ok and "expected profession doctor, found chef" in why and "skin unreadable" in why
    ok, why = judge(R, {"person": {"profession": "chef"}})
    assert not ok and why.startswith("expected a person; found shapes")
    assert judge(p, {"count": 1, "objects": [{"shape": "circle"}]})[0] is False


def test_renders_pass_their_own_full_truth():
    n = 0
    for _, s in iter_scenes(80, 21):
        ok, why = judge(read_image(render(s, 32)), expect_from_scene(s))
        assert ok, why
        n += 1
    assert n == 80


def test_expect_from_scene_names_every_attribute():
    kinds = {}
    for _, s in iter_scenes(60, 4):
        kinds[s.kind] = expect_from_scene(s)
    assert set(kinds["person"]["person"]) == {"profession", "presentation", "skin"}
    assert kinds["pair"]["relation"]["rel"] in ("left of", "right of", "above", "below")
    assert kinds["count"]["count"] == len(kinds["count"]["objects"])
