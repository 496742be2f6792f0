"""The package layout the README describes, checked from the source (AST, no imports):

- no import cycle between modules (module-level and function-level imports both count; imports under
  ``if TYPE_CHECKING:`` do not, they never run);
- layers point one way: ``errors``/``core`` < ``stats`` < ``world`` < ``generator`` < ``evals`` <
  ``audits`` < ``reports`` < ``commands``/``cli``/``job``; ``world`` and ``generator`` import nothing
  above them, ``evals`` reaches a generator only through its adapters;
- ``reports`` and ``stats`` import no torch, directly or through a module they import;
- no module over 400 lines, no function over 80 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "t2i_audit"
LAYER = {"errors": 0, "core": 0, "stats": 1, "world": 2, "generator": 3, "evals": 4, "audits": 5,
         "reports": 6, "commands": 7, "cli": 7, "job": 7, "__main__": 8, "__init__": 0}
TORCH_LIKE = ("torch", "torchvision", "open_clip", "diffusers", "transformers", "accelerate", "torchmetrics")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PKG).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> tuple[set[str], set[str]]:
    """(t2i_audit modules imported, top-level external packages imported)."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    inner, outer = set(), set()
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: not an import at run time
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            if t == PKG or t.startswith(PKG + "."):
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                inner.add(t)
            else:
                outer.add(t.split(".")[0])
    inner.discard(name)
    return inner, outer


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, m, known) for m, p in mods.items()}


def layer(mod: str) -> int:
    part = mod.split(".")[1] if "." in mod else "__init__"
    return LAYER[part]


def test_every_subpackage_has_a_layer(graph):
    unknown = {m.split(".")[1] for m in graph if "." in m and m.split(".")[1] not in LAYER}
    assert not unknown, f"add these to LAYER (and the README's layout section): {unknown}"


def test_no_import_cycles(graph):
    index, low, stack, on, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v][0]:
            if w not in graph or w == PKG:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not sccs, f"import cycles: {sccs}"


def test_imports_point_down(graph):
    bad = [(m, w) for m, (inner, _) in graph.items() for w in inner
           if w != PKG and layer(w) > layer(m)]
    assert not bad, f"imports pointing up a layer: {bad}"


def test_evals_reach_generators_only_through_adapters(graph):
    bad = [(m, w) for m, (inner, _) in graph.items() if m.startswith(f"{PKG}.evals.")
           and not m.startswith(f"{PKG}.evals.adapters") for w in inner if w.startswith(f"{PKG}.generator")]
    assert not bad, f"evals modules importing the generator outside evals.adapters: {bad}"


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen or m not in graph:
            continue
        seen.add(m)
        todo.extend(graph[m][0])
    return seen


@pytest.mark.parametrize("package", ["reports", "stats"])
def test_torch_free_packages(graph, package):
    roots = [m for m in graph if m == f"{PKG}.{package}" or m.startswith(f"{PKG}.{package}.")]
    bad = {(m, e) for r in roots for m in reachable(graph, r) for e in graph[m][1] if e in TORCH_LIKE}
    assert not bad, f"{package} reaches torch-like packages: {sorted(bad)}"
    code = (f"import sys, pkgutil, importlib, {PKG}.{package} as p\n"
            f"[importlib.import_module(m.name) for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {TORCH_LIKE!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_size_limits():
    too_long = []
    for m, p in modules().items():
        text = p.read_text()
        if text.count("\n") > 400:
            too_long.append(f"module {m}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    too_long.append(f"function {m}.{node.name}: {n} lines")
    assert not too_long, "over the limits (module 400, function 80 lines):\n" + "\n".join(too_long)


RUN_FILES = {"run.json": "RUN_JSON", "manifest.parquet": "MANIFEST"}
READ_CALLS = {"read_parquet", "read_text", "read_bytes", "loads", "load", "open", "read_user_text", "read_table",
              "read_json", "read_csv", "ParquetFile"}
# core.rundir is the one run reader; a PictoWorld data set (world render) has its own manifest, read
# where it is written.
RUN_READER_HOMES = {"t2i_audit.core.rundir", "t2i_audit.world.dataset"}


def run_file_reads(tree: ast.AST) -> list[int]:
    """Lines that read a run's run.json or manifest themselves: a read call (read_parquet,
    json.loads, read_text, open, ...) whose arguments or receiver name the file -- literally
    (``d / "run.json"``), as ``RUN_JSON``/``MANIFEST``, or through a variable assigned such a path."""
    paths = set(RUN_FILES.values())
    for node in ast.walk(tree):  # run_json = run_dir / "run.json" -> run_json names the file
        if isinstance(node, ast.Assign) and any(isinstance(n, ast.Constant) and n.value in RUN_FILES
                                                or isinstance(n, ast.Name) and n.id in RUN_FILES.values()
                                                for n in ast.walk(node.value)):
            paths |= {t.id for t in node.targets if isinstance(t, ast.Name)}

    def names_file(node):
        return any(isinstance(n, ast.Constant) and n.value in RUN_FILES or isinstance(n, ast.Name) and n.id in paths
                   for n in ast.walk(node))

    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            receiver = [node.func.value] if isinstance(node.func, ast.Attribute) else []
            if fn in READ_CALLS and any(names_file(a) for a in [*node.args, *receiver]):
                lines.add(node.lineno)
    return sorted(lines)


def test_one_run_reader():
    """No module but core.rundir reads run.json or manifest.parquet: scoring, audits, reports and
    commands all go through ``core.rundir.read_run`` (one contract for columns and versions)."""
    found = [f"{m}:{ln}" for m, p in modules().items() if m not in RUN_READER_HOMES
             for ln in run_file_reads(ast.parse(p.read_text()))]
    assert not found, "reads a run's files outside core.rundir (use read_run / read_run_json):\n" + "\n".join(found)
    assert run_file_reads(ast.parse((SRC / PKG / "core" / "rundir.py").read_text())), "core.rundir lost the reader"


@pytest.mark.parametrize("code,lines", [
    ("import pandas as pd\ndf = pd.read_parquet(run / 'manifest.parquet')\n", [2]),
    ("import json\nmeta = json.loads((d / RUN_JSON).read_text())\n", [2]),
    ("p = os.path.join(d, 'run.json')\nif p.is_file():\n    meta = json.load(open(p))\n", [3]),
    ("rj = d / 'run.json'\nif not rj.is_file():\n    raise InputError(f'{rj}: no run.json')\n", []),
])
def test_the_run_reader_check_sees_a_planted_copy(code, lines):
    """The check is live: a planted second reader is found; an existence check or a message is not."""
    assert run_file_reads(ast.parse(code)) == lines
