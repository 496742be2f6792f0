"""Report tables and loading: schema checks, formats, methodology, missing inputs, no torch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from t2i_audit.errors import InputError
from t2i_audit.reports.markdown import markdown_summary, md_escape
from t2i_audit.reports.report import ReportConfig, render_report
from t2i_audit.reports.results import check_complete, completeness_problems, load_run
from t2i_audit.reports.tables import TABLE_SCHEMA, build_tables, parse_formats, write_tables

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def run_a(tmp_path):
    shutil.copytree(FIX / "run_a", tmp_path / "run_a")
    shutil.copytree(FIX / "train", tmp_path / "train")
    return tmp_path / "run_a"


def test_tables_written_in_every_format_and_round_trip(run_a, tmp_path):
    res = load_run(run_a)
    tables = build_tables(res)
    assert set(tables) == {"aggregates", "items", "bias", "bias_stats", "memorization", "methodology"}
    write_tables(tables, tmp_path / "t")
    for name, df in tables.items():
        pq = pd.read_parquet(tmp_path / "t" / f"{name}.parquet")
        pd.testing.assert_frame_equal(pq, df, check_dtype=False)
        csv = pd.read_csv(tmp_path / "t" / f"{name}.csv", keep_default_na=False, na_values=[""])
        assert list(csv.columns) == list(df.columns) and len(csv) == len(df)
        js = json.loads((tmp_path / "t" / f"{name}.json").read_text())
        assert js["schema"] == TABLE_SCHEMA and js["table"] == name
        assert js["columns"] == list(df.columns) and len(js["rows"]) == len(df)
    # items are joined with the prompt text and carry each check's detail
    items = tables["items"]
    fails = items[(items.metric == "skill") & (items.value == 0)]
    assert len(fails) == 5 and fails["detail"].str.contains("expected").all()
    assert (tables["aggregates"]["run_id"] == "run_a").all()


def test_methodology_lists_every_source(run_a):
    meth = build_tables(load_run(run_a))["methodology"]
    text = " ".join(meth["text"])
    assert "pictoworld-clip@bundled-0.1 (sha256:9a1c0ffee)" in text        # evaluator id
    assert "a photo of a woman" in text                                     # probe prompt
    assert "truncated to 77 tokens" in text                                 # truncation
    assert "0.97" in set(meth[meth.key == "threshold"]["text"])             # memorization threshold
    assert {"run.json", "scores/results.json", "scores/aggregates.parquet", "audits/bias.json",
            "audits/memorization.json"} <= set(meth["source"])


def test_report_with_only_run_json_and_manifest_says_what_is_missing(run_a, tmp_path):
    shutil.rmtree(run_a / "scores")
    shutil.rmtree(run_a / "audits")
    paths = render_report(run_a, tmp_path / "rep")
    html = paths.html.read_text()
    assert "scores/aggregates.parquet is missing" in html
    assert "No bias audit" in html and "No memorization audit" in html
    assert "audits/bias.parquet" in paths.missing
    md = paths.markdown.read_text()
    assert "## Missing inputs" in md and "scores/items.parquet" in md
    assert html.count("data:image/png;base64") == 24  # the images are still shown


def test_schema_and_column_errors(run_a):
    run_json = run_a / "run.json"
    data = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**data, "schema": "t2i-audit/run/9"}))
    with pytest.raises(InputError, match="newer than this t2i-audit supports"):
        load_run(run_a)
    run_json.write_text(json.dumps({**data, "schema": "something/else"}))
    with pytest.raises(InputError, match="run.json: schema"):
        load_run(run_a)
    run_json.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_run(run_a)
    run_json.write_text(json.dumps(data))
    agg = pd.read_parquet(run_a / "scores/aggregates.parquet").drop(columns="ci_low")
    agg.to_parquet(run_a / "scores/aggregates.parquet")
    with pytest.raises(InputError, match="missing column.*ci_low"):
        load_run(run_a)
    (run_a / "scores/aggregates.parquet").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable Parquet"):
        load_run(run_a)
    with pytest.raises(InputError, match="not a run directory"):
        load_run(run_a / "nope")


def test_completeness_detects_short_manifest_missing_images_and_unscored(run_a):
    res = load_run(run_a)
    assert completeness_problems(res, ("scores", "bias", "memorization")) == []
    man = res.manifest
    man.iloc[:-2].to_parquet(run_a / "manifest.parquet")
    (run_a / "images" / "p000-s0.png").unlink()
    probs = completeness_problems(load_run(run_a))
    assert any("promises 24" in p for p in probs)
    assert any("image file(s)" in p for p in probs)
    with pytest.raises(InputError, match="incomplete results"):
        check_complete(load_run(run_a))
    man.to_parquet(run_a / "manifest.parquet")
    items = pd.read_parquet(run_a / "scores/items.parquet")
    items[items.image_id != "p001-s1"].to_parquet(run_a / "scores/items.parquet")
    assert any("have no scores" in p for p in completeness_problems(load_run(run_a)))


def test_formats_and_config():
    assert parse_formats("md, HTML,csv,md") == ("md", "html", "csv")
    with pytest.raises(InputError, match="did you mean 'html'"):
        parse_formats("md,htm")
    cfg = ReportConfig(formats=("md", "json"), max_per_prompt=3)
    assert ReportConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(InputError):
        ReportConfig(formats=("pdf",))


def test_markdown_escapes_user_text(run_a):
    md = markdown_summary(load_run(run_a))
    assert md_escape("a|b<script>") == "a\\|b&lt;script&gt;"
    assert "<script>" not in md
    assert "| skill | 0.688 | [0.542, 0.833] | 8 | 24 |" in md


def test_reports_never_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from t2i_audit.reports.report import render_report\n"
        "from t2i_audit.reports.compare import compare_runs\n"
        "from t2i_audit.reports.gate.run import evaluate\n"
        f"render_report({str(FIX / 'run_a')!r}, {str(tmp_path / 'r')!r})\n"
        f"compare_runs({str(FIX / 'run_a')!r}, {str(FIX / 'run_b')!r}, n_boot=200)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip', 'transformers', 'diffusers')]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_running_status_and_other_memorization_spelling(run_a):
    from t2i_audit.reports.gate.index import MetricIndex
    from t2i_audit.reports.gate.rules import Ref

    js = json.loads((run_a / "run.json").read_text())
    (run_a / "run.json").write_text(json.dumps({**js, "status": "running"}))
    assert any("status is 'running'" in p for p in completeness_problems(load_run(run_a)))
    (run_a / "run.json").write_text(json.dumps({**js, "status": "complete", "n_images": 24}))
    assert completeness_problems(load_run(run_a)) == []
    # the memorization audit's own key names: rate_ci_low/high, n_generated, threshold as a dict
    (run_a / "audits/memorization.json").write_text(json.dumps({
        "schema": "t2i-audit/memorization/1", "n_generated": 24, "rate": 0.125, "rate_ci_low": 0.04,
        "rate_ci_high": 0.31, "threshold": {"value": 0.93, "space": "pixel"}, "methodology": "nn"}))
    res = load_run(run_a)
    est = MetricIndex(res).resolve(Ref("memorization.rate"), "t")[0]
    assert (est.value, est.ci_low, est.ci_high, est.n) == (0.125, 0.04, 0.31, 24)
    assert "Near-copy rate 0.125 [0.040, 0.310], n = 24, threshold 0.93." in markdown_summary(res)
