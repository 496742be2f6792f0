"""Contract check: report, gate and compare read what the real `score` writes (skills via the oracle)."""

import dataclasses
import hashlib
import io
import json

import pandas as pd
import pytest

from t2i_audit.reports import compare_runs, evaluate, load_run, parse_rules, render_report


def make_scored_run(root, flip_every: int):
    """6 prompts × 3 seeds of single shapes; every `flip_every`-th image is recoloured (a planted failure)."""
    from t2i_audit.evals.scoring.score import ScoreConfig, score_run
    from t2i_audit.world.captions import bare_caption
    from t2i_audit.world.dataset import iter_scenes
    from t2i_audit.world.expect import expect_from_scene
    from t2i_audit.world.render import render

    (root / "images").mkdir(parents=True)
    rows = []
    for i, (_, s) in enumerate(iter_scenes(18, 0, kind="single")):
        pid, seed = f"p{i // 3:03d}", i % 3
        shown = s
        if i % flip_every == flip_every - 1:
            other = "blue" if s.shapes[0].color != "blue" else "red"
            shown = dataclasses.replace(s, shapes=(dataclasses.replace(s.shapes[0], color=other),))
        buf = io.BytesIO()
        render(shown, 32).save(buf, format="PNG")
        iid = f"{pid}-s{seed}"
        (root / "images" / f"{iid}.png").write_bytes(buf.getvalue())
        rows.append({"prompt_id": pid, "category": "even" if (i // 3) % 2 == 0 else "odd", "template": "{x}",
                     "slots": "{}", "text": bare_caption(s), "tags": ["single"],
                     "expect": json.dumps(expect_from_scene(s)), "seed": seed, "image_id": iid,
                     "path": f"images/{iid}.png", "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                     "width": 32, "height": 32, "seconds": 0.0})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    (root / "run.json").write_text(json.dumps({"schema": "t2i-audit/run/1", "run_id": root.name,
                                               "suite": {"name": "t", "version": "1", "hash": "abc"},
                                               "images_per_prompt": 3, "status": "complete", "n_images": 18}))
    score_run(root, ScoreConfig(metrics=("skills",), reps=300, cache=False, progress=False))
    return root


@pytest.mark.slow
def test_report_gate_compare_on_real_score_outputs(tmp_path):
    good = make_scored_run(tmp_path / "good", flip_every=9)    # 2 failures of 18
    bad = make_scored_run(tmp_path / "bad", flip_every=2)      # 9 failures of 18
    paths = render_report(good, tmp_path / "rep")
    html = paths.html.read_text()
    items = pd.read_parquet(good / "scores/items.parquet")
    metric = items.metric.iloc[0]
    assert f">{metric} (pass rate)</h3>" in html
    fail_detail = items[items.value == 0].detail.iloc[0]
    assert fail_detail and fail_detail.replace("'", "&#x27;") in html   # the oracle's reason under its image
    r = evaluate(load_run(bad), parse_rules({"rules": [f"{metric} >= 0.8",
                                                       f"{metric} no worse than baseline by more than 0.05"]})[0],
                 load_run(good))
    assert [c.verdict for c in r.checks] == ["fail", "fail"]
    c = compare_runs(good, bad, n_boot=500)
    row = c.metrics.set_index(["metric", "group"]).loc[(metric, "overall")]
    assert row.difference == pytest.approx((9 - 16) / 18) and row.test == "paired cluster bootstrap"
    assert row.ci_high < 0
