"""Property-based tests: the suite parser never crashes with a traceback; any failure is an InputError."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2i_audit.errors import InputError
from t2i_audit.evals.suites.loader import parse_suite

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_subnormal=False),
                    st.text(alphabet="ab{}. -_x0", max_size=8))
keys = st.sampled_from(["name", "version", "templates", "template", "slots", "seeds", "kind", "start",
                        "seeds", "expect", "objects", "count", "category", "tags", "include", "sample",
                        "distinct", "images_per_prompt", "text", "weight", "person", "shape", "x"])
trees = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(keys, c, max_size=5)),
                     max_leaves=25)


def _parse(text: str) -> None:
    try:
        parse_suite(text, "fuzz.yaml")
    except InputError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_random_structures_never_crash(tree):
    _parse(yaml.safe_dump(tree))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    _parse(text)


template = st.fixed_dictionaries(
    {"template": st.text(alphabet="ab {}.x_", min_size=1, max_size=12)},
    optional={"category": scalars, "slots": st.dictionaries(st.sampled_from(["x", "a", "b"]),
                                                            st.lists(scalars, max_size=3), max_size=2),
              "expect": trees, "tags": st.lists(scalars, max_size=2), "sample": scalars, "distinct": trees,
              "images_per_prompt": scalars})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(template, min_size=1, max_size=3), st.dictionaries(st.sampled_from(["x", "a"]),
                                                                   st.lists(scalars, max_size=3), max_size=2))
def test_near_valid_suites_never_crash(templates, slots):
    _parse(yaml.safe_dump({"name": "fz", "slots": slots, "templates": templates}))


_VALID = b"name: fz\ntemplates:\n  - template: 'a {x}'\nslots:\n  x: [chef, cook]\n"


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200),
                 st.tuples(st.integers(0, len(_VALID)), st.binary(min_size=1, max_size=4)).map(
                     lambda t: _VALID[:t[0]] + t[1] + _VALID[t[0]:])))
def test_random_bytes_file_is_one_line_input_error(tmp_path_factory, data):
    """A suite file of random bytes (or a valid suite with bytes spliced in) loads, or raises an
    InputError naming the file; bytes that are not UTF-8 text are named as such."""
    from t2i_audit.evals.suites.loader import load_suite

    p = tmp_path_factory.mktemp("fz") / "s.yaml"
    p.write_bytes(data)
    try:
        text = data.decode("utf-8-sig")
        binary = "\0" in text
    except UnicodeDecodeError:
        binary = True
    try:
        load_suite(p)
    except InputError as e:
        assert "s.yaml" in str(e).splitlines()[0]
        assert not binary or "not UTF-8" in str(e) or "binary content" in str(e)
    else:
        assert not binary
