"""`t2i-audit align` end to end on a sampled PictoWorld run (oracle and bundled judges), the PictoWorld
judges on rendered images, `label --questions`, the report section (in headless Chromium), gate keys
and compare's pairing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from t2i_audit.cli import main
from t2i_audit.evals.alignment.questions import questions_from_suite
from t2i_audit.evals.alignment.synth import DEGRADE, draw
from t2i_audit.evals.suites.loader import load_suite
from t2i_audit.stats.resampling import wilson_interval

FIX = Path(__file__).parent / "fixtures"


def _cli(*args) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("al") / "run"
    _cli("sample", "--suite", "pictoworld-skills", "--limit", 12, "--images-per-prompt", 2, "--out", out,
         "--no-progress")
    return out


def test_align_oracle_and_bundled_end_to_end(run):
    out = _cli("align", run, "--judge", "oracle", "--reps", 200, "--no-progress")
    s = json.loads((run / "alignment" / "summary.json").read_text())
    assert s["judge"]["spec"] == "oracle" and s["n_images"] == 24 and s["n_prompts"] == 12
    assert "tifa" in out and "estimand" in out
    a = pd.read_parquet(run / "alignment" / "answers.parquet")
    assert set(a["p_yes"]) <= {0.0, 1.0} and not a["soft"].any()

    _cli("label", run, "--questions", "--n", 12, "--labeller", "oracle")
    labels = pd.read_csv(run / "labels" / "labels_questions.csv")
    assert list(labels.columns) == ["image", "question_id", "label"] and set(labels["label"]) <= {"yes", "no", "unsure"}
    out = _cli("align", run, "--judge", "bundled", "--labels", run / "labels" / "labels_questions.csv",
               "--reps", 200, "--no-progress")
    s = json.loads((run / "alignment" / "summary.json").read_text())
    assert s["judge"]["soft"] and s["labels"]["n_labels"] == len(labels)
    assert "label-calibrated" in out and s["calibrated"]
    a = pd.read_parquet(run / "alignment" / "answers.parquet")
    assert ((a["p_yes"] > 0) & (a["p_yes"] < 1)).mean() > 0.5  # soft P(yes)

    # a re-score reads every answer from the run's SQLite cache and sends nothing; scores are identical
    n = len(a)
    again = _cli("align", run, "--judge", "bundled", "--labels", run / "labels" / "labels_questions.csv",
                 "--reps", 200, "--no-progress")
    assert f"judge usage: {n} pairs, {n} from the cache, 0 sent" in again
    pd.testing.assert_frame_equal(pd.read_parquet(run / "alignment" / "answers.parquet"), a)
    assert (run / "alignment" / "answers.sqlite").is_file()

    # the labelling page: question above the image, y / n / u, image,question_id,label export
    _cli("label", run, "--questions", "--n", 3)
    page = (run / "labels" / "label_questions.html").read_text()
    assert '<p id="question"></p>' in page and '"keys":{"y":"yes","n":"no","u":"unsure"}' in page
    assert "image,question_id,label" in page and '"qid":' in page


def _pool(p_err: float, degrade, images: int, tmp: Path, limit: int):
    from t2i_audit.evals.judges.base import JudgeRequest

    suite = load_suite("pictoworld-skills")
    by: dict[str, list] = {}
    for q in questions_from_suite(suite):
        by.setdefault(q.prompt_id, []).append(q)
    reqs = []
    for k, p in enumerate(suite.select(limit)):
        for s in range(images):
            path = tmp / f"{k}-{s}.png"
            draw(p.expect, 1000 * k + s, p_err, degrade).save(path)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            reqs += [JudgeRequest(path, sha, q.text, q.spec) for q in by[p.prompt_id]]
    return reqs


def test_oracle_judge_is_exact_on_clean_renders(tmp_path):
    from t2i_audit.evals.alignment.oracle_judge import OracleJudge

    reqs = _pool(0.0, None, 1, tmp_path, 120)
    got = OracleJudge().answer(reqs)
    assert len(got) > 400 and all(a.p_yes == 1.0 for a in got)  # every question of a faithful render: yes


def test_bundled_judge_beats_chance_on_rendered_images(tmp_path):
    from t2i_audit.evals.alignment.bundled_judge import make_bundled_judge
    from t2i_audit.evals.alignment.oracle_judge import oracle_verdicts

    reqs = _pool(0.25, DEGRADE, 2, tmp_path, 120)
    truth = np.array([ok for ok, ab, _ in oracle_verdicts(reqs)])
    judge = make_bundled_judge("bundled", {})
    judge.cache_dir = False
    p = np.array([a.p_yes for a in judge.answer(reqs)])
    agree = int(((p >= 0.5) == truth).sum())
    lo, _ = wilson_interval(agree, len(reqs))
    base = max(truth.mean(), 1 - truth.mean())  # always answering the majority answer
    assert lo > 0.5 and agree / len(reqs) > base, (agree / len(reqs), base)


def test_report_gate_and_compare_read_alignment(run, tmp_path):
    from t2i_audit.evals.alignment.main_job import score_alignment, summary_text
    from t2i_audit.reports.gate.index import MetricIndex
    from t2i_audit.reports.markdown import markdown_summary
    from t2i_audit.reports.results import load_run

    s = score_alignment(run, labels_per_skill=15, reps=200)
    text = summary_text(s)
    assert "judge-raw" in text and "label-calibrated" in text and "oracle truth" in text
    assert {r["skill"] for r in s["oracle_truth"]} >= {"object", "attribute", "whole-prompt"}
    res = load_run(run)
    md = markdown_summary(res)
    assert "## Alignment" in md and "oracle truth" in md and "P(yes) normalisation" in md
    idx = MetricIndex(res)
    assert "alignment.tifa" in idx.all_names() and "object" in idx.names["alignment.calibrated"]
    assert "object" in idx.names["alignment.oracle"]


@pytest.mark.slow
def test_alignment_section_in_headless_chromium(run, tmp_path):
    from t2i_audit.evals.alignment.main_job import score_alignment
    from t2i_audit.reports.report import ReportConfig, render_report
    from test_report_browser import chromium, findings, instrument, run_chromium

    exe = chromium()
    for name in ("run_a", "train"):
        shutil.copytree(FIX / name, tmp_path / name)
    score_alignment(run, labels_per_skill=15, reps=200)
    shutil.copytree(run / "alignment", tmp_path / "run_a" / "alignment")
    report = render_report(tmp_path / "run_a", tmp_path / "out", ReportConfig(formats=("html",))).html
    html = report.read_text()
    assert "id='alignment'" in html and "label-calibrated" in html and "oracle truth" in html
    check = tmp_path / "out" / "check.html"
    check.write_text(instrument(html).replace(
        "window.addEventListener('load', function () {",
        "window.addEventListener('load', function () { var al = document.getElementById('alignment');"
        " document.body.setAttribute('data-al', al ? (al.offsetHeight > 0) + '|' +"
        " al.nextElementSibling.nextElementSibling.querySelectorAll('tbody tr').length : 'none');", 1))
    dom, console = run_chromium(exe, check, tmp_path / "profile", "--dump-dom")
    assert console == [], console
    f = findings(dom)
    assert f["broken"] == [] and f["n_scripts"] == 1, f
    import re

    m = re.search(r'data-al="(\w+)\|(\d+)"', dom)
    assert m and m.group(1) == "true" and int(m.group(2)) == len({r["skill"] for r in json.loads(
        (run / "alignment" / "summary.json").read_text())["skills"]}), m and m.group(0)
