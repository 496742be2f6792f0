"""Suite file schema: a YAML loader that keeps line numbers, key sets, and expectation checks.

Every error names the file, the line and the key path (``templates[2].category``) and, for a
misspelt name, the closest valid one.
"""

from __future__ import annotations

import re

import yaml

from t2i_audit.core.safe_yaml import BoundedSafeLoader
from t2i_audit.errors import InputError, did_you_mean

SUITE_KEYS = ("name", "version", "description", "reference", "images_per_prompt", "seeds", "include",
              "slots", "templates")
TEMPLATE_KEYS = ("template", "category", "tags", "slots", "expect", "images_per_prompt", "sample",
                 "distinct")
SEED_KEYS = {"range": ("kind", "start"), "fixed": ("kind", "seeds"), "prompt_hash": ("kind", "start")}
INCLUDE_KEYS = ("suite", "categories", "images_per_prompt")
SLOT_VALUE_RESERVED = ("text", "weight", "article")
EXPECT_KEYS = ("objects", "count", "relation", "person")
OBJECT_KEYS = ("shape", "color", "position")
RELATION_KEYS = ("a", "b", "rel")
PERSON_KEYS = ("profession", "presentation", "skin")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SuiteError(InputError):
    """A prompt suite is malformed; the message names file, line, key and the fix."""


def suggest(name, valid) -> str:
    """``; did you mean 'x'?`` (errors.did_you_mean in the suite messages' form)."""
    return did_you_mean(name, valid, form="; did you mean {}?")


class LDict(dict):
    """A mapping from YAML that remembers its line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class LList(list):
    """A sequence from YAML that remembers its line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list

    def line_of(self, i: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[i] if i < len(lines) else self.line


class _LineLoader(BoundedSafeLoader):
    """Size, alias and expansion limits (core.safe_yaml) plus line numbers."""


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise SuiteError(f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                             f"(first on line {out.key_lines[key]}); keep one")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader, node):
    out = LList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [n.start_mark.line + 1 for n in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, source: str):
    """Parse YAML keeping line numbers (LDict/LList); syntax errors become SuiteError, documents past
    the limits of :mod:`t2i_audit.core.safe_yaml` a one-line InputError."""
    try:
        loader = _LineLoader(text, source)
    except yaml.YAMLError as e:  # e.g. a control character the YAML reader refuses
        raise SuiteError(f"{source}: not readable as YAML: {e}") from None
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        raise SuiteError(f"{source}:{line}: YAML syntax error: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise SuiteError(f"{source}: YAML error: {e}") from None
    finally:
        loader.dispose()


class Where:
    """A position in a suite file: source, line and key path, for error messages."""

    def __init__(self, source: str, line: int = 0, path: str = ""):
        self.source, self.line, self.path = source, line, path

    def key(self, node, key) -> Where:
        line = node.line_of(key) if isinstance(node, LDict) else self.line
        sep = "." if self.path else ""
        return Where(self.source, line, f"{self.path}{sep}{key}")

    def item(self, node, i: int) -> Where:
        line = node.line_of(i) if isinstance(node, LList) else self.line
        return Where(self.source, line, f"{self.path}[{i}]")

    def error(self, message: str) -> SuiteError:
        at = f"{self.source}:{self.line}" if self.line else self.source
        return SuiteError(f"{at}: {self.path}: {message}" if self.path else f"{at}: {message}")


def check_keys(node, allowed, where: Where, what: str) -> None:
    if not isinstance(node, dict):
        raise where.error(f"expected a mapping ({what}), got {type(node).__name__}")
    for key in node:
        if key not in allowed:
            raise where.key(node, key).error(
                f"unknown key {key!r} in {what}{suggest(key, allowed)} (valid: {', '.join(allowed)})")


def require(node: dict, key: str, where: Where, what: str):
    if key not in node or node[key] is None:
        raise where.error(f"missing required key {key!r} in {what}")
    return node[key]


def check_str(value, where: Where, *, nonempty: bool = True) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise where.error(f"expected text, got {type(value).__name__}")
    value = str(value)
    if nonempty and not value.strip():
        raise where.error("must not be empty")
    return value


def check_int(value, where: Where, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise where.error(f"must be >= {minimum}, got {value}")
    return value


def _vocab():
    from t2i_audit.world.scene import RELATIONS
    from t2i_audit.world.vocab import COLORS, POSITIONS, PRESENTATIONS, PROFESSIONS, SHAPES, SKINS

    return {"shape": SHAPES, "color": COLORS, "position": POSITIONS, "profession": PROFESSIONS,
            "presentation": PRESENTATIONS, "skin": SKINS, "rel": tuple(RELATIONS)}


def check_expect(expect, where: Where) -> dict:
    """Validate a substituted expectation against the PictoWorld vocabulary (the oracle's classes)."""
    vocab = _vocab()

    def value(v, w: Where, field: str):
        v = check_str(v, w)
        if v not in vocab[field]:
            raise w.error(f"{v!r} is not a {field} the oracle knows{suggest(v, vocab[field])} "
                          f"(valid: {', '.join(vocab[field])})")
        return v

    check_keys(expect, EXPECT_KEYS, where, "expect")
    out: dict = {}
    if "objects" in expect:
        objs = expect["objects"]
        w = where.key(expect, "objects")
        if not isinstance(objs, list) or not objs:
            raise w.error("expected a non-empty list of objects")
        out["objects"] = []
        for i, o in enumerate(objs):
            wi = w.item(objs, i)
            check_keys(o, OBJECT_KEYS, wi, "an expected object")
            out["objects"].append({k: value(o[k], wi.key(o, k), k) for k in OBJECT_KEYS if k in o})
    if "count" in expect:
        out["count"] = check_int(_as_int(expect["count"]), where.key(expect, "count"), minimum=0)
    if "relation" in expect:
        r = expect["relation"]
        w = where.key(expect, "relation")
        check_keys(r, RELATION_KEYS, w, "relation")
        n = len(out.get("objects", []))
        rel = {}
        for k in ("a", "b"):
            idx = check_int(_as_int(require(r, k, w, "relation")), w.key(r, k), minimum=0)
            if idx >= n:
                raise w.key(r, k).error(f"object index {idx} but expect.objects has {n} objects")
            rel[k] = idx
        rel["rel"] = value(require(r, "rel", w, "relation"), w.key(r, "rel"), "rel")
        out["relation"] = rel
    if "person" in expect:
        p = expect["person"]
        w = where.key(expect, "person")
        check_keys(p, PERSON_KEYS, w, "person")
        out["person"] = {k: value(p[k], w.key(p, k), k) for k in PERSON_KEYS if k in p}
    return out


def _as_int(v):
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return v
