"""Questions about an image: the record, PictoWorld scene graphs, and the question file.

A :class:`Question` asks one yes/no thing about the images of one prompt. ``answer`` is the answer
an image that follows the prompt gives ("yes" for every generated question; benchmark files may
expect "no"). ``parents`` are question ids this one depends on (DSG: a child counts 0 when a parent
failed). ``atom`` names the prompt element the question checks (Soft-TIFA averages per atom).
``spec`` (PictoWorld only) tells the oracle and the bundled judge what to check: ``check`` is an
expectation in ``world.expect``'s form, ``context`` the prompt's whole expectation and ``focus``
which field of it the question varies.

From a suite's structured ``expect`` (:func:`questions_from_expect`), deterministically:

- every expected object -> an entity question ("Is there a circle?", skill ``object``), with
  children ``attribute`` (its colour) and ``position`` (its stated position);
- ``count`` -> "Are there exactly three red circles?" (skill ``count``; parents: the entities);
- ``relation`` -> "Is the red circle left of the blue square?" (skill ``relation``; parents: both
  entities);
- ``person`` -> "Is there a person?" (``object``) with ``person-attribute`` children for each stated
  profession, presentation and skin;
- one ``whole-prompt`` question, 'Does this figure show "PROMPT"?' (VQAScore; no parents, not part
  of TIFA/DSG/Soft-TIFA).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2i_audit.errors import InputError

SKILLS = ("object", "attribute", "position", "count", "relation", "person-attribute", "whole-prompt")
WHOLE = "whole-prompt"
VQASCORE_TEMPLATE = 'Does this figure show "{prompt}"? Please answer yes or no.'
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
POSITION_PHRASE = {"left": "on the left", "right": "on the right", "top": "at the top",
                   "bottom": "at the bottom", "centre": "in the centre"}


@dataclass(frozen=True)
class Question:
    question_id: str
    prompt_id: str
    text: str
    skill: str
    parents: tuple[str, ...] = ()
    atom: str | None = None
    answer: str = "yes"
    spec: dict | None = None
    prompt: str = ""
    source: str = "suite"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["parents"] = list(self.parents)
        return d

    @staticmethod
    def from_dict(d: dict, where: str = "") -> Question:
        try:
            ans = str(d.get("answer", "yes")).strip().lower()
            if ans not in ("yes", "no"):
                raise InputError(f"{where}: answer {ans!r}: expected yes or no")
            return Question(str(d["question_id"]), str(d["prompt_id"]), str(d["text"]), str(d["skill"]),
                            tuple(str(p) for p in d.get("parents") or ()), d.get("atom"), ans, d.get("spec"),
                            str(d.get("prompt", "")), str(d.get("source", "file")), dict(d.get("extra") or {}))
        except KeyError as e:
            raise InputError(f"{where}: missing key {e.args[0]!r} (need question_id, prompt_id, text, skill)") from None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _noun(obj: dict, plural: bool = False) -> str:
    shape = obj.get("shape") or "object"
    words = [w for w in (obj.get("color"), shape + ("s" if plural else "")) if w]
    return " ".join(words)


class _Builder:
    """Collects one prompt's questions, numbering them q1, q2, ... in generation order."""

    def __init__(self, prompt_id: str, prompt: str, expect: dict):
        self.pid, self.prompt, self.expect = prompt_id, prompt, expect
        self.out: list[Question] = []
        self.by_check: dict[str, str] = {}

    def add(self, text: str, skill: str, check: dict, focus: list, parents=(), atom: str | None = None) -> str:
        key = skill + json.dumps(check, sort_keys=True)
        if key in self.by_check:  # two objects of one shape share the entity question
            return self.by_check[key]
        qid = f"{self.pid}:q{len(self.out) + 1}"
        spec = {"check": check, "context": self.expect, "focus": focus}
        self.out.append(Question(qid, self.pid, text, skill, tuple(dict.fromkeys(parents)), atom, "yes", spec,
                                 self.prompt, "suite"))
        self.by_check[key] = qid
        return qid


def _object_questions(b: _Builder, objs: list[dict]) -> list[str]:
    entities = []
    for i, o in enumerate(objs):
        shape = o.get("shape")
        text = f"Is there {_article(shape)} {shape}?" if shape else "Is there an object?"
        ent = b.add(text, "object", {"objects": [{"shape": shape} if shape else {}]}, ["objects", i, "shape"],
                    atom=f"object[{i}]")
        entities.append(ent)
        if o.get("color"):
            b.add(f"Is the {shape or 'object'} {o['color']}?", "attribute",
                  {"objects": [{k: o[k] for k in ("shape", "color") if o.get(k)}]}, ["objects", i, "color"],
                  (ent,), f"object[{i}].color")
        if o.get("position"):
            b.add(f"Is the {_noun(o)} {POSITION_PHRASE[o['position']]}?", "position",
                  {"objects": [{k: o[k] for k in ("shape", "color", "position") if o.get(k)}]},
                  ["objects", i, "position"], (ent,), f"object[{i}].position")
    return entities


