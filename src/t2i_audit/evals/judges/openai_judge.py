"""``openai:BASE_URL#MODEL``: any OpenAI-compatible chat-completions server (vLLM, SGLang, a hosted
API) as a judge, through the ``openai`` client (``pip install 't2i-audit[judges]'``).

Each (image, question) is one request: the image as a base64 data URL, the prompt
(``yesno.render_prompt``), ``max_tokens=1``, ``temperature=0``, ``logprobs=True``,
``top_logprobs=20``. P(yes) comes from the first answer token's ``top_logprobs``
(``yesno.p_yes_from_top``); a server that returns no logprobs is answered from the text (soft=False).
Requests run concurrently (``concurrency`` threads); 429, 5xx, connection errors and timeouts are
retried with exponential backoff (``backoff_s`` doubling, or the server's Retry-After, capped at
30 s); after ``max_retries`` retries the call fails with one line (InputError, exit 2). Any other
4xx fails at once. The key is read from ``OPENAI_API_KEY`` (default ``EMPTY`` for local servers).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import openai

from t2i_audit.core.config import ConfigBase
from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.evals.judges.base import JudgeAnswer, JudgeRequest
from t2i_audit.evals.judges.yesno import (
    PROMPT_TEMPLATE,
    YES_NO_SUFFIX,
    check_normalisation,
    p_yes_from_text,
    p_yes_from_top,
    render_prompt,
)

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}
MAX_BACKOFF_S = 30.0


@dataclass
class OpenAIJudgeConfig(ConfigBase):
    """Settings of an ``openai:`` judge; every field is also a ``load_judge`` option."""

    base_url: str
    model: str
    normalisation: str = "yes_vs_no"
    prompt_template: str = PROMPT_TEMPLATE
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 0.5
    top_logprobs: int = 20
    revision: str = ""


def parse_spec(spec: str, options: dict) -> OpenAIJudgeConfig:
    rest = spec.partition(":")[2]
    url, sep, model = rest.rpartition("#")
    if not sep or not url or not model:
        raise InputError(f"judge {spec!r}: write openai:BASE_URL#MODEL, e.g. openai:http://127.0.0.1:8000/v1#my-vlm")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"judge {spec!r}: the base URL {url!r} must start with http:// or https://")
    fields = set(OpenAIJudgeConfig.__dataclass_fields__) - {"base_url", "model"}
    bad = sorted(set(options) - fields)
    if bad:
        raise InputError(f"judge {spec!r}: unknown option {bad[0]!r}{did_you_mean(bad[0], fields)}; "
                         f"options: {', '.join(sorted(fields))}")
    cfg = OpenAIJudgeConfig.from_dict({"base_url": url, "model": model, **options}, f"judge {spec!r}")
    check_normalisation(cfg.normalisation, f"judge {spec!r}")
    if cfg.concurrency < 1 or cfg.timeout_s <= 0 or cfg.max_retries < 0 or not 1 <= cfg.top_logprobs <= 20:
        raise InputError(f"judge {spec!r}: concurrency >= 1, timeout_s > 0, max_retries >= 0 and "
                         "1 <= top_logprobs <= 20 are required")
    return cfg


def data_url(path) -> str:
    from pathlib import Path

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read the image ({e.strerror})") from None
    return f"data:{MIME.get(p.suffix.lower(), 'image/png')};base64,{base64.b64encode(raw).decode('ascii')}"


class OpenAIJudge:
    """A judge served over OpenAI-compatible chat completions (see the module doc)."""

    wants_soft = True

    def __init__(self, spec: str, cfg: OpenAIJudgeConfig):
        self.spec, self.cfg = spec, cfg
        self.revision = cfg.revision
        self.normalisation = cfg.normalisation
        self.prompt_template = cfg.prompt_template + "|suffix:" + YES_NO_SUFFIX
        self.decoding = {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": cfg.top_logprobs}
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                     max_retries=0, timeout=cfg.timeout_s)
        self._lock = threading.Lock()
        self._stats = {"http_requests": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0,
                       "tokens_reported": 0}

    def stats(self) -> dict:
        with self._lock:
            return dict(self._stats)

    def _count(self, **inc) -> None:
        with self._lock:
            for k, v in inc.items():
                self._stats[k] += v

    def answer(self, requests: Sequence[JudgeRequest]) -> list[JudgeAnswer]:
        requests = list(requests)
        urls: dict[str, str] = {}
        for r in requests:
            if r.image_sha256 not in urls:
                urls[r.image_sha256] = data_url(r.image_path)
        if self.cfg.concurrency == 1:
            return [self._ask(r, urls[r.image_sha256]) for r in requests]
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="judge")
        futures = [pool.submit(self._ask, r, urls[r.image_sha256]) for r in requests]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        pool.shutdown(wait=failed is None, cancel_futures=True)
        if failed is not None:
            raise failed.exception()
        return [f.result() for f in futures]

    def _ask(self, req: JudgeRequest, url: str) -> JudgeAnswer:
        messages = [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": render_prompt(req.question, self.cfg.prompt_template)}]}]
        resp = self._create(messages)
        choice = resp.choices[0]
        text = (choice.message.content or "").strip() if choice.message else ""
        u = getattr(resp, "usage", None)
        if u is not None and u.prompt_tokens is not None:
            self._count(prompt_tokens=int(u.prompt_tokens), completion_tokens=int(u.completion_tokens or 0),
                        tokens_reported=1)
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            first = content[0]
            top = [(t.token, t.logprob) for t in (first.top_logprobs or [])] or [(first.token, first.logprob)]
            return JudgeAnswer(p_yes_from_top(top, self.normalisation), text or first.token, True)
        return JudgeAnswer(p_yes_from_text(text), text, False)

    def _create(self, messages):
        oa, cfg = openai, self.cfg
        for attempt in range(cfg.max_retries + 1):
            self._count(http_requests=1, retries=1 if attempt else 0)
            try:
                return self._client.chat.completions.create(
                    model=cfg.model, messages=messages, max_tokens=1, temperature=0, logprobs=True,
                    top_logprobs=cfg.top_logprobs)
            except (oa.RateLimitError, oa.InternalServerError, oa.APIConnectionError) as e:
                err = e
                wait_s = cfg.backoff_s * 2 ** attempt
                after = getattr(getattr(e, "response", None), "headers", {}).get("retry-after")
                if after:
                    try:
                        wait_s = max(wait_s, float(after))
                    except ValueError:
                        pass
                if attempt < cfg.max_retries:
                    time.sleep(min(wait_s, MAX_BACKOFF_S))
            except oa.APIStatusError as e:
                raise InputError(f"judge {self.spec!r}: the server refused the request (HTTP {e.status_code}: "
                                 f"{_short(e)}); check the model name and that it accepts images") from None
        what = ("no answer within the timeout" if isinstance(err, oa.APITimeoutError) else
                f"HTTP {err.status_code}" if isinstance(err, oa.APIStatusError) else "connection failed")
        raise InputError(f"judge {self.spec!r}: {what} after {cfg.max_retries + 1} tries "
                         f"(timeout {cfg.timeout_s:g} s each); check the server, or raise timeout_s / max_retries")


def _short(e) -> str:
    msg = getattr(e, "message", None) or str(e)
    return " ".join(str(msg).split())[:160]


def make_openai_judge(spec: str, options: dict) -> OpenAIJudge:
    """``openai:BASE_URL#MODEL``; options: the fields of :class:`OpenAIJudgeConfig`."""
    return OpenAIJudge(spec, parse_spec(spec, options))
