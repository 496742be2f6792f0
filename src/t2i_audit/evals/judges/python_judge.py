"""``python:MODULE:CALLABLE``: a judge written in Python.

``CALLABLE`` is a function taking ``list[JudgeRequest]`` and returning ``list[JudgeAnswer]`` or a list
of floats (P(yes), taken as soft answers), or an object with such an ``answer`` method. The module
is imported by name (the working directory is searched too). Options: ``normalisation`` (what the
callable's P(yes) means; default ``yes_vs_no``) and ``revision`` (default: the sha256 of the module's
source file, so editing the judge invalidates its cached answers).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import os
import sys
from collections.abc import Sequence

from t2i_audit.errors import InputError
from t2i_audit.evals.judges.base import JudgeAnswer, JudgeRequest
from t2i_audit.evals.judges.yesno import check_normalisation


def _import(module: str, spec: str):
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise InputError(f"judge {spec!r}: cannot import {module!r} ({e}); put it on PYTHONPATH or in the "
                         "working directory") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _source_hash(mod) -> str:
    try:
        path = inspect.getsourcefile(mod)
        return "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()[:16] if path else ""
    except (TypeError, OSError):
        return ""


class PythonJudge:
    def __init__(self, spec: str, fn, revision: str, normalisation: str):
        self.spec, self._fn, self.revision, self.normalisation = spec, fn, revision, normalisation

    def answer(self, requests: Sequence[JudgeRequest]) -> list[JudgeAnswer]:
        requests = list(requests)
        got = list(self._fn(requests))
        if len(got) != len(requests):
            raise InputError(f"judge {self.spec!r} returned {len(got)} answers for {len(requests)} questions")
        return [a if isinstance(a, JudgeAnswer) else self._from_float(a) for a in got]

    def _from_float(self, p) -> JudgeAnswer:
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise InputError(f"judge {self.spec!r} returned {type(p).__name__}; return JudgeAnswer objects or "
                             "floats (P(yes))") from None
        text = "" if math.isnan(p) else "yes" if p >= 0.5 else "no"
        return JudgeAnswer(p, text, True)


def make_python_judge(spec: str, options: dict) -> PythonJudge:
    rest = spec.partition(":")[2]
    module, _, name = rest.rpartition(":")
    if not module or not name:
        raise InputError(f"judge {spec!r}: write python:MODULE:CALLABLE, e.g. python:my_judges:answer")
    opts = dict(options)
    normalisation = check_normalisation(str(opts.pop("normalisation", "yes_vs_no")), f"judge {spec!r}")
    revision = opts.pop("revision", None)
    if opts:
        raise InputError(f"judge {spec!r}: unknown option(s) {', '.join(sorted(opts))}; a python judge takes "
                         "normalisation and revision")
    mod = _import(module, spec)
    obj = getattr(mod, name, None)
    if obj is None:
        raise InputError(f"judge {spec!r}: module {module!r} has no attribute {name!r}")
    fn = getattr(obj, "answer", obj)
    if not callable(fn):
        raise InputError(f"judge {spec!r}: {module}.{name} is not callable")
    rev = revision if revision is not None else str(getattr(obj, "revision", "") or _source_hash(mod))
    return PythonJudge(spec, fn, rev, normalisation)
