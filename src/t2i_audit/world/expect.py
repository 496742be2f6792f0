"""Judging an oracle reading against an expectation (docs/results-schema.md, "Expectations").

An expectation is a dict with any of:

- ``objects``: list of ``{shape?, color?, position?}``; matched as a set (each expected object to a
  distinct read object that agrees on every field it names);
- ``count``: the exact number of objects read;
- ``relation``: ``{"a": i, "b": j, "rel": "left of" | "right of" | "above" | "below"}``, indices
  into ``objects``, checked on the centres of the matched read objects;
- ``person``: ``{profession?, presentation?, skin?}``.

A relation holds when the centre of a is on the named side of the centre of b by more than
RELATION_MARGIN canvas units (1/32 of the image side) along that axis. ``judge`` returns
``(passed, reason)`` with a readable reason for the first failures.
"""

from __future__ import annotations

from itertools import permutations

from t2i_audit.world.captions import article
from t2i_audit.world.oracle import UNKNOWN, Reading

RELATION_MARGIN = 2.0
_REL = {"left of": ("x", -1), "right of": ("x", 1), "above": ("y", -1), "below": ("y", 1)}
_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def describe(obj: dict) -> str:
    """'a blue square on the left' from an object dict (fields optional)."""
    words = [obj[k] for k in ("color", "shape") if obj.get(k) and obj[k] != UNKNOWN]
    if not obj.get("shape") or obj.get("shape") == UNKNOWN:
        words.append("object")
    text = f"{article(words[0])} {' '.join(words)}"
    pos = obj.get("position")
    if pos and pos != UNKNOWN:
        text += f" at {pos}" if pos in ("top", "bottom", "centre") else f" on the {pos}"
    return text


def _fits(exp: dict, got: dict) -> bool:
    return all(got.get(k) == v for k, v in exp.items() if k in ("shape", "color", "position") and v)


def _relation(a: dict, b: dict, rel: str) -> str | None:
    """None if 'a rel b' holds on centres, else the relation that does hold (or 'level with')."""
    axis, sign = _REL[rel]
    d = (a[axis] - b[axis]) * sign
    if d < -RELATION_MARGIN or d > RELATION_MARGIN:
        return None if d > RELATION_MARGIN else _OPPOSITE[rel]
    return "level with" if axis == "y" else "in line with"


def _assignments(exp: list[dict], got: list[dict]):
    """All injective assignments expected index -> read index that agree on named fields."""
    if len(exp) > len(got):
        return
    for perm in permutations(range(len(got)), len(exp)):
        if all(_fits(e, got[j]) for e, j in zip(exp, perm)):
            yield perm


def judge(reading: Reading, expect: dict) -> tuple[bool, str]:
    """Does the reading satisfy the expectation? Returns (passed, reason)."""
    if not expect:
        return True, "nothing expected"
    problems: list[str] = []
    person = expect.get("person")
    if person is not None:
        if reading.kind != "person":
            found = "nothing" if reading.kind == "empty" else (
                "no readable person" if reading.kind == UNKNOWN else f"shapes ({len(reading.objects)})")
            return False, f"expected a person; found {found}"
        for key in ("profession", "presentation", "skin"):
            want = person.get(key)
            if not want:
                continue
            got = getattr(reading, key)
            if got == UNKNOWN:
                problems.append(f"{key} unreadable (expected {want})")
            elif got != want:
                problems.append(f"expected {key} {want}, found {got}")
        return (not problems), "; ".join(problems) or "ok"
    exp_objs = list(expect.get("objects") or [])
    count = expect.get("count")
    if (exp_objs or count is not None) and reading.kind == "person":
        return False, "expected shapes; found a person"
    got = reading.objects
    if count is not None:
        if reading.count == UNKNOWN:
            problems.append(f"expected {count} objects; count unreadable")
        elif reading.count != count:
            problems.append(f"expected {count} object{'s' if count != 1 else ''}, found {reading.count}")
    rel = expect.get("relation")
    if exp_objs:
        options = list(_assignments(exp_objs, got))
        if not options:
            missing = list(dict.fromkeys(describe(e) for e in exp_objs
                                         if not any(_fits(e, g) for g in got)))
            found = ", ".join(describe(g) for g in got) or "nothing"
            if missing:
                problems.append(f"expected {' and '.join(missing)}; not found (found: {found})")
            else:
                problems.append(f"expected {len(exp_objs)} distinct objects "
                                f"({', '.join(describe(e) for e in exp_objs)}); found: {found}")
        elif rel:
            a, b, r = int(rel["a"]), int(rel["b"]), rel["rel"]
            if r not in _REL:
                raise ValueError(f"unknown relation {r!r}; expected one of {', '.join(_REL)}")
            seen = None
            for perm in options:
                seen = _relation(got[perm[a]], got[perm[b]], r)
                if seen is None:
                    break
            if seen is not None:
                na = exp_objs[a].get("shape") or "a"
                nb = exp_objs[b].get("shape") or "b"
                problems.append(f"expected {describe(exp_objs[a])} {r} {describe(exp_objs[b])}; "
                                f"{na} is {seen} {nb}")
    return (not problems), "; ".join(problems) or "ok"


def expect_from_scene(scene) -> dict:
    """The full truth of a rendered scene as an expectation (every attribute named)."""
    if scene.person is not None:
        p = scene.person
        return {"person": {"profession": p.profession, "presentation": p.presentation, "skin": p.skin}}
    out: dict = {
        "objects": [{"shape": s.shape, "color": s.color, "position": s.position} for s in scene.shapes],
        "count": len(scene.shapes),
    }
    if scene.relation:
        out["relation"] = {"a": 0, "b": 1, "rel": scene.relation}
    return out
