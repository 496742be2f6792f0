"""Template expansion for prompt suites: placeholders, slot values, products, expectations.

``{slot}`` is a slot value's text, ``{slot.field}`` one of its fields (``{slot.article}`` is "a"/"an"
unless the value sets it); ``{{``/``}}`` are literal braces.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import unicodedata
from dataclasses import asdict, dataclass

from t2i_audit.evals.suites.schema import (
    IDENT_RE,
    TEMPLATE_KEYS,
    LDict,
    LList,
    Where,
    check_expect,
    check_int,
    check_keys,
    check_str,
    require,
    suggest,
)

MAX_TEMPLATE_PROMPTS = 100_000  # slot combinations one template may expand to

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class PromptSpec:
    """One prompt of a suite. ``prompt_id`` is derived from content (defining suite + template +
    slot values), so it is stable across edits elsewhere in the suite and across ``include``."""

    prompt_id: str
    suite: str
    category: str
    template: str
    slots: dict
    text: str
    tags: tuple[str, ...] = ()
    expect: dict | None = None
    images_per_prompt: int = 1
    weight: int = 1

    def n_images(self, images_per_prompt: int | None = None) -> int:
        return (images_per_prompt or self.images_per_prompt) * self.weight

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d



def parse_placeholders(text: str, where: Where) -> list[tuple[str, str | None]]:
    """``{slot}`` and ``{slot.field}`` references in order; ``{{``/``}}`` are literal braces."""
    out = []
    for m in _PLACEHOLDER.finditer(text):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            continue
        if m.group(1) is None:
            raise where.error(f"unbalanced brace in {text!r}; write {{{{ or }}}} for a literal brace")
        name, _, fld = m.group(1).partition(".")
        if not IDENT_RE.match(name) or (fld and not IDENT_RE.match(fld)):
            raise where.error(f"bad placeholder {tok!r} in {text!r}; use {{slot}} or {{slot.field}}")
        out.append((name, fld or None))
    return out


def _field(value: dict, name: str, fld: str | None, where: Where):
    if fld is None:
        return value["text"]
    if fld in value:
        return value[fld]
    if fld == "article":
        return "an" if value["text"][:1].lower() in "aeiou" else "a"
    valid = [k for k in value if k != "weight"] + ["article"]
    raise where.error(f"slot {name!r} value {value['text']!r} has no field {fld!r}{suggest(fld, valid)} "
                      f"(fields: {', '.join(valid)})")


def substitute(obj, values: dict[str, dict], where: Where):
    """Fill placeholders in strings inside ``obj`` (keeping LDict/LList line info). A string that is
    exactly one placeholder takes the field's own type (``count: "{n.n}"`` gives an int)."""
    if isinstance(obj, str):
        refs = parse_placeholders(obj, where)
        m = re.fullmatch(r"\{([^{}]*)\}", obj)
        if m and len(refs) == 1:
            name, fld = refs[0]
            return _field(values[name], name, fld, where)

        def repl(mt):
            tok = mt.group(0)
            if tok in ("{{", "}}"):
                return tok[0]
            name, _, fld = mt.group(1).partition(".")
            return str(_field(values[name], name, fld or None, where))

        return _PLACEHOLDER.sub(repl, obj)
    if isinstance(obj, dict):
        out = LDict((k, substitute(v, values, where.key(obj, k))) for k, v in obj.items())
        out.line, out.key_lines = getattr(obj, "line", 0), dict(getattr(obj, "key_lines", {}))
        return out
    if isinstance(obj, list):
        out = LList(substitute(v, values, where.item(obj, i)) for i, v in enumerate(obj))
        out.line, out.item_lines = getattr(obj, "line", 0), list(getattr(obj, "item_lines", []))
        return out
    return obj


def _refs_in(obj, where: Where) -> set[str]:
    if isinstance(obj, str):
        return {n for n, _ in parse_placeholders(obj, where)}
    if isinstance(obj, dict):
        return set().union(set(), *(_refs_in(v, where.key(obj, k)) for k, v in obj.items()))
    if isinstance(obj, list):
        return set().union(set(), *(_refs_in(v, where.item(obj, i)) for i, v in enumerate(obj)))
    return set()


def slot_values(values, where: Where) -> list[dict]:
    if not isinstance(values, list) or not values:
        raise where.error("slot values must be a non-empty list")
    out, seen = [], set()
    for i, v in enumerate(values):
        w = where.item(values, i)
        if isinstance(v, dict):
            text = check_str(require(v, "text", w, "a slot value"), w.key(v, "text"), nonempty=False)
            d = {k: val for k, val in v.items() if k not in ("text",)}
            for k in d:
                if not IDENT_RE.match(str(k)):
                    raise w.key(v, k).error(f"field name {k!r} must be an identifier")
            if "weight" in d:
                d["weight"] = check_int(d["weight"], w.key(v, "weight"), minimum=1)
            d["text"] = text
        else:
            d = {"text": check_str(v, w, nonempty=False)}
        if d["text"] in seen:
            raise w.error(f"slot value {d['text']!r} is listed twice")
        seen.add(d["text"])
        out.append(d)
    return out


