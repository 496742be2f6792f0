"""CLI round trips: world render -> check, sheet, stats, and the bad-bias-spec error path."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner
from PIL import Image

from t2i_audit.cli import main


def test_render_then_check_prints_accuracy_and_writes_json(tmp_path):
    r = CliRunner().invoke(main, ["world", "render", "--n", "40", "--out", str(tmp_path / "ds"), "--seed", "9"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "c.json"
    r = CliRunner().invoke(main, ["world", "check", str(tmp_path / "ds"), "--corrupt", "blur:0.7",
                                  "--json", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    m = re.search(r"^color\s+([\d.]+)%", r.output, re.M)
    assert m and float(m.group(1)) >= 95.0
    assert "oracle on 40 images: blur:0.7" in r.output
    res = json.loads(out.read_text())
    assert set(res["tables"]) == {"clean", "blur:0.7"}
    kind = next(row for row in res["tables"]["clean"] if row["attribute"] == "kind")
    assert kind["n"] == 40 and kind["accuracy"] >= 0.95


def test_check_errors_are_one_line_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["world", "check", str(tmp_path)])
    assert r.exit_code == 2 and "no manifest.parquet" in r.output
    r = CliRunner().invoke(main, ["world", "check", str(tmp_path), "--corrupt", "sharpen:2"])
    assert r.exit_code == 2 and "noise:SIGMA" in r.output


def test_sheet_writes_a_png(tmp_path):
    out = tmp_path / "sheet.png"
    r = CliRunner().invoke(main, ["world", "sheet", "--out", str(out), "--n", "6", "--cols", "3"])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 3 * 64


def test_stats_within_loose_tolerance_on_small_n(tmp_path):
    out = tmp_path / "s.json"
    r = CliRunner().invoke(main, ["world", "stats", "--n", "2000", "--tolerance", "8", "--json", str(out),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "all within ±8 pp" in r.output
    res = json.loads(out.read_text())
    assert len(res["rows"]) == 5 * (2 + 3)
    ff = next(x for x in res["rows"] if x["profession"] == "firefighter" and x["class"] == "man")
    assert abs(ff["spec"] - 0.85) < 1e-9 and ff["ci_low"] <= 0.85 <= ff["ci_high"] + 0.02


def test_stats_detects_a_different_spec(tmp_path):
    spec = tmp_path / "flat.yaml"
    profs = ["firefighter", "chef", "police officer", "construction worker", "doctor"]
    spec.write_text("professions:\n" + "".join(
        f"  {p}:\n    presentation: {{man: 0.5, woman: 0.5}}\n    skin: {{light: 0.4, medium: 0.3, dark: 0.3}}\n"
        for p in profs))
    res = tmp_path / "flat.json"
    r = CliRunner().invoke(main, ["world", "stats", "--n", "1500", "--bias-spec", str(spec), "--json", str(res),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = json.loads(res.read_text())["rows"]
    ff = next(x for x in rows if x["profession"] == "firefighter" and x["class"] == "man")
    assert abs(ff["rendered"] - 0.5) < 0.1  # the flat spec is what gets rendered, not the default


def test_bad_bias_spec_exit_2_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("professions:\n  firefigher:\n    presentation: {man: 1.0, woman: 0.0}\n")
    for cmd in (["world", "render", "--n", "2", "--out", str(tmp_path / "o")], ["world", "stats", "--n", "5"]):
        r = CliRunner().invoke(main, [*cmd, "--bias-spec", str(bad)])
        assert r.exit_code == 2, r.output
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert len(lines) == 1 and "did you mean 'firefighter'" in lines[0]
        assert "Traceback" not in r.output
