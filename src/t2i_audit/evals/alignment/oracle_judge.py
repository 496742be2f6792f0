"""The ``oracle`` judge: PictoWorld truth read from the pixels (``world.oracle``), judged against each
question's ``spec["check"]`` with ``world.expect.judge``.

P(yes) is 1 or 0 (``soft`` False). An abstaining oracle (a field it cannot read) answers "no", as
skill accuracy fails an unreadable image; as a *labeller* (:func:`oracle_label`) it says "unsure"
instead, so labels never guess. Questions without a spec (benchmark files) cannot be answered.
"""

from __future__ import annotations

from t2i_audit.core.images import open_image
from t2i_audit.errors import InputError
from t2i_audit.world.expect import judge
from t2i_audit.world.oracle import ORACLE_VERSION, UNKNOWN, read_image


def _check(req) -> dict:
    spec = req.spec or {}
    if "check" not in spec:
        raise InputError(f"the oracle judge answers PictoWorld questions only (questions generated from a suite's "
                         f"expect); {req.question!r} has no check spec")
    return spec["check"]


def _abstained(reading, check: dict, reason: str) -> bool:
    return reading.kind == UNKNOWN or "unreadable" in reason or (reading.count == UNKNOWN and "count" in check)


def read_all(requests) -> dict:
    """sha256 -> oracle Reading, each image read once."""
    out = {}
    for r in requests:
        if r.image_sha256 not in out:
            with open_image(r.image_path) as im:
                out[r.image_sha256] = read_image(im.convert("RGB"))
    return out


def oracle_verdicts(requests) -> list[tuple[bool, bool, str]]:
    """(passed, abstained, reason) per request."""
    readings = read_all(requests)
    out = []
    for r in requests:
        check = _check(r)
        reading = readings[r.image_sha256]
        passed, reason = judge(reading, check)
        out.append((bool(passed), (not passed) and _abstained(reading, check, reason), reason))
    return out


def oracle_label(requests) -> list[str]:
    """Labels 'yes' / 'no' / 'unsure' (oracle abstained) for (image, question) requests."""
    return ["unsure" if ab else ("yes" if ok else "no") for ok, ab, _ in oracle_verdicts(requests)]


class OracleJudge:
    spec = "oracle"
    revision = f"oracle-v{ORACLE_VERSION}"
    normalisation = "yes_vs_no"

    def answer(self, requests):
        from t2i_audit.evals.judges.base import JudgeAnswer

        return [JudgeAnswer(1.0 if ok else 0.0, ("yes" if ok else "no") + ("" if ok else f" ({reason})"), False)
                for ok, _, reason in oracle_verdicts(list(requests))]


def make_oracle_judge(spec: str, options: dict) -> OracleJudge:
    if options:
        raise InputError(f"judge {spec!r}: the oracle takes no options (got {', '.join(sorted(options))})")
    return OracleJudge()
