"""Paired robustness deltas, counterfactual fairness with Holm, gate keys, findings and the CLI."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.reports.fairness import counterfactual
from t2i_audit.reports.robustness import paired_deltas
from t2i_audit.stats.distribution import holm

HERE = Path(__file__).parent
GEN = f"python:{HERE / 'perturb_gen.py'}:draw"


def _sample(out: Path, *extra: str) -> Path:
    r = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-bias", "--generator", GEN, "--limit", "20",
                                  "--images-per-prompt", "6", "--out", str(out), "--no-progress", *extra])
    assert r.exit_code == 0, r.output
    return out


def _write_items(run: Path, fn) -> None:
    m = pd.read_parquet(run / "manifest.parquet")
    rows = []
    for r in m.itertuples():
        for metric, value in fn(r).items():
            rows.append({"run_id": "x", "prompt_id": r.prompt_id, "image_id": r.image_id, "seed": r.seed,
                         "category": r.category, "metric": metric, "value": value, "detail": ""})
    (run / "scores").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_parquet(run / "scores" / "items.parquet")


def _u(prompt_id: str, seed: int) -> float:
    """A fixed pseudo-random number per (source prompt, seed), shared by both runs."""
    h = hashlib.sha256(f"{prompt_id.split('~')[0]}:{int(seed)}".encode()).hexdigest()
    return int(h[:8], 16) / 2**32


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rob")
    src = _sample(root / "src")
    pert = _sample(root / "pert", "--perturb", "typo:0.1", "--perturb", "swap:presentation")
    # planted: clip_score 0.25 lower under typos (exactly), 0 under swaps; skill 0.9 -> 0.6 under typos
    _write_items(src, lambda r: {"clip_score": 30 + 5 * _u(r.prompt_id, r.seed), "skills": float(_u(r.prompt_id, r.seed) < 0.9)})

    def pert_items(r):
        typo = "~typo" in r.prompt_id
        return {"clip_score": 30 + 5 * _u(r.prompt_id, r.seed) - (0.25 if typo else 0.0),
                "skills": float(_u(r.prompt_id, r.seed) < (0.6 if typo else 0.9))}

    _write_items(pert, pert_items)
    return src, pert


def test_paired_delta_recovers_planted_difference(runs):
    src, pert = runs
    d, summary = paired_deltas(src, pert, n_boot=500)
    row = d[(d.perturbation == "typo:0.1") & (d.metric == "clip_score") & (d.group == "all")].iloc[0]
    assert row.delta == pytest.approx(-0.25, abs=1e-9) and row.ci_low == pytest.approx(-0.25, abs=1e-9)
    sk = d[(d.perturbation == "typo:0.1") & (d.metric == "skills") & (d.group == "all")].iloc[0]
    assert sk.ci_low < -0.3 < sk.ci_high and sk.n_prompts >= 5 and sk.n == sk.n_prompts * 6
    sw = d[(d.perturbation == "swap:presentation") & (d.metric == "clip_score") & (d.group == "all")].iloc[0]
    assert sw.delta == pytest.approx(0.0, abs=1e-9)
    # unchanged prompts (neutral ones under a presentation swap) are counted, not paired
    assert sw.n_unchanged > 0 and summary["perturbations"] == ["typo:0.1", "swap:presentation"]
    assert set(d.group) >= {"all", "category=neutral", "category=explicit"}
    # a swap runs both ways: one group per direction
    dirs = {g for g in d[d.perturbation == "swap:presentation"].group if g.startswith("change=")}
    assert dirs and dirs <= {"change=man→woman", "change=woman→man"}


def test_refuses_runs_that_do_not_pair(runs, tmp_path):
    src, pert = runs
    with pytest.raises(InputError, match="not a perturbed run"):
        paired_deltas(pert, src)
    other = tmp_path / "other"
    r = CliRunner().invoke(main, ["sample", "--suite", "pictoworld-skills", "--generator", GEN, "--limit", "2",
                                  "--out", str(other), "--no-progress"])
    assert r.exit_code == 0
    with pytest.raises(InputError, match="suite hash"):
        paired_deltas(other, pert)
    r = CliRunner().invoke(main, ["robustness", str(pert), str(src)])
    assert r.exit_code == 2 and "not a perturbed run" in r.output


def test_cli_writes_results_gate_keys_and_findings(runs, tmp_path):
    src, pert = runs
    r = CliRunner().invoke(main, ["robustness", str(src), str(pert), "--reps", "500"])
    assert r.exit_code == 0, r.output
    meta = json.loads((pert / "robustness" / "robustness.json").read_text())
    assert any("typo:0.1 lowers skills" in f for f in meta["findings"])
    rules = tmp_path / "rules.yaml"
    rules.write_text('rules:\n  - "robustness.skills[typo:0.1] >= -0.1"\n  - "robustness.clip_score[swap:presentation] >= -0.1"\n')
    g = CliRunner().invoke(main, ["gate", str(pert), "--rules", str(rules)])
    assert g.exit_code == 1, g.output  # the typo rule fails, the swap rule passes
    assert "robustness.skills[typo:0.1]" in g.output
    html = (pert / "robustness" / "report.html").read_text()
    assert "Paired deltas" in html and "typo:0.1 lowers skills" in html
    rep = CliRunner().invoke(main, ["report", str(pert), "--format", "md,html"])
    assert rep.exit_code == 0, rep.output
    assert "typo:0.1 lowers skills" in (pert / "report" / "report.md").read_text()


def _fair_inputs(gap: float, seed: int, n_img: int = 8):
    """Families: 5 professions x 3 skins, presentation man/woman; woman's adherence lowered by ``gap``."""
    rng = np.random.default_rng(seed)
    man, items = [], []
    for prof in ("chef", "doctor", "firefighter", "police officer", "construction worker"):
        for skin in ("light", "medium", "dark"):
            base = rng.uniform(0.8, 0.95)  # prompt-level variation
            for pres in ("man", "woman"):
                pid = f"{prof}-{skin}-{pres}"
                man.append({"prompt_id": pid, "template": "a {presentation} {profession} with {skin} skin",
                            "slots": json.dumps({"presentation": pres, "profession": prof, "skin": skin})})
                p = base - (gap if pres == "woman" else 0.0)
                items += [{"prompt_id": pid, "seed": s, "category": "explicit", "metric": "skills",
                           "value": float(rng.random() < p)} for s in range(n_img)]
    return pd.DataFrame(items), pd.DataFrame(man)


