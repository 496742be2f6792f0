"""Run a judge over many (image, question) requests: read the answer cache, send only the misses (each
distinct key once, in chunks, each chunk cached as soon as it is answered, so an interrupted run
resumes), and record what it cost (:class:`JudgeUsage`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from t2i_audit.core.config import ConfigBase
from t2i_audit.errors import InputError
from t2i_audit.evals.judges.base import JudgeAnswer, JudgeRequest
from t2i_audit.evals.judges.cache import AnswerCache, cache_key, judge_settings

CHUNK = 256  # requests handed to judge.answer at once; each chunk is cached when answered


@dataclass
class JudgeUsage(ConfigBase):
    """What one judge call cost. Token counts are None when the server reported none."""

    judge: str
    revision: str
    normalisation: str
    requests: int = 0  # (image, question) pairs asked for
    cache_hits: int = 0  # answered from the cache
    sent: int = 0  # distinct pairs sent to the judge
    http_requests: int = 0  # requests on the wire, retries included (server judges)
    retries: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    wall_s: float = 0.0
    soft_scores_available: bool = True
    warnings: tuple[str, ...] = ()


def _stats(judge) -> dict:
    f = getattr(judge, "stats", None)
    return dict(f()) if callable(f) else {}


def _check(judge, sent: list[JudgeRequest], got) -> list[JudgeAnswer]:
    got = list(got) if got is not None else []
    if len(got) != len(sent):
        raise InputError(f"judge {judge.spec!r} returned {len(got)} answers for {len(sent)} questions")
    for a in got:
        if not isinstance(a, JudgeAnswer):
            raise InputError(f"judge {judge.spec!r} returned {type(a).__name__}, not a JudgeAnswer")
        if not (math.isnan(a.p_yes) or 0.0 <= a.p_yes <= 1.0):
            raise InputError(f"judge {judge.spec!r} returned P(yes) = {a.p_yes!r}, outside [0, 1]")
    return got


def _open(cache) -> tuple[AnswerCache | None, bool]:
    if cache is None or isinstance(cache, AnswerCache):
        return cache, False
    return AnswerCache(Path(cache)), True


def judge_requests(judge, requests: Sequence[JudgeRequest], *, cache: Path | str | AnswerCache | None = None,
                   progress: bool = False, chunk: int | None = None) -> tuple[list[JudgeAnswer], JudgeUsage]:
    """Answers in the order of ``requests`` and the usage record (see the module doc)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    requests = list(requests)
    settings = judge_settings(judge)
    keys = [cache_key(settings, r) for r in requests]
    store, owned = _open(cache)
    before = _stats(judge)
    try:
        have = store.get_many(keys) if store is not None else {}
        hits = sum(k in have for k in keys)
        todo: dict[str, JudgeRequest] = {}
        for k, r in zip(keys, requests):
            if k not in have and k not in todo:
                todo[k] = r
        size = chunk or CHUNK
        items = list(todo.items())
        with tqdm(total=len(items), desc="judge", unit="q", disable=not progress or not items) as bar:
            for i in range(0, len(items), size):
                part = items[i:i + size]
                got = _check(judge, [r for _, r in part], judge.answer([r for _, r in part]))
                new = list(zip([k for k, _ in part], got))
                have.update(new)
                if store is not None:
                    store.put_many(new, judge.spec)
                bar.update(len(part))
    finally:
        if owned:
            store.close()
    answers = [have[k] for k in keys]
    return answers, _usage(judge, answers, hits, len(todo), before, time.perf_counter() - t0)


def _usage(judge, answers, hits: int, sent: int, before: dict, wall: float) -> JudgeUsage:
    after = _stats(judge)
    d = {k: after[k] - before.get(k, 0) for k in after}
    hard = sum(not a.soft for a in answers)
    warnings = []
    if hard and getattr(judge, "wants_soft", False):
        warnings.append(f"soft scores unavailable: judge {judge.spec!r} returned no token probabilities for "
                        f"{hard} of {len(answers)} answers; their P(yes) is 1/0 from the answer text")
    nan = sum(math.isnan(a.p_yes) for a in answers)
    if nan:
        warnings.append(f"judge {judge.spec!r}: {nan} of {len(answers)} answers are neither yes nor no "
                        "(P(yes) NaN)")
    reported = d.get("tokens_reported", 0) > 0
    return JudgeUsage(judge=judge.spec, revision=judge.revision, normalisation=judge.normalisation,
                      requests=len(answers), cache_hits=hits, sent=sent, http_requests=int(d.get("http_requests", 0)),
                      retries=int(d.get("retries", 0)),
                      prompt_tokens=int(d["prompt_tokens"]) if reported else None,
                      completion_tokens=int(d["completion_tokens"]) if reported else None,
                      wall_s=round(wall, 4), soft_scores_available=hard == 0, warnings=tuple(warnings))
