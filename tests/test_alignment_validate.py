"""judge validate: tau_b equals scipy's, tie-calibrated pairwise accuracy equals a brute-force count."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import kendalltau

from t2i_audit.commands.judge_validate import judge
from t2i_audit.evals.alignment.validate import kendall_tau_b, pairwise_accuracy

FIX = Path(__file__).parent / "fixtures" / "alignment" / "human_ratings.csv"


def brute_accuracy(h, m, eps):
    right = total = 0
    for i, j in combinations(range(len(h)), 2):
        total += 1
        ht, mt = h[i] == h[j], abs(m[i] - m[j]) <= eps
        right += (ht and mt) or (not ht and not mt and np.sign(h[i] - h[j]) == np.sign(m[i] - m[j]))
    return right / total


def test_tau_b_and_pairwise_accuracy_on_fixture():
    df = pd.read_csv(FIX)
    h = df["human"].to_numpy(float)
    for col in ("vqascore", "clip_score"):
        m = df[col].to_numpy(float)
        assert abs(kendall_tau_b(h, m) - kendalltau(h, m).statistic) < 1e-12
        acc, eps = pairwise_accuracy(h, m)
        assert acc == pytest.approx(brute_accuracy(h, m, eps), abs=1e-15)
        cands = {0.0} | {abs(a - b) for a, b in combinations(m, 2)}
        assert acc == pytest.approx(max(brute_accuracy(h, m, e) for e in cands), abs=1e-15)
    # metric ties too: a coarse score
    m = np.round(df["vqascore"].to_numpy() * 4) / 4
    assert abs(kendall_tau_b(h, m) - kendalltau(h, m).statistic) < 1e-12
    acc, eps = pairwise_accuracy(h, m)
    assert acc == pytest.approx(brute_accuracy(h, m, eps), abs=1e-15) and eps >= 0


def test_cli_validate(tmp_path):
    out = tmp_path / "v.json"
    r = CliRunner().invoke(judge, ["validate", "--human", str(FIX), "--reps", "200", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "vqascore" in r.output and "clip_score" in r.output and "n=40 items, 780 pairs" in r.output
    rows = json.loads(out.read_text())
    df = pd.read_csv(FIX)
    assert abs(rows[0]["kendall_tau_b"] - kendalltau(df.human, df.vqascore).statistic) < 1e-12
    assert rows[0]["tau_ci_low"] <= rows[0]["kendall_tau_b"] <= rows[0]["tau_ci_high"]
    r = CliRunner().invoke(judge, ["validate", "--human", str(FIX), "--group", "prompt_id", "--reps", "100"])
    assert r.exit_code == 0 and "pairs within prompt_id" in r.output and "60 pairs" in r.output


def test_cli_validate_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,human,vqascore\na,1,0.3\nb,x,0.5\nc,2,0.4\n")
    r = CliRunner().invoke(judge, ["validate", "--human", str(bad)])
    assert r.exit_code != 0 and "bad.csv:3: human rating 'x' is not a number" in str(r.exception)
