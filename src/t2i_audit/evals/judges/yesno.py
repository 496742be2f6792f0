"""Shared by the VLM judges: the prompt sent with each question, and P(yes) from first-token
probabilities or from the answer text.

Prompt: ``PROMPT_TEMPLATE.format(question=...)``, followed by ``YES_NO_SUFFIX`` unless the question
already asks for yes or no (VQAScore's ``... Please answer yes or no.``). Both strings are part of
a judge's recorded prompt, hence of the answer-cache key.

P(yes) from the first answer token: the probabilities of every surface variant of "yes" ("yes",
"Yes", " yes", "YES", "▁Yes", "Ġyes", "yes." ...) are summed, likewise "no"; then

- ``yes_vs_no`` (default): P(yes) / (P(yes) + P(no)), NaN when neither appears;
- ``vqascore``: P(yes) unnormalised, the first-token probability of "yes" over the whole
  vocabulary (Lin et al. 2024). Through an API only the ``top_logprobs`` are seen; a "yes" outside
  them counts 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.evals.judges.base import NORMALISATIONS

PROMPT_TEMPLATE = "{question}"
YES_NO_SUFFIX = " Please answer yes or no."
_STRIP = " \t\n\r\u2581\u0120\u010a.,!:;\"'`*"  # whitespace, sentencepiece/BPE space marks, punctuation


def check_normalisation(name: str, where: str) -> str:
    if name not in NORMALISATIONS:
        raise InputError(f"{where}: unknown P(yes) normalisation {name!r}{did_you_mean(name, NORMALISATIONS)}; "
                         f"use one of {', '.join(NORMALISATIONS)}")
    return name


def render_prompt(question: str, template: str = PROMPT_TEMPLATE) -> str:
    """The text sent with the image: the template filled, plus the yes/no instruction if missing."""
    text = template.format(question=question.strip())
    return text if "yes or no" in text.lower() else text + YES_NO_SUFFIX


def surface(token: str) -> str:
    """'yes' for '▁Yes', ' YES', 'Ġyes', 'yes.'; other tokens lower-cased and stripped likewise."""
    return token.strip(_STRIP).lower()


def p_yes_from_top(top: Iterable[tuple[str, float]], normalisation: str) -> float:
    """P(yes) from (token, logprob) pairs of the first answer token (see the module doc)."""
    py = pn = 0.0
    for tok, lp in top:
        s = surface(tok)
        if s == "yes":
            py += math.exp(lp)
        elif s == "no":
            pn += math.exp(lp)
    if normalisation == "vqascore":
        return min(1.0, py)
    return py / (py + pn) if py + pn > 0 else float("nan")


def p_yes_from_text(text: str) -> float:
    """1 for an answer starting with yes, 0 with no, NaN otherwise (text only: not soft)."""
    words = text.strip().split()
    first = surface(words[0]) if words else ""
    return 1.0 if first == "yes" else 0.0 if first == "no" else float("nan")
