"""The HTML report embeds thumbnails, never whole generations, and links the originals.

Stated figures: an image larger than 192 px is embedded as a JPEG whose longest side is at most
192 px (quality 80, lowered, then smaller, to fit 12,000 bytes); a 32 px PictoWorld render is
embedded as its own PNG. A folder run of 1,600 images of 1024x1024 (200 prompts x 8, half pure
noise, half rendered shapes on gradients: 2.5 GB of PNG if written out) gives a report.html under
30 MB -- the figure is printed by the slow test (12.7 MB, 7.9 KB per image, when measured).
"""

import base64
import json
import os
import re
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from t2i_audit.reports.html_images import THUMB_MAX_BYTES, THUMB_SIDE, thumbnail_data_uri
from t2i_audit.reports.report import ReportConfig, render_report

SIDE = 1024


def noise_image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))


def rendered_image(seed: int) -> Image.Image:
    """Shapes on a gradient with mild grain: closer to a generation than noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    c = rng.integers(0, 256, 3)
    base = np.stack([(x * c[0] / SIDE), (y * c[1] / SIDE), ((x + y) * c[2] / (2 * SIDE))], -1)
    im = Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.integers(0, SIDE - 200, 2)
        w, h = rng.integers(60, 400, 2)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x0 + w, y0 + h], fill=fill)
    return im


def folder_run(root: Path, n_prompts: int, per_prompt: int, distinct: int = 16) -> Path:
    """A run directory as `sample` writes it, ``n_prompts x per_prompt`` images of 1024x1024 PNG.
    Only ``distinct`` files are encoded (half noise, half rendered); the rest are hard links to them,
    so the test writes about 25 MB, not 2.5 GB."""
    (root / "images").mkdir(parents=True)
    sources = []
    for k in range(distinct):
        p = root / f"src{k}.png"
        (noise_image(k) if k % 2 else rendered_image(k)).save(p, compress_level=1)
        sources.append(p)
    rows = []
    for p in range(n_prompts):
        for s in range(per_prompt):
            iid = f"p{p:03d}-s{s}"
            dst = root / "images" / f"{iid}.png"
            os.link(sources[(p * per_prompt + s) % distinct], dst)
            rows.append({"prompt_id": f"p{p:03d}", "category": "c", "template": "{x}", "slots": "{}",
                         "text": f"prompt {p}", "tags": [], "expect": None, "seed": s, "image_id": iid,
                         "path": f"images/{iid}.png", "sha256": "0" * 64, "width": SIDE, "height": SIDE,
                         "seconds": 0.0})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    (root / "run.json").write_text(json.dumps({"schema": "t2i-audit/run/1", "run_id": root.name, "status": "complete",
                                               "images_per_prompt": per_prompt,
                                               "suite": {"name": "folder", "version": "1", "hash": "abc"}}))
    return root


def embedded(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    return Image.open(BytesIO(base64.b64decode(data)))


def test_large_images_become_small_jpegs_small_ones_stay(tmp_path):
    big, grain = tmp_path / "noise.png", tmp_path / "rendered.png"
    noise_image(0).save(big)
    rendered_image(1).save(grain)
    for p in (big, grain):
        uri, original = thumbnail_data_uri(p)
        im = embedded(uri)
        assert not original and uri.startswith("data:image/jpeg;base64,") and im.format == "JPEG"
        assert max(im.size) <= THUMB_SIDE and len(base64.b64decode(uri.split(",", 1)[1])) <= THUMB_MAX_BYTES
    assert max(embedded(thumbnail_data_uri(grain)[0]).size) == THUMB_SIDE  # a generation keeps full size
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32), "red").save(small)
    uri, original = thumbnail_data_uri(small)
    assert original and base64.b64decode(uri.split(",", 1)[1]) == small.read_bytes()


def test_grid_links_each_original_by_relative_path(tmp_path):
    run = folder_run(tmp_path / "run", n_prompts=2, per_prompt=2, distinct=2)
    for out in (run / "report", tmp_path / "elsewhere" / "rep"):
        html = render_report(run, out, ReportConfig(formats=("html",))).html.read_text()
        hrefs = re.findall(r'<a href="([^"#][^"]*)"><img src="data:image/jpeg;base64,', html)
        assert len(hrefs) == 4, hrefs
        for h in hrefs:
            assert not re.match(r"^[a-z]+:", h) and not h.startswith("/"), h  # relative, no scheme
            assert (out / unquote(h)).resolve().samefile(run / "images" / Path(h).name)
        assert "data:image/png" not in html.split("id='images'")[1]  # no original embedded


@pytest.mark.slow
def test_report_for_1600_images_of_1024px_stays_under_30_mb(tmp_path, capsys):
    run = folder_run(tmp_path / "run", n_prompts=200, per_prompt=8)
    html = render_report(run, tmp_path / "rep", ReportConfig(formats=("html",))).html
    size = html.stat().st_size
    text = html.read_text()
    assert text.count("data:image/jpeg;base64,") == 1600 and text.count('<a href="../run/images/') == 1600
    with capsys.disabled():
        print(f"\nreport.html for 1,600 images of 1024x1024: {size / 1e6:.1f} MB "
              f"({size / 1600 / 1e3:.1f} KB per image)")
    assert size < 30e6, f"report.html is {size / 1e6:.1f} MB"