def _prompt_id(suite: str, template: str, slots: dict) -> str:
    blob = json.dumps([template, slots], sort_keys=True, separators=(",", ":")).encode()
    return f"{suite}-{hashlib.sha256(blob).hexdigest()[:10]}"


def expand_template(t: dict, w: Where, suite: str, suite_slots: dict,
                    default_ipp: int) -> list[PromptSpec]:
    check_keys(t, TEMPLATE_KEYS, w, "a template")
    text = check_str(require(t, "template", w, "a template"), w.key(t, "template"))
    bad = [c for c in text if unicodedata.category(c) == "Cc"]
    if bad:
        raise w.key(t, "template").error(f"control character {bad[0]!r} in {text!r}; remove it")
    category = check_str(t.get("category", "default"), w.key(t, "category"))
    ipp = check_int(t.get("images_per_prompt", default_ipp), w.key(t, "images_per_prompt"), minimum=1)
    tags = t.get("tags", [])
    if not isinstance(tags, list):
        raise w.key(t, "tags").error("expected a list of tags")
    local = t.get("slots", {}) or {}
    if not isinstance(local, dict):
        raise w.key(t, "slots").error("expected a mapping of slot name to values")
    names = list(dict.fromkeys(n for n, _ in parse_placeholders(text, w.key(t, "template"))))
    available = {**suite_slots, **{k: None for k in local}}
    for n in names:
        if n not in available:
            raise w.key(t, "template").error(
                f"unknown slot {{{n}}} in {text!r}{suggest(n, available)} "
                f"(defined: {', '.join(available) or 'none'})")
    for k in local:
        if k not in names:
            raise w.key(local, k).error(f"slot {k!r} is defined here but {text!r} does not use it")
    for key in ("expect", "tags"):
        for n in _refs_in(t.get(key), w.key(t, key)) - set(names):
            raise w.key(t, key).error(f"references slot {{{n}}}, which the template text does not use"
                                      f"{suggest(n, names)}")
    values = {n: slot_values(local[n], w.key(t, "slots").key(local, n)) if n in local
              else suite_slots[n] for n in names}
    n_combos = 1
    for n in names:
        n_combos *= len(values[n])
    if n_combos > MAX_TEMPLATE_PROMPTS:  # checked before the product is built
        raise w.key(t, "template").error(
            f"{text!r} expands to {n_combos:,} slot combinations, more than the limit of "
            f"{MAX_TEMPLATE_PROMPTS:,} prompts per template; use fewer slot values or split the template")
    combos = [dict(zip(names, c)) for c in itertools.product(*(values[n] for n in names))]
    distinct = t.get("distinct")
    if distinct is not None:
        wd = w.key(t, "distinct")
        if (not isinstance(distinct, list) or len(distinct) < 2
                or not all(isinstance(g, list) and g for g in distinct)
                or len({len(g) for g in distinct}) != 1):
            raise wd.error("expected two or more lists of slot names of equal length, "
                           "e.g. [[color_a, shape_a], [color_b, shape_b]]")
        for g in distinct:
            for n in g:
                if n not in names:
                    raise wd.error(f"unknown slot {n!r}{suggest(n, names)}")

        def ok(c):
            keys = [tuple(c[n]["text"] for n in g) for g in distinct]
            return len(set(keys)) == len(keys)

        combos = [c for c in combos if ok(c)]
    if "sample" in t:
        n = check_int(t["sample"], w.key(t, "sample"), minimum=1)
        if n > len(combos):
            raise w.key(t, "sample").error(f"sample {n} but the template has only {len(combos)} combinations")
        rng = random.Random(hashlib.sha256(f"{suite}\n{text}".encode()).hexdigest())
        combos = [combos[i] for i in sorted(rng.sample(range(len(combos)), n))]
    if not combos:
        raise w.error(f"template {text!r} expands to no prompts")
    out = []
    for c in combos:
        slots = {n: c[n]["text"] for n in names}
        exp = None
        if t.get("expect") is not None:
            exp = check_expect(substitute(t["expect"], c, w.key(t, "expect")), w.key(t, "expect"))
        weight = 1
        for n in names:
            weight *= int(c[n].get("weight", 1))
        out.append(PromptSpec(
            prompt_id=_prompt_id(suite, text, slots), suite=suite, category=category, template=text,
            slots=slots, text=substitute(text, c, w.key(t, "template")),
            tags=tuple(str(x) for x in substitute(tags, c, w.key(t, "tags"))), expect=exp,
            images_per_prompt=ipp, weight=weight))
    return out
