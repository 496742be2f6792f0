"""Each shared thing has one home; a copy appearing elsewhere in src/ or bench/ fails here (grep-based).

Homes: atomic writes in ``core/io.py``; the Wilson interval in ``stats/resampling.py``; spelling
suggestions in ``errors.py``; bootstraps and McNemar in ``stats/``; thread and denormal settings in
``core/threads.py``; one class per ``Estimate`` meaning. No source file names a machine path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "t2i_audit"

# (what, regex on code lines, files allowed to match, relative to src/t2i_audit)
RULES = [
    ("atomic write (temp file + rename)", r"os\.replace\(|mkstemp\(|[\"']\.tmp-", {"core/io.py"}),
    ("Wilson interval", r"def \w*wilson\w*\(|z \* z / \(4 \* n|q \* q / \(4 \* n",
     {"stats/resampling.py", "stats/clusters.py"}),
    ("did-you-mean", r"get_close_matches|import difflib|from difflib", {"errors.py"}),
    ("bootstrap", r"def \w*bootstrap\w*\(", {"stats/resampling.py", "stats/proportions.py"}),
    ("McNemar", r"def \w*mcnemar\w*\(", {"stats/proportions.py"}),
    ("thread settings", r"set_num_threads\(|set_flush_denormal\(", {"core/threads.py"}),
    ("a class named plain Estimate", r"^class Estimate\b", set()),
    ("run-directory schema version (core.rundir.RUN_SCHEMA)", r"[\"']t2i-audit/run/", {"core/rundir.py"}),
]


def _code_lines(path: Path):
    """Lines outside docstrings and comments (a docstring may describe what it does not do)."""
    in_doc = False
    for i, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        quotes = s.count('"""') + s.count("'''")
        if in_doc:
            in_doc = quotes % 2 == 0
            continue
        if s.startswith(('"""', "'''")):
            in_doc = quotes % 2 == 1
            continue
        if not s.startswith("#"):
            yield i, line.split("  #")[0]


def _sources():
    for p in sorted(PKG.rglob("*.py")):
        yield p.relative_to(PKG).as_posix(), p
    for p in sorted((ROOT / "bench").rglob("*.py")):
        yield "../../bench/" + p.relative_to(ROOT / "bench").as_posix(), p


@pytest.mark.parametrize("what,pattern,home", RULES, ids=[r[0] for r in RULES])
def test_one_home(what, pattern, home):
    rx = re.compile(pattern)
    found = [f"{rel}:{i}: {line.strip()}" for rel, p in _sources() if rel not in home
             for i, line in _code_lines(p) if rx.search(line)]
    assert not found, f"{what} outside its home {sorted(home)}:\n" + "\n".join(found)
    for rel in home:
        assert any(rx.search(line) for _, line in _code_lines(PKG / rel)), f"{what}: home {rel} lost it"


def test_the_grep_sees_a_planted_copy(tmp_path, monkeypatch):
    """The check is live: a Wilson copy planted in another module is reported."""
    fake = tmp_path / "t2i_audit"
    (fake / "stats").mkdir(parents=True)
    (fake / "stats" / "resampling.py").write_text("def wilson_interval(k, n):\n    pass\n")
    (fake / "world.py").write_text('"""def wilson( in a docstring is fine."""\n\ndef wilson(k, n):\n    pass\n')
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    with pytest.raises(AssertionError, match=r"world\.py:3: def wilson"):
        test_one_home(*RULES[1])


def test_no_machine_paths():
    rx = re.compile(r"[\"'](/work/|/home/|/Users/|/mnt/|/scratch/)")
    found = [f"{rel}:{i}" for rel, p in _sources() for i, line in enumerate(p.read_text().splitlines(), 1)
             if rx.search(line) or re.search(r"default /work/|/work/ckpt", line)]
    assert not found, "machine paths in source (take them as arguments):\n" + "\n".join(found)


def test_license_present():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()


# -- one home of cluster draws, checked on call sites (AST), not on function names ----------------

DRAW_METHODS = {"integers", "multinomial", "choice", "permutation", "permuted"}
CLUSTER_HOME = "stats/clusters.py"
SIMULATORS = ("generator/", "world/", "evals/suites/", "evals/alignment/synth.py")  # draw worlds, not resamples


def resampling_draws(source: str) -> list[int]:
    """Line numbers of random draws that build a resampling matrix: a Generator method of
    ``DRAW_METHODS`` called with ``size=`` a tuple of two or more (replicates x clusters), or a
    multinomial with any ``size=`` (counts per replicate)."""
    import ast

    hits = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in DRAW_METHODS):
            continue
        size = next((k.value for k in node.keywords if k.arg == "size"), None)
        if size is None and node.func.attr in ("integers", "choice") and len(node.args) >= 3:
            size = node.args[2]
        if isinstance(size, ast.Tuple) and len(size.elts) >= 2:
            hits.append(node.lineno)
        elif node.func.attr == "multinomial" and size is not None:
            hits.append(node.lineno)
    return sorted(hits)


def test_one_home_of_cluster_draws():
    """No module but stats/clusters.py draws a (replicates x clusters) resample: every estimator
    calls it. Found by the call sites' shape, whatever the functions are named."""
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel == CLUSTER_HOME or rel.startswith(SIMULATORS):
            continue
        lines = resampling_draws(path.read_text())
        if lines:
            found[rel] = lines
    assert not found, f"cluster/bootstrap draws outside {CLUSTER_HOME}: {found}"
    assert resampling_draws((PKG / CLUSTER_HOME).read_text()), "the home itself must draw"


def test_the_ast_check_sees_an_inline_draw():
    inline = ("import numpy as np\nrng = np.random.default_rng(0)\n"
              "counts = np.zeros((B, P))\n"
              "np.add.at(counts, (np.repeat(np.arange(B), P), rng.integers(0, P, size=(B, P)).ravel()), 1)\n"
              "d = rng.multinomial(k, np.full(k, 1 / k), size=n_boot)\n")
    assert resampling_draws(inline) == [4, 5]
    assert resampling_draws("x = rng.integers(0, 10)\ny = rng.choice(idx, cap, replace=False)\n") == []
