"""The loopback OpenAI-compatible judge server for tests (it lives in the package so benches use it too):
``JudgeServer(answer_fn, latency_s=...)`` with planted faults (``fail``, ``hang``, ``logprobs = False``)."""

from t2i_audit.evals.judges.loopback import JudgeServer, serve_judge, table_answers, top_logprobs

__all__ = ["JudgeServer", "serve_judge", "table_answers", "top_logprobs"]
