"""Reference folders: the file listing keeps the order (and so the reference hash) that sorting
``Path.rglob`` results gave, and skips what it skipped."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i_audit.errors import InputError
from t2i_audit.evals.scoring.reference import IMAGE_SUFFIXES, folder_reference, image_files


def test_image_files_matches_sorted_rglob(tmp_path):
    names = ["a-b.png", "a/b.png", "a/c/z.PNG", "B.jpg", ".hidden.png", "x.txt", ".h/q.png", "a b.webp",
             "a/.d.jpeg", "z/y/x/w.webp"]
    for rel in names:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode())
    os.symlink(tmp_path / "a", tmp_path / "link")  # a directory link is not followed
    old = sorted(p for p in tmp_path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    got = image_files(tmp_path)
    assert [Path(p) for p in got] == old
    assert "a-b.png" in {Path(p).name for p in got} and not any("link" in p for p in got)


def test_folder_reference_keys_are_file_hashes_in_order(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.png", "sub/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / name)
    ref = folder_reference(tmp_path)
    order = ["a.png", "b.png", "sub/c.png"]
    assert ref.keys == [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in order]
    assert np.array_equal(np.asarray(ref.load(2)), np.asarray(Image.open(tmp_path / "sub/c.png").convert("RGB")))


def test_folder_reference_unreadable_file_is_an_input_error(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    os.symlink(tmp_path / "gone.png", tmp_path / "c.png")  # a dangling link
    with pytest.raises(InputError, match="cannot read .*c.png"):
        folder_reference(tmp_path)
