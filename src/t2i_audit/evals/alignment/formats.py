"""Question and prompt files from benchmarks the user has (never shipped here; tests use fixtures).

=====================  ====================================================================
``tifa``               TIFA v1.0 question JSON: ``[{id, caption, question, choices, answer,
                       element_type, element}]``
``dsg``                DSG-style CSV (DSG-1k, DPG-Bench): ``item_id, text, keywords, proposition_id,
                       dependency, category_broad, category_detailed, tuple,
                       question_natural_language``; ``dependency`` lists parent proposition ids
                       (``0`` = none)
``geneval2``           GenEval 2 JSONL: ``{prompt, atom_count, vqa_list: [[q, a]], skills}``
``geneval``            GenEval metadata JSONL: ``{tag, prompt, include: [{class, count, color?,
                       position?: [rel, index]}], exclude?}`` -> questions
``parti``              PartiPrompts TSV (``Prompt`` column) -> whole-prompt questions (VQAScore)
``drawbench``          DrawBench CSV (``Prompts`` or ``prompt`` column) -> whole-prompt questions
``lines``              T2I-CompBench text file, one prompt a line -> whole-prompt questions
``questions``          this toolkit's question file (JSON lines, ``questions.write_questions``)
=====================  ====================================================================

Judges answer yes/no. A question whose expected answer is not yes/no ("How many cows?" -> "three")
is asked as ``'{question} Is the answer "three"?'`` with expected answer yes; the original question
and answer are kept in ``extra``. Malformed input raises InputError naming the file and line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from t2i_audit.errors import InputError
from t2i_audit.evals.alignment.questions import (
    NUMBER_WORDS,
    Question,
    check_questions,
    read_jsonl,
    read_question_file,
    whole_prompt_question,
)

FORMATS = ("questions", "tifa", "dsg", "geneval2", "geneval", "parti", "drawbench", "lines")
DSG_COLUMNS = ("item_id", "text", "proposition_id", "dependency", "category_broad", "question_natural_language")


def _yes_no(question: str, answer) -> tuple[str, str, dict]:
    a = str(answer).strip()
    if a.lower() in ("yes", "no"):
        return question, a.lower(), {}
    return f'{question} Is the answer "{a}"?', "yes", {"original_question": question, "original_answer": a}


def load_tifa(path: Path) -> list[Question]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(rows, list):
        raise InputError(f"{path}:1: expected a JSON list of TIFA question records")
    out, seen = [], {}
    for i, r in enumerate(rows):
        where = f"{path}: record {i + 1}"
        if not isinstance(r, dict) or any(k not in r for k in ("id", "caption", "question", "answer")):
            raise InputError(f"{where}: need keys id, caption, question, answer (TIFA v1.0 question_answers)")
        pid = str(r["id"])
        k = seen[pid] = seen.get(pid, 0) + 1
        text, ans, extra = _yes_no(str(r["question"]), r["answer"])
        extra["choices"] = list(r.get("choices") or [])
        out.append(Question(f"{pid}:q{k}", pid, text, str(r.get("element_type") or "other"), (),
                            str(r.get("element") or f"q{k}"), ans, None, str(r["caption"]), "tifa", extra))
    return out


def _csv_rows(path: Path, delimiter: str = ","):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames or []
        for row in reader:
            yield reader.line_num, header, row


def load_dsg(path: Path) -> list[Question]:
    out = []
    for line, header, r in _csv_rows(path):
        missing = [c for c in DSG_COLUMNS if c not in header]
        if missing:
            raise InputError(f"{path}:1: DSG CSV lacks column(s) {', '.join(missing)} (need {', '.join(DSG_COLUMNS)})")
        pid = (r["item_id"] or "").strip()
        prop = (r["proposition_id"] or "").strip()
        if not pid or not prop.isdigit():
            raise InputError(f"{path}:{line}: item_id must be set and proposition_id an integer (got {prop!r})")
        deps = [d.strip() for d in str(r["dependency"] or "0").split(",") if d.strip()]
        if any(not d.isdigit() for d in deps):
            raise InputError(f"{path}:{line}: dependency {r['dependency']!r}: expected proposition ids like 0 or 1,2")
        parents = tuple(f"{pid}:{d}" for d in deps if d != "0")
        q = (r["question_natural_language"] or "").strip()
        if not q:
            raise InputError(f"{path}:{line}: empty question_natural_language")
        out.append(Question(f"{pid}:{prop}", pid, q, (r["category_broad"] or "other").strip(), parents,
                            (r.get("tuple") or "").strip() or prop, "yes", None, (r["text"] or "").strip(), "dsg",
                            {"category_detailed": (r.get("category_detailed") or "").strip()}))
    return out


def load_geneval2(path: Path) -> list[Question]:
    out = []
    for i, d in read_jsonl(path):
        vqa, skills = d.get("vqa_list"), d.get("skills")
        if not isinstance(d.get("prompt"), str) or not isinstance(vqa, list):
            raise InputError(f"{path}:{i}: need 'prompt' (text) and 'vqa_list' ([[question, answer], ...])")
        if skills is not None and (not isinstance(skills, list) or len(skills) != len(vqa)):
            raise InputError(f"{path}:{i}: 'skills' must list one skill per vqa_list entry ({len(vqa)})")
        pid = f"{path.stem}-{i:05d}"
        for k, qa in enumerate(vqa):
            if not (isinstance(qa, list) and len(qa) == 2):
                raise InputError(f"{path}:{i}: vqa_list[{k}] must be [question, answer]")
            text, ans, extra = _yes_no(str(qa[0]), qa[1])
            extra["atom_count"] = d.get("atom_count")
            out.append(Question(f"{pid}:q{k + 1}", pid, text, str(skills[k]) if skills else "other", (),
                                f"atom{k + 1}", ans, None, d["prompt"], "geneval2", extra))
    return out


def _plural(cls: str, n: int) -> str:
    return cls if n == 1 else cls + "s"


def _geneval_questions(pid: str, prompt: str, include: list[dict], exclude: list[dict], where: str) -> list[Question]:
    out: list[Question] = []
    ents = []

    def add(text, skill, parents=(), atom=None):
        out.append(Question(f"{pid}:q{len(out) + 1}", pid, text, skill, tuple(parents), atom, "yes", None, prompt,
                            "geneval"))
        return out[-1].question_id

    for j, o in enumerate(include):
        if not isinstance(o, dict) or not o.get("class"):
            raise InputError(f"{where}: include[{j}] needs a 'class'")
        cls, n = str(o["class"]), int(o.get("count", 1))
        ents.append(add(f"Is there {'an' if cls[:1] in 'aeiou' else 'a'} {cls}?", "object", atom=f"object[{j}]"))
        if n > 1 or any(x.get("class") == cls for x in exclude):
            exact = any(x.get("class") == cls and int(x.get("count", 0)) == n + 1 for x in exclude)
            word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
            add(f"Are there {'exactly ' if exact else 'at least '}{word} {_plural(cls, n)}?", "count", (ents[j],),
                f"object[{j}].count")
        if o.get("color"):
            add(f"Is the {cls} {o['color']}?", "attribute", (ents[j],), f"object[{j}].color")
    for j, o in enumerate(include):
        pos = o.get("position")
        if pos:
            if not (isinstance(pos, list) and len(pos) == 2 and isinstance(pos[1], int) and 0 <= pos[1] < len(include)):
                raise InputError(f"{where}: include[{j}].position must be [relation, index of another object]")
            other = include[pos[1]]["class"]
            add(f"Is the {o['class']} {pos[0]} the {other}?", "relation", (ents[j], ents[pos[1]]), f"object[{j}].position")
    return out


def load_geneval(path: Path) -> list[Question]:
    out = []
    for i, d in read_jsonl(path):
        if not isinstance(d.get("prompt"), str) or not isinstance(d.get("include"), list):
            raise InputError(f"{path}:{i}: need 'prompt' (text) and 'include' (list of objects)")
        pid = f"{path.stem}-{i:05d}"
        out += _geneval_questions(pid, d["prompt"], d["include"], list(d.get("exclude") or []), f"{path}:{i}")
    return out


def _prompt_column(path: Path, delimiter: str, names: tuple[str, ...], fmt: str) -> list[Question]:
    out = []
    for line, header, r in _csv_rows(path, delimiter):
        col = next((c for c in names if c in header), None)
        if col is None:
            raise InputError(f"{path}:1: no prompt column ({' or '.join(names)}) in the {fmt} header")
        text = (r[col] or "").strip()
        if not text:
            raise InputError(f"{path}:{line}: empty prompt")
        out.append(whole_prompt_question(f"{path.stem}-{line:05d}", text, fmt))
    return out


def load_lines(path: Path) -> list[Question]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            out.append(whole_prompt_question(f"{path.stem}-{i:05d}", line.strip(), "lines"))
    return out


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "tifa"
    if suffix == ".tsv":
        return "parti"
    if suffix == ".txt":
        return "lines"
    if suffix == ".csv":
        with open(path, encoding="utf-8") as f:
            head = f.readline()
        return "dsg" if "proposition_id" in head else "drawbench"
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            first = next((ln for ln in f if ln.strip()), "{}")
        return ("geneval2" if '"vqa_list"' in first else "geneval" if '"include"' in first else "questions")
    raise InputError(f"{path}: cannot tell the format from the suffix {suffix!r}; name it with --questions-format "
                     f"({', '.join(FORMATS)})")


def load_questions(path: str | Path, fmt: str | None = None) -> list[Question]:
    """Questions from a benchmark or question file (format from ``fmt`` or the file)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such question file")
    fmt = fmt or detect_format(p)
    loaders = {"questions": read_question_file, "tifa": load_tifa, "dsg": load_dsg, "geneval2": load_geneval2,
               "geneval": load_geneval, "lines": load_lines,
               "parti": lambda q: _prompt_column(q, "\t", ("Prompt", "prompt"), "parti"),
               "drawbench": lambda q: _prompt_column(q, ",", ("Prompts", "Prompt", "prompt"), "drawbench")}
    if fmt not in loaders:
        raise InputError(f"--questions-format {fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        qs = loaders[fmt](p)
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    if not qs:
        raise InputError(f"{p}: no questions or prompts in this {fmt} file")
    check_questions(qs, str(p))
    return qs
