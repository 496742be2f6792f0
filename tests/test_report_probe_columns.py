"""Every report table that can hold several probes (or bases) names them in a column: the main job
audits bias with the CLIP probe and the oracle, so each (attribute, group) appears once per probe."""

import pandas as pd

from t2i_audit.reports.diversity import HEADER, finding_rows
from t2i_audit.reports.html import glance_table
from t2i_audit.reports.markdown import _bias_md
from t2i_audit.reports.results import RunResults

PROBES = ("pictoworld-presentation", "oracle-presentation")


def stats() -> pd.DataFrame:
    return pd.DataFrame([{"attribute": "presentation", "group": "chef", "statistic": "parity_gap", "value": v,
                          "ci_low": v - 0.1, "ci_high": v + 0.1, "n": 32, "basis": basis, "probe": probe}
                         for (probe, v), basis in zip(zip(PROBES, (0.4, 0.5)), ("corrected", "label-calibrated"))])


def test_bias_at_a_glance_names_probe_and_shares():
    html = glance_table(stats())
    assert html.startswith("<table><thead><tr><th>probe</th><th>shares</th><th>attribute</th>")
    for probe, basis in zip(PROBES, ("corrected", "label-calibrated")):
        assert f"<td>{probe}</td><td>{basis}</td><td>presentation</td><td>chef</td>" in html


def test_markdown_bias_statistics_name_the_probe():
    res = RunResults(root=None, run={}, bias=None, bias_stats=stats())
    res.bias = pd.DataFrame([{"attribute": "presentation", "group": "chef", "cls": "man", "raw": 0.5, "raw_ci_low": 0.4,
                              "raw_ci_high": 0.6, "corrected": 0.5, "corr_ci_low": 0.4, "corr_ci_high": 0.6,
                              "reference": 0.5, "n_images": 32, "n_prompts": 4, "abstain_rate": 0.0, "probe": p}
                             for p in PROBES])
    md = "\n".join(_bias_md(res))
    assert "| probe | attribute | group | class |" in md and "| probe | attribute | group | statistic |" in md
    for p in PROBES:
        assert f"| {p} | presentation | chef | man |" in md and f"| {p} | presentation | chef | parity_gap |" in md


def test_diversity_table_names_the_probe():
    meta = {"findings": [{"attribute": "clothing", "group": "chef", "statistic": "missing_modes", "value": 1.0,
                          "ci_low": 0.0, "ci_high": 2.0, "n": 8, "flagged": True, "detail": "teal",
                          "probe": "oracle-clothing"}]}
    assert HEADER[0] == "probe" and finding_rows(meta)[0][:3] == ["oracle-clothing", "clothing", "chef"]
