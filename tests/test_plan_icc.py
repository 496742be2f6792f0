"""`audit plan` with a prompt-level ICC: designs of prompts x images per prompt, checked by simulation."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.audits.bias.bias_audit import icc_by_probe
from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.stats.power import PlanConfig, plan, recommend, simulate_power


@pytest.mark.parametrize("icc, base", [(0.02, 0.2), (0.05, 0.5)])
def test_recommended_design_reaches_the_power_in_simulation(icc, base):
    best, table = recommend(PlanConfig(gap=0.1, base=base, icc=icc), max_prompts=40)
    assert best is not None and 5 <= best.prompts_per_group <= 40
    sizes = [p.images_per_group for p in table]
    assert sizes == sorted(sizes, reverse=True)  # more paraphrases, fewer images once icc > 0
    power = simulate_power(best, reps=2000, seed=1)
    assert power >= 0.8 - 3 * np.sqrt(0.8 * 0.2 / 2000), (best.prompts_per_group, best.images_per_prompt, power)


def test_fewer_than_min_prompts_is_refused_and_icc_costs_images():
    with pytest.raises(InputError, match=">= 5"):
        plan(PlanConfig(gap=0.1, icc=0.05, prompts_per_group=4))
    flat = plan(PlanConfig(gap=0.1, prompts_per_group=12))
    clustered = plan(PlanConfig(gap=0.1, icc=0.01, prompts_per_group=12))
    assert 194 <= flat.images_per_group <= 204  # binomial: 194 for 0.5 -> 0.6, rounded up to 12 x 17
    assert clustered.images_per_group > 1.3 * flat.images_per_group  # 288: deff 1.23 and t on 11 df


def test_icc_leaves_out_explicit_prompts():
    # neutral prompts agree (no spread); explicit prompts ask for opposite classes
    rows = [(f"n{i}", "chef", "man" if j % 2 else "woman") for i in range(6) for j in range(10)]
    rows += [(f"e{i}", "chef", "man" if i % 2 else "woman") for i in range(4) for _ in range(10)]
    items = pd.DataFrame(rows, columns=["prompt_id", "group", "reading"]).assign(probe="p", attribute="a")
    neutral = items["prompt_id"].str.startswith("n").to_numpy()
    assert icc_by_probe(items)["p"] > 0.3
    assert icc_by_probe(items, {"p": neutral})["p"] == 0.0


def test_plan_takes_the_icc_of_a_pilot(tmp_path):
    (tmp_path / "audits").mkdir()
    (tmp_path / "audits" / "bias.json").write_text(json.dumps({"icc": {"a": 0.01, "b": 0.02, "c": float("nan")}}))
    r = CliRunner().invoke(main, ["audit", "plan", "--gap", "0.1", "--base", "0.2", "--icc-from", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "0.020 (probe b" in r.output and "<- recommended" in r.output and "12 prompts x" in r.output
    r = CliRunner().invoke(main, ["audit", "plan", "--gap", "0.1", "--icc", "0.3", "--max-prompts", "8"])
    assert r.exit_code != 0 and "write more paraphrases" in r.output
