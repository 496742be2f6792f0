"""The judge protocol: a batch of (image, yes/no question) -> P(yes), the answer text, and whether
P(yes) came from token probabilities (soft) or from the text alone.

A judge is named by a spec string ``PREFIX:REST`` (``openai:URL#MODEL``, ``hf:DIR``,
``python:module:callable``, ``oracle``, ``bundled``); :func:`load_judge` dispatches on the prefix
through a lazy registry (``"module:function"`` strings), so loading one judge never imports the
others' heavy dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from t2i_audit.errors import InputError, did_you_mean

NORMALISATIONS = ("yes_vs_no", "vqascore")


@dataclass(frozen=True)
class JudgeRequest:
    """One question about one image. ``spec`` is the structured form for judges that read it."""

    image_path: Path
    image_sha256: str
    question: str
    spec: dict | None = None


@dataclass(frozen=True)
class JudgeAnswer:
    """P(yes) in [0, 1] (NaN when unavailable), the answer text, and whether P(yes) is soft."""

    p_yes: float
    text: str
    soft: bool


@runtime_checkable
class Judge(Protocol):
    spec: str
    revision: str
    normalisation: str  # "yes_vs_no": P(yes)/(P(yes)+P(no)); "vqascore": unnormalised P(yes)

    def answer(self, requests: Sequence[JudgeRequest]) -> list[JudgeAnswer]: ...


JudgeFactory = Callable[[str, dict], Judge]

_REGISTRY: dict[str, str | JudgeFactory] = {
    "oracle": "t2i_audit.evals.alignment.oracle_judge:make_oracle_judge",
    "bundled": "t2i_audit.evals.alignment.bundled_judge:make_bundled_judge",
    "openai": "t2i_audit.evals.judges.openai_judge:make_openai_judge",
    "hf": "t2i_audit.evals.judges.hf_judge:make_hf_judge",
    "python": "t2i_audit.evals.judges.python_judge:make_python_judge",
}


def register_judge(prefix: str, factory: str | JudgeFactory) -> None:
    """Register a judge factory (a callable or a lazy ``"module:function"`` string) for a prefix."""
    _REGISTRY[prefix] = factory


def judge_prefixes() -> list[str]:
    return sorted(_REGISTRY)


def load_judge(spec: str, **options) -> Judge:
    """Build the judge a spec names; an unknown prefix is an input error with a did-you-mean."""
    prefix = spec.split(":", 1)[0].strip()
    if prefix not in _REGISTRY:
        raise InputError(f"unknown judge {spec!r}: the prefix must be one of "
                         f"{', '.join(judge_prefixes())}{did_you_mean(prefix, judge_prefixes())}")
    factory = _REGISTRY[prefix]
    if isinstance(factory, str):
        module, func = factory.split(":")
        try:
            factory = getattr(importlib.import_module(module), func)
        except ImportError as e:
            raise InputError(f"judge {spec!r} needs an optional dependency that is not installed ({e}); "
                             "pip install 't2i-audit[judges]'") from None
    return factory(spec, dict(options))
