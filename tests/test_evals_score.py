"""`score` end to end on fabricated run directories (the docs/results-schema.md layout)."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from evals_fixtures import tiny_hf_clip
from t2i_audit.cli import main
from t2i_audit.errors import InputError
from t2i_audit.evals.features.cache import EmbeddingCache
from t2i_audit.evals.scoring.score import ScoreConfig, parse_metrics, score_run


def make_run(root, n_prompts=4, per_prompt=3, seed=0, kind="single"):
    """A run directory of PictoWorld renders, laid out as `t2i-audit sample` writes it."""
    from t2i_audit.world.captions import bare_caption
    from t2i_audit.world.dataset import iter_scenes
    from t2i_audit.world.render import render

    (root / "images").mkdir(parents=True)
    rows = []
    scenes = [s for _, s in iter_scenes(n_prompts * per_prompt, seed, kind=kind)]
    for p in range(n_prompts):
        for k in range(per_prompt):
            s = scenes[p * per_prompt + k]
            buf = io.BytesIO()
            render(s, 32).save(buf, format="PNG")
            iid = f"p{p:03d}-s{k}"
            (root / "images" / f"{iid}.png").write_bytes(buf.getvalue())
            rows.append({"prompt_id": f"p{p:03d}", "category": "even" if p % 2 == 0 else "odd",
                         "template": "{x}", "slots": "{}", "text": bare_caption(s), "tags": [kind],
                         "expect": None, "seed": k, "image_id": iid, "path": f"images/{iid}.png",
                         "sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "width": 32, "height": 32,
                         "seconds": 0.0})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    (root / "run.json").write_text(json.dumps({"schema": "t2i-audit/run/1", "run_id": root.name,
                                               "suite": {"name": "t", "version": "1", "hash": "abc"}}))
    return root


@pytest.fixture(scope="module")
def hf_spec(tmp_path_factory):
    return f"hf-clip:{tiny_hf_clip(tmp_path_factory.mktemp('hfclip'))}"


def test_score_writes_results_and_rescore_hits_cache(tmp_path, hf_spec):
    run = make_run(tmp_path / "run")
    ref = make_run(tmp_path / "ref", n_prompts=6, per_prompt=2, seed=7)
    cfg = ScoreConfig(metrics=("clip_score", "fd", "kid", "cmmd"), features=hf_spec, clip=hf_spec,
                      reference=str(ref), reps=200, dist_reps=5, kid_subset_size=8, kid_subsets=5,
                      cache_dir=str(tmp_path / "cache"), progress=False)
    res = score_run(run, cfg)
    # content-addressed: an image drawn in both sets (small renders can coincide) is embedded once
    assert res["cache"]["forward_passes"] > 0 and res["cache"]["misses"] > 0
    agg = pd.read_parquet(run / "scores" / "aggregates.parquet")
    items = pd.read_parquet(run / "scores" / "items.parquet")
    assert set(agg.metric) == {"clip_score", "fd", "kid", "cmmd"}
    assert list(agg.columns) == ["metric", "group", "value", "ci_low", "ci_high", "n_prompts", "n_images", "method"]
    cs = agg[(agg.metric == "clip_score") & (agg.group == "overall")].iloc[0]
    assert cs.n_prompts == 4 and cs.n_images == 12 and cs.ci_low <= cs.value <= cs.ci_high
    assert set(agg[agg.metric == "clip_score"].group) == {"overall", "category=even", "category=odd"}
    assert len(items) == 12 and (items.metric == "clip_score").all()
    out = json.loads((run / "scores" / "results.json").read_text())
    assert out["schema"] == "t2i-audit/scores/1" and out["evaluators"]["clip"].startswith("hf-clip:")
    assert "100·max(cos" in out["methodology"]["clip_score"]
    assert out["reference"]["n"] == 12
    # the same numbers from cached embeddings, with no forward pass at all
    cache = EmbeddingCache(tmp_path / "cache")
    res2 = score_run(run, cfg, cache=cache)
    assert res2["cache"]["forward_passes"] == 0 and res2["cache"]["misses"] == 0 and res2["cache"]["hits"] > 0
    pd.testing.assert_frame_equal(pd.read_parquet(run / "scores" / "aggregates.parquet"), agg)


def test_cli_score_prints_table_and_cache_stats(tmp_path, hf_spec):
    run = make_run(tmp_path / "run", n_prompts=3, per_prompt=2)
    args = ["score", str(run), "--metrics", "clip_score", "--clip", hf_spec, "--reps", "100",
            "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    r1 = CliRunner().invoke(main, args)
    assert r1.exit_code == 0, r1.output
    assert "95% CI" in r1.output and "clip_score" in r1.output and "stage timings" in r1.output
    r2 = CliRunner().invoke(main, args)
    assert "cache: 12 hits, 0 misses, 0 forward passes" in r2.output
    bad = CliRunner().invoke(main, ["score", str(run), "--metrics", "clip_scor"])
    assert bad.exit_code == 2 and "did you mean 'clip_score'" in bad.output


def test_score_input_errors(tmp_path, hf_spec):
    with pytest.raises(InputError, match="unknown metric 'kdi'.*did you mean 'kid'"):
        parse_metrics("fd,kdi")
    with pytest.raises(InputError, match="not a generation run"):
        score_run(tmp_path, ScoreConfig(progress=False))
    run = make_run(tmp_path / "run", n_prompts=2, per_prompt=2)
    with pytest.raises(InputError, match="--reference"):
        score_run(run, ScoreConfig(metrics=("fd",), features=hf_spec, cache=False, progress=False))
    with pytest.raises(InputError, match="no expectations"):
        score_run(run, ScoreConfig(metrics=("skills",), cache=False, progress=False))
    (run / "images" / "p000-s0.png").write_bytes(b"changed")
    with pytest.raises(InputError, match="differ from their manifest sha256"):
        score_run(run, ScoreConfig(metrics=("clip_score",), clip=hf_spec, cache=False, progress=False))


def test_world_reference_is_deterministic_and_hashed():
    from t2i_audit.evals.scoring.reference import world_reference

    a, b = world_reference(20, seed=3), world_reference(20, seed=3)
    assert a.hash == b.hash and a.n == 20 and "seed 3" in a.description
    assert world_reference(20, seed=4).hash != a.hash
    assert np.asarray(a.load(0)).shape == (32, 32, 3)


def test_skills_recover_planted_failures(tmp_path):
    """Every 4th image shows a recoloured scene while its expectation names the true colour: the
    oracle must fail exactly those (reason names the colour) and pass the rest."""
    import dataclasses

    from t2i_audit.world.expect import expect_from_scene
    from t2i_audit.world.render import render

    run = make_run(tmp_path / "run", n_prompts=6, per_prompt=4, kind="single")
    man = pd.read_parquet(run / "manifest.parquet")
    from t2i_audit.world.dataset import iter_scenes

    scenes = [s for _, s in iter_scenes(24, 0, kind="single")]
    expects, planted = [], []
    for i, (s, row) in enumerate(zip(scenes, man.itertuples())):
        expects.append(json.dumps(expect_from_scene(s)))
        if i % 4 == 3:
            other = "blue" if s.shapes[0].color != "blue" else "red"
            img = render(dataclasses.replace(s, shapes=(dataclasses.replace(s.shapes[0], color=other),)))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            (run / row.path).write_bytes(buf.getvalue())
            man.loc[i, "sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
        planted.append(i % 4 != 3)
    man["expect"] = expects
    man.to_parquet(run / "manifest.parquet", index=False)
    res = score_run(run, ScoreConfig(metrics=("skills",), reps=300, cache=False, progress=False))
    items = res["items"]
    assert items.value.astype(bool).tolist() == planted
    assert all("ok" != d for d in items.detail[~np.array(planted)])
    agg = res["aggregates_df"].set_index("group")
    assert agg.loc["overall", "value"] == pytest.approx(0.75)
    assert set(agg.index) == {"overall", "category=even", "category=odd"}
    assert res["evaluators"]["oracle"].startswith("pictoworld-oracle/")


def test_world_reference_statistics_are_cached(tmp_path, hf_spec):
    run = make_run(tmp_path / "run", n_prompts=3, per_prompt=2)
    cfg = ScoreConfig(metrics=("fd", "cmmd"), features=hf_spec, clip=hf_spec, reference="world", reference_n=20,
                      dist_reps=4, cache_dir=str(tmp_path / "c"), progress=False)
    first = score_run(run, cfg)
    assert first["reference"]["kind"] == "world" and first["reference"]["n"] == 20
    assert "PictoWorld renders: 20 scenes" in first["methodology"]["fd"]
    cache = EmbeddingCache(tmp_path / "c")
    second = score_run(run, cfg, cache=cache)
    assert second["cache"]["forward_passes"] == 0
    assert [a["value"] for a in second["aggregates"]] == [a["value"] for a in first["aggregates"]]
    assert len(list((tmp_path / "c" / "stats").glob("*.npz"))) == 1  # moments per (reference, extractor)
