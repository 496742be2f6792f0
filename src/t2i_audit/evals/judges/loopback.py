"""A loopback OpenAI-compatible chat-completions server for tests and benches (stdlib only).

``JudgeServer(answer_fn)`` listens on 127.0.0.1 (a free port) in a thread and answers
``POST /v1/chat/completions`` with the real response shape, including
``choices[0].logprobs.content[0].top_logprobs``. ``answer_fn(image_bytes, prompt) -> P(yes)`` decides
each answer; the server spreads P(yes) over surface variants ("Yes", "yes", " yes", "No", "no")
and keeps 2% of the mass for another token, so a client normalising yes against no recovers P(yes)
exactly. ``latency_s`` sleeps per request (emulating a GPU server). Faults, for tests:
``fail(status, n)`` answers the next n requests with that HTTP status, ``hang(n)`` holds the next n
requests past any client timeout, ``logprobs = False`` omits logprobs (as some VLM servings do).
``serve_judge(judge, requests)`` builds an ``answer_fn`` that asks a :class:`Judge` the original
request (spec included) matched by image bytes' sha256 and rendered prompt; ``table_answers`` looks
precomputed answers up the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from t2i_audit.evals.judges.yesno import PROMPT_TEMPLATE, render_prompt

OTHER_MASS = 0.02
_VARIANTS = ((0.7, "Yes"), (0.2, "yes"), (0.1, " yes"))
_NO_VARIANTS = ((0.8, "No"), (0.2, "no"))


def top_logprobs(p_yes: float) -> list[dict]:
    """The first token's top logprobs for a judge whose P(yes) renormalised against no is p_yes."""
    out = [{"token": t, "logprob": math.log((1 - OTHER_MASS) * p_yes * w)} for w, t in _VARIANTS if p_yes > 0]
    out += [{"token": t, "logprob": math.log((1 - OTHER_MASS) * (1 - p_yes) * w)} for w, t in _NO_VARIANTS
            if p_yes < 1]
    out.append({"token": "Maybe", "logprob": math.log(OTHER_MASS)})
    out.sort(key=lambda d: -d["logprob"])
    return [{**d, "bytes": list(d["token"].encode())} for d in out]


def completion(p_yes: float, model: str, prompt_tokens: int, with_logprobs: bool) -> dict:
    top = top_logprobs(p_yes)
    text = "Yes" if p_yes >= 0.5 else "No"  # the answer decoded: yes when the yes mass is the larger
    first = next((d for d in top if d["token"] == text), top[0])
    logprobs = {"content": [{**first, "top_logprobs": top}], "refusal": None} if with_logprobs else None
    return {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": logprobs, "finish_reason": "length"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do (every reply sends Content-Length)

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):  # noqa: N802 - http.server's name
        js = self.server.owner
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
        fault = js._next_fault()
        if fault == "hang":
            js._release.wait(js.hang_s)
            return None
        if fault is not None:
            return self._send(fault, {"error": {"message": f"planted HTTP {fault}", "type": "server_error",
                                                "code": fault}}, {"Retry-After": "0"} if fault == 429 else None)
        try:
            image, prompt = _parse(body)
        except (KeyError, IndexError, ValueError) as e:
            return self._send(400, {"error": {"message": f"bad request: {e}", "type": "invalid_request_error"}})
        if js.latency_s:
            time.sleep(js.latency_s)
        try:
            p = float(js.answer_fn(image, prompt))
        except Exception as e:  # the answer function's error goes back to the client, not the console
            return self._send(400, {"error": {"message": f"answer_fn: {type(e).__name__}: {e}",
                                              "type": "invalid_request_error"}})
        js._count("answered")
        self._send(200, completion(p, body.get("model", ""), 64 + len(prompt.split()), js.logprobs))


def _parse(body: dict) -> tuple[bytes, str]:
    image, texts = None, []
    for part in body["messages"][-1]["content"]:
        if part["type"] == "image_url":
            m = re.match(r"data:[\w/+.-]+;base64,(.*)", part["image_url"]["url"], re.S)
            if not m:
                raise ValueError("image_url must be a base64 data URL")
            image = base64.b64decode(m.group(1))
        elif part["type"] == "text":
            texts.append(part["text"])
    if image is None:
        raise ValueError("no image in the last message")
    return image, " ".join(texts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: JudgeServer


class JudgeServer:
    """See the module doc. Use as a context manager; ``base_url`` is ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, answer_fn: Callable[[bytes, str], float], latency_s: float = 0.0, hang_s: float = 30.0):
        self.answer_fn, self.latency_s, self.hang_s = answer_fn, latency_s, hang_s
        self.logprobs = True
        self.counts = {"received": 0, "answered": 0, "failed": 0, "hung": 0}
        self._faults: list = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="judge-server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def spec(self, model: str = "loopback-vlm") -> str:
        return f"openai:{self.base_url}#{model}"

    def fail(self, status: int, n: int = 1) -> None:
        with self._lock:
            self._faults += [status] * n

    def hang(self, n: int = 1) -> None:
        with self._lock:
            self._faults += ["hang"] * n

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _next_fault(self):
        with self._lock:
            self.counts["received"] += 1
            f = self._faults.pop(0) if self._faults else None
            if f is not None:
                self.counts["hung" if f == "hang" else "failed"] += 1
            return f

    def start(self) -> JudgeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve_judge(judge, requests, template: str = PROMPT_TEMPLATE) -> Callable[[bytes, str], float]:
    """An answer_fn asking ``judge`` the request whose image bytes and rendered prompt match (one at a
    time; the prompt as ``yesno.render_prompt`` writes it with ``template``)."""
    table = {(r.image_sha256, render_prompt(r.question, template)): r for r in requests}

    def answer(image: bytes, prompt: str) -> float:
        key = (hashlib.sha256(image).hexdigest(), prompt)
        if key not in table:
            raise KeyError(f"no request for image {key[0][:12]} and prompt {prompt!r}")
        return judge.answer([table[key]])[0].p_yes

    return answer


def table_answers(p_yes: dict[tuple[str, str], float], template: str = PROMPT_TEMPLATE) -> Callable[[bytes, str], float]:
    """An answer_fn looking P(yes) up by (image sha256, question): precomputed answers of a judge."""
    table = {(sha, render_prompt(q, template)): p for (sha, q), p in p_yes.items()}

    def answer(image: bytes, prompt: str) -> float:
        return table[(hashlib.sha256(image).hexdigest(), prompt)]

    return answer


class ProcessJudgeServer:
    """A :class:`JudgeServer` in a child process (fork), so the client's threads do not share the
    server's interpreter lock, as with a real server. Faults are not available here; ``spec()`` and
    ``base_url`` as on :class:`JudgeServer`. POSIX only."""

    def __init__(self, answer_fn: Callable[[bytes, str], float], latency_s: float = 0.0):
        self.answer_fn, self.latency_s = answer_fn, latency_s
        self.base_url = ""

    def _serve(self, conn) -> None:
        srv = JudgeServer(self.answer_fn, self.latency_s)
        conn.send(srv.base_url)
        srv._httpd.serve_forever()

    def start(self) -> ProcessJudgeServer:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=self._serve, args=(child,), daemon=True)
        self._proc.start()
        if not parent.poll(30):
            self._proc.terminate()
            raise RuntimeError("the loopback judge server did not start within 30 s")
        self.base_url = parent.recv()
        return self

    def spec(self, model: str = "loopback-vlm") -> str:
        return f"openai:{self.base_url}#{model}"

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
