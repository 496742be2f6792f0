"""Gate rule grammar: every form parses to the right rule; anything else is a one-line InputError."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2i_audit.errors import InputError
from t2i_audit.reports.gate.rules import GateRuleError, Ref, parse_rule, parse_rules


@pytest.mark.parametrize("text, kind, ref, extra", [
    ("clip_score.mean >= 24", "absolute", Ref("clip_score.mean"), {"op": ">=", "threshold": 24.0}),
    ("skill[people]<0.5 confidently", "absolute", Ref("skill", "people"),
     {"op": "<", "threshold": 0.5, "confidently": True}),
    ("fd  <=  baseline + 2.5", "baseline", Ref("fd"), {"op": "<=", "threshold": 2.5}),
    ("skill >= baseline - 0.02", "baseline", Ref("skill"), {"op": ">=", "threshold": -0.02}),
    ("skill >= baseline", "baseline", Ref("skill"), {"threshold": 0.0}),
    ("skills.overall: no worse than baseline by more than 0.02", "no_worse", Ref("skills.overall"),
     {"margin": 0.02}),
    ("fd no worse than baseline", "no_worse", Ref("fd"), {"margin": 0.0}),
    ("bias.presentation.share[*:woman] same as baseline", "same", Ref("bias.presentation.share", "*:woman"),
     {"margin": 0.0}),
    ("bias.presentation.share[police officer:woman] same as baseline within 0.05", "same",
     Ref("bias.presentation.share", "police officer:woman"), {"margin": 0.05}),
    ("bias.parity_gap[firefighter] <= 0.3", "absolute", Ref("bias.parity_gap", "firefighter"), {"threshold": 0.3}),
])
def test_forms(text, kind, ref, extra):
    r = parse_rule(text)
    assert (r.kind, r.ref) == (kind, ref)
    for k, v in extra.items():
        assert getattr(r, k) == v
    assert r.needs_baseline == (kind != "absolute")


@pytest.mark.parametrize("text, match", [
    ("clip_score >= basline - 2", "did you mean 'baseline'"),
    ("clip_score => 24", "cannot parse"),
    ("clip_score >= 24 confidentially", "did you mean 'confidently'"),
    ("clip_score >= nan", "cannot parse"),
    ("clip_score >= 1e999", "not finite"),
    ("skill no worse than baseline by more than -0.1", "must be ≥ 0"),
    ("skill[] >= 1", "cannot parse"),
    ("__import__('os') >= 1", "cannot parse"),
    ("", "empty rule"),
])
def test_bad_rules(text, match):
    with pytest.raises(GateRuleError, match=match):
        parse_rule(text, "gate.yaml: rule 1")


def test_documents():
    rules, conf = parse_rules({"rules": ["fd <= 30", {"skill.overall": "no worse than baseline by more than 0.02"},
                                         {"rule": "skill >= 0.5", "name": "skill-floor"}], "confidence": 0.9})
    assert conf == 0.9 and [r.kind for r in rules] == ["absolute", "no_worse", "absolute"]
    assert rules[1].text == "skill.overall: no worse than baseline by more than 0.02"
    assert rules[2].name == "skill-floor"
    for doc, match in [
        ([], "mapping with a 'rules' list"),
        ({"rules": []}, "non-empty list"),
        ({"rule": ["x >= 1"]}, "did you mean 'rules'"),
        ({"rules": ["x >= 1"], "confidence": 1.5}, "confidence"),
        ({"rules": [{"rule": "x >= 1", "nmae": "a"}]}, "did you mean 'name'"),
        ({"rules": [{"x": 1}]}, "quoted string rule"),
        ({"rules": ["x >= 1", "x >= 1"]}, "duplicate rule name"),
        ({"rules": [3]}, "a rule is a string"),
    ]:
        with pytest.raises(GateRuleError, match=match):
            parse_rules(doc, "gate.yaml")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(st.text(max_size=20), max_size=3),
                 st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3)))
def test_fuzz_never_crashes(item):
    try:
        parse_rules({"rules": [item]}, "fuzz.yaml")
    except InputError as e:
        assert "\n" not in str(e) and "fuzz.yaml" in str(e)
