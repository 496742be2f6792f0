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


# ---------------------------------------------------------------- anchors, aliases, sizes (issue 40)
@st.composite
def alias_documents(draw):
    """A suite whose description holds random layers of anchors, each aliasing the previous layer a
    random number of times (billion-laughs shapes, small and large), and whose images_per_prompt and
    slot sizes are drawn up to far beyond the limits."""
    width, depth = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    layers = ['  - &l0 "lol"'] + [f"  - &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, depth)]
    ipp = draw(st.sampled_from([1, 2, 10**6, 10**9, 2**62]))
    n_values = draw(st.one_of(st.integers(1, 40), st.integers(317, 600)))  # under, or over, 100,000 combinations
    values = ", ".join(f"v{i}" for i in range(n_values))
    return (f"name: fz\nimages_per_prompt: {ipp}\ndescription:\n" + "\n".join(layers)
            + f"\nslots:\n  x: [{values}]\n  y: [{values}]\ntemplates:\n  - template: 'a {{x}} {{y}}'\n")


@settings(max_examples=40, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(alias_documents())
def test_alias_and_size_bombs_are_refused_fast_or_parse(doc):
    """Within 2 s each: a document either parses (then its planned size is checked without building
    the plan) or is refused with a one-line InputError naming the file; never MemoryError."""
    from t2i_audit.evals.suites.loader import check_suite_size

    try:
        suite = parse_suite(doc, "fuzz.yaml")
    except InputError as e:
        assert "fuzz.yaml" in str(e) and "\n" not in str(e).strip()
        return
    str(suite.description)  # what used to expand the aliases
    try:
        check_suite_size(suite)
    except InputError as e:
        assert "--allow-large" in str(e)
