"""track: a planted regression among checkpoints is flagged; the HTML renders in headless Chromium."""

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from system_tools import require_tool
from t2i_audit.cli import main

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def chain(tmp_path):
    """Four checkpoints of one run; step 3000's CLIP score dropped by 3 points (its interval moved too)."""
    dirs = []
    for step, drop in ((1000, 0.0), (2000, -0.1), (3000, 3.0), (4000, 0.05)):
        d = tmp_path / f"ckpt-{step}"
        shutil.copytree(FIX / "run_a", d)
        agg = pd.read_parquet(d / "scores/aggregates.parquet")
        agg.loc[agg["metric"] == "clip_score", ["value", "ci_low", "ci_high"]] -= drop
        agg.to_parquet(d / "scores/aggregates.parquet")
        dirs.append(d)
    return dirs


def test_track_flags_the_planted_regression(chain, tmp_path):
    r = CliRunner().invoke(main, ["track", *map(str, chain[::-1]), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "out/track.csv")
    clip = df[df["key"] == "clip_score"].reset_index(drop=True)
    assert clip["x"].tolist() == [1000, 2000, 3000, 4000]  # ordered by step
    assert clip["regression_vs_prev"].tolist() == [False, False, True, False]
    assert clip["regression_vs_best"].tolist() == [False, False, True, False]
    assert clip.loc[clip["best"], "x"].tolist() == [2000]
    assert "REGRESSION at" in r.output and "(3000)" in r.output
    assert pd.read_parquet(tmp_path / "out/track.parquet").shape[0] == len(df)
    assert "**regression vs previous**" in (tmp_path / "out/track.md").read_text()


def test_track_refuses_another_suite(chain, tmp_path):
    import json

    rj = chain[1] / "run.json"
    meta = json.loads(rj.read_text())
    meta["suite"]["hash"] = "0ther"
    rj.write_text(json.dumps(meta))
    r = CliRunner().invoke(main, ["track", *map(str, chain), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "one suite" in r.output


def test_track_html_in_headless_chromium(chain, tmp_path):
    exe = require_tool("chromium", "chromium-browser", "google-chrome", env="T2I_AUDIT_CHROMIUM",
                       install="apt-get install -y chromium")
    CliRunner().invoke(main, ["track", *map(str, chain), "--out", str(tmp_path / "out")])
    page = tmp_path / "out/track.html"
    shot = tmp_path / "shot.png"
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1600",
                          f"--screenshot={shot}", "--enable-logging=stderr", "--v=0", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [ln for ln in out.stderr.splitlines() if ":CONSOLE" in ln] == []
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.std() > 10 and (img < 200).mean() > 0.01, "blank screenshot"
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p2'}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    assert dom.count("<img") == 5 and "regression vs previous" in dom
