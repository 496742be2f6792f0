"""The judges' answer cache: one SQLite file (WAL journal, so readers never block the writer), one
row per answered (image, question, judge setting).

The key is the sha256 of a canonical JSON of everything that decides an answer:

    image sha256, question, request spec (the structured form, for judges that read it),
    judge spec, judge revision, prompt template, decoding settings, P(yes) normalisation

so a new model revision, prompt or decoding setting never reads an old answer. Only answers
received are written (a failed or timed-out request leaves no row), each batch in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from pathlib import Path

from t2i_audit.errors import InputError
from t2i_audit.evals.judges.base import JudgeAnswer, JudgeRequest

SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, p_yes REAL, text TEXT NOT NULL, soft INTEGER NOT NULL,
    judge TEXT NOT NULL, created REAL NOT NULL)"""
_CHUNK = 500  # keys per SELECT (SQLite's variable limit is 999 on old builds)


def judge_settings(judge) -> dict:
    """What of a judge decides its answers (and so enters every cache key)."""
    return {"spec": judge.spec, "revision": judge.revision, "normalisation": judge.normalisation,
            "prompt": getattr(judge, "prompt_template", ""), "decoding": getattr(judge, "decoding", {})}


def cache_key(settings: dict, req: JudgeRequest) -> str:
    blob = json.dumps({"judge": settings, "image": req.image_sha256, "question": req.question,
                       "spec": req.spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """get/put answers by key; thread-safe; use as a context manager or call close()."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.path}: not a usable judge answer cache ({e}); remove it or pass another "
                             "--judge-cache") from None
        except OSError as e:
            raise InputError(f"{self.path}: cannot create the judge answer cache ({e.strerror})") from None
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> dict[str, JudgeAnswer]:
        out: dict[str, JudgeAnswer] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(uniq), _CHUNK):
                part = uniq[i:i + _CHUNK]
                rows = self._db.execute(
                    f"SELECT key, p_yes, text, soft FROM answers WHERE key IN ({','.join('?' * len(part))})", part)
                for k, p, text, soft in rows:
                    out[k] = JudgeAnswer(float("nan") if p is None else float(p), text, bool(soft))
        return out

    def put_many(self, items: list[tuple[str, JudgeAnswer]], judge_spec: str) -> None:
        now = time.time()
        rows = [(k, None if math.isnan(a.p_yes) else float(a.p_yes), a.text, int(a.soft), judge_spec, now)
                for k, a in items]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