def test_counterfactual_flags_a_planted_gap_and_not_its_absence():
    items, man = _fair_inputs(0.3, 0)
    f = counterfactual(items, man, n_boot=1000)
    top = f[(f.kind == "max_disparity") & (f.attribute == "presentation")].iloc[0]
    assert top.group == "man - woman" and top.flagged and top.ci_low > 0.1
    ident = f[(f.kind == "identity") & (f.attribute == "presentation")].set_index("group")
    assert ident.loc["man", "value"] > ident.loc["woman", "value"] and ident.loc["woman", "n"] == 15 * 8
    # skin has three values: three pairs, Holm-adjusted
    pairs = f[(f.kind == "pair") & (f.attribute == "skin")]
    assert len(pairs) == 3 and np.allclose(pairs.p_holm, holm(pairs.p_value.to_numpy()))
    items0, man0 = _fair_inputs(0.0, 1)
    f0 = counterfactual(items0, man0, n_boot=1000)
    assert not f0[f0.kind == "max_disparity"].flagged.any()


def test_holm_adjustment():
    p = np.array([0.01, 0.04, 0.03, np.nan])
    adj = holm(p)
    assert np.allclose(adj[:3], [0.03, 0.06, 0.06]) and np.isnan(adj[3])
    assert np.all(adj[:3] >= p[:3])


def test_report_findings_render_in_headless_chromium(runs, tmp_path):
    import subprocess

    from system_tools import require_tool

    exe = require_tool("chromium", "chromium-browser", "google-chrome", install="apt-get install -y chromium",
                       env="T2I_AUDIT_CHROMIUM")
    src, pert = runs
    assert CliRunner().invoke(main, ["robustness", str(src), str(pert), "--reps", "300"]).exit_code == 0
    assert CliRunner().invoke(main, ["report", str(pert), "--format", "html"]).exit_code == 0
    for page in (pert / "robustness" / "report.html", pert / "report" / "report.html"):
        dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        assert "<ol class=\"findings\">" in dom and "typo:0.1 lowers skills" in dom, page
        assert "Paired deltas" in dom
