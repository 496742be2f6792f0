"""README code blocks run: every ```python block compiles and its imports resolve (fast), and each
block runs to the end in a temporary working directory (slow: the current quick-start samples a
whole suite). Works on any README: blocks are read from the file at test time."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, source) of each ```python block of a markdown text."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks(README.read_text()) if README.is_file() else []
IDS = [f"README.md:{line}" for line, _ in BLOCKS]


def test_block_extraction():
    md = "text\n```python\nx = 1\n```\n```bash\nls\n```\n\n```python\ny = 2\n```\n"
    assert python_blocks(md) == [(3, "x = 1\n"), (10, "y = 2\n")]


@pytest.mark.parametrize("line,src", BLOCKS, ids=IDS)
def test_block_compiles_and_imports_resolve(line, src):
    tree = ast.parse(src, filename=f"README.md:{line}")
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    code = compile(ast.Module(body=imports, type_ignores=[]), f"README.md:{line}", "exec")
    exec(code, {"__name__": "readme"})


@pytest.mark.slow
@pytest.mark.parametrize("line,src", BLOCKS, ids=IDS)
def test_block_runs(line, src, tmp_path):
    import torch

    torch.set_num_threads(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(src, f"README.md:{line}", "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