def _count_question(b: _Builder, objs: list[dict], n: int, entities: list[str]) -> None:
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    if len(objs) == 1:
        core = {k: objs[0][k] for k in ("shape", "color") if objs[0].get(k)}
        noun = _noun(core, plural=n != 1)
        text = f"Is there exactly one {noun}?" if n == 1 else f"Are there exactly {word} {noun}?"
        check = {"objects": [core] * n, "count": n} if n else {"count": 0}
    else:
        text = "Is there exactly one object?" if n == 1 else f"Are there exactly {word} objects?"
        check = {"count": n}
    b.add(text, "count", check, ["count"], entities, "count")


def _person_questions(b: _Builder, person: dict) -> None:
    ent = b.add("Is there a person?", "object", {"person": {}}, ["person"], atom="person")
    texts = {"profession": lambda v: f"Is the person {_article(v)} {v}?",
             "presentation": lambda v: f"Is the person {_article(v)} {v}?",
             "skin": lambda v: f"Does the person have {v} skin?"}
    for key in ("profession", "presentation", "skin"):
        if person.get(key):
            b.add(texts[key](person[key]), "person-attribute", {"person": {key: person[key]}}, ["person", key],
                  (ent,), f"person.{key}")


def questions_from_expect(prompt_id: str, prompt: str, expect: dict | None,
                          whole_prompt: bool = True) -> list[Question]:
    """The scene-graph questions of one prompt's expectation (see the module doc), deterministic."""
    b = _Builder(prompt_id, prompt, dict(expect or {}))
    ex = b.expect
    if ex.get("person") is not None:
        _person_questions(b, ex["person"])
    objs = list(ex.get("objects") or [])
    entities = _object_questions(b, objs) if objs else []
    if ex.get("count") is not None:
        _count_question(b, objs, int(ex["count"]), entities)
    rel = ex.get("relation")
    if rel and len(objs) >= 2:
        a, c = objs[int(rel["a"])], objs[int(rel["b"])]
        b.add(f"Is the {_noun(a)} {rel['rel']} the {_noun(c)}?", "relation",
              {"objects": [a, c], "relation": {"a": 0, "b": 1, "rel": rel["rel"]}}, ["relation"],
              (entities[int(rel["a"])], entities[int(rel["b"])]), "relation")
    if whole_prompt:
        b.add(VQASCORE_TEMPLATE.format(prompt=prompt), WHOLE, ex, [], atom=None)
    return b.out


def questions_from_suite(suite, limit: int | None = None, whole_prompt: bool = True) -> list[Question]:
    """Questions for every prompt of a PromptSuite with an expectation (whole-prompt only otherwise)."""
    out: list[Question] = []
    for p in suite.select(limit):
        if p.expect:
            out += questions_from_expect(p.prompt_id, p.text, p.expect, whole_prompt)
        elif whole_prompt:
            out.append(whole_prompt_question(p.prompt_id, p.text, "suite"))
    return out


def whole_prompt_question(prompt_id: str, prompt: str, source: str) -> Question:
    return Question(f"{prompt_id}:vqa", prompt_id, VQASCORE_TEMPLATE.format(prompt=prompt), WHOLE, (), None, "yes",
                    None, prompt, source)


def write_questions(path: str | Path, questions: list[Question]) -> None:
    """A question file: JSON lines, one Question per line (reviewable, reusable with --questions)."""
    with open(path, "w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps(q.to_dict(), sort_keys=True) + "\n")


def read_jsonl(path: Path):
    """(line number, object) of each non-blank line of a JSONL file; one-line errors name file:line."""
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(d, dict):
                raise InputError(f"{path}:{i}: expected a JSON object per line")
            yield i, d


def read_question_file(path: str | Path) -> list[Question]:
    """Read a question file written by :func:`write_questions`."""
    return [Question.from_dict(d, f"{path}:{i}") for i, d in read_jsonl(Path(path))]


def check_questions(questions: list[Question], source: str) -> None:
    """Unique ids, parents that exist within the same prompt, and known skills or free ones."""
    ids = {}
    for q in questions:
        if q.question_id in ids:
            raise InputError(f"{source}: question id {q.question_id!r} appears twice; ids must be unique")
        ids[q.question_id] = q.prompt_id
    for q in questions:
        for p in q.parents:
            if ids.get(p) != q.prompt_id:
                raise InputError(f"{source}: question {q.question_id!r} depends on {p!r}, which is not a question "
                                 f"of prompt {q.prompt_id!r}")
