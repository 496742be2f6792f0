"""Prompt perturbations: identity swaps, word maps (synonyms, dialects), typos, casing and punctuation.

A perturbation is named ``NAME[:ARG]`` (``t2i-audit sample --perturb typo:0.05``):

- ``swap:presentation`` (man <-> woman), ``swap:skin`` (light <-> dark), ``swap:skin-medium``
  (light <-> medium, medium <-> dark is ``swap:WORD=WORD``), ``swap:gender`` (the usual English
  gendered word pairs, for real-world suites), ``swap:a=b[,c=d]`` (any pairs). Both directions of each
  pair; the prompt's expectation, slots and tags follow the swap, so adherence is judged against
  what the perturbed prompt asks for.
- ``synonym:MAP`` and ``dialect:MAP``: a word-mapping file (YAML ``from: to`` or CSV ``from,to``), or a
  shipped map (``pictoworld-synonyms-known``, ``pictoworld-synonyms-unknown``, ``en-us``). Meaning is
  kept, so the expectation is unchanged.
- ``typo:RATE``: each letter, with probability RATE, is replaced by a QWERTY neighbour, deleted or
  transposed with the next letter (one of the three, equally likely).
- ``case:upper|lower|title``; ``punct:strip|period``.

Everything random is seeded by (seed, source prompt id, perturbation), so a prompt's perturbation
does not depend on the other prompts, the order or the batch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from t2i_audit.core.safe_yaml import safe_load as bounded_yaml
from t2i_audit.errors import InputError, did_you_mean

WORDMAP_DIR = "wordmaps"
SWAPS = {
    "presentation": (("man", "woman"), ("men", "women")),
    "skin": (("light", "dark"),),
    "skin-medium": (("light", "medium"),),
    "gender": (("man", "woman"), ("men", "women"), ("male", "female"), ("boy", "girl"), ("boys", "girls"),
               ("he", "she"), ("his", "her"), ("him", "her"), ("father", "mother"), ("son", "daughter"),
               ("brother", "sister"), ("husband", "wife"), ("king", "queen"), ("gentleman", "lady"),
               ("gentlemen", "ladies"), ("mr", "mrs"), ("uncle", "aunt"), ("nephew", "niece"),
               ("grandfather", "grandmother"), ("businessman", "businesswoman"), ("actor", "actress"),
               ("waiter", "waitress")),
}
CASES = ("upper", "lower", "title")
PUNCTS = ("strip", "period")
NAMES = ("swap", "synonym", "dialect", "typo", "case", "punct")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out = {}
    for c, (r, i) in pos.items():
        out[c] = "".join(d for d, (r2, j) in pos.items()
                         if d != c and abs(r2 - r) <= 1 and abs((j + 0.5 * r2) - (i + 0.5 * r)) <= 1.0)
    return out


KEY_NEIGHBOURS = _neighbours()


@dataclass(frozen=True)
class Change:
    """What a perturbation did to a prompt: the words before and after."""

    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.before}→{self.after}"


@dataclass(frozen=True)
class Perturbation:
    """One named perturbation with its parsed argument (see the module doc)."""

    name: str
    arg: str
    mapping: tuple[tuple[str, str], ...] = ()  # swap pairs (both ways) or word map (one way)
    rate: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")

    @property
    def changes_meaning(self) -> bool:
        """Identity swaps change what the prompt asks for; the expectation follows them."""
        return self.name == "swap"

    def word_map(self) -> dict[str, str]:
        if self.name == "swap":
            out = {}
            for a, b in self.mapping:
                out.setdefault(a, b)
                out.setdefault(b, a)
            return out
        return dict(self.mapping)

    def apply(self, text: str, rng: random.Random) -> tuple[str, list[Change]]:
        """(perturbed text, changes); no change gives the text itself and an empty list."""
        if self.name in ("swap", "synonym", "dialect"):
            return map_words(text, self.word_map())
        if self.name == "typo":
            return typos(text, self.rate, rng)
        if self.name == "case":
            new = {"upper": text.upper(), "lower": text.lower(), "title": text.title()}[self.arg]
        else:
            new = re.sub(r"[^\w\s]", "", text) if self.arg == "strip" else text.rstrip(".") + "."
            new = re.sub(r"\s+", " ", new).strip() if self.arg == "strip" else new
        return new, ([Change(text, new)] if new != text else [])


def parse_perturbation(spec: str) -> Perturbation:
    """``NAME[:ARG]`` -> Perturbation; a one-line InputError names the fix."""
    name, _, arg = str(spec).strip().partition(":")
    name, arg = name.strip().lower(), arg.strip()
    if name not in NAMES:
        raise InputError(f"--perturb {spec!r}: unknown perturbation {name!r}{did_you_mean(name, NAMES)} "
                         f"(valid: {', '.join(NAMES)}; e.g. typo:0.05, swap:presentation, synonym:FILE)")
    if name == "typo":
        try:
            rate = float(arg)
        except ValueError:
            raise InputError(f"--perturb {spec!r}: typo needs a rate per letter, e.g. typo:0.05") from None
        if not 0 < rate <= 0.5:
            raise InputError(f"--perturb {spec!r}: typo rate must be in (0, 0.5], got {arg}")
        return Perturbation("typo", f"{rate:g}", rate=rate)
    if name == "swap":
        return Perturbation("swap", arg, _swap_pairs(arg, spec))
    if name in ("synonym", "dialect"):
        if not arg:
            raise InputError(f"--perturb {spec!r}: {name} needs a word map: {name}:FILE.yaml, {name}:FILE.csv "
                             f"or a shipped map ({', '.join(shipped_maps())})")
        return Perturbation(name, arg, load_word_map(arg))
    valid = CASES if name == "case" else PUNCTS
    if arg not in valid:
        raise InputError(f"--perturb {spec!r}: {name} takes one of {', '.join(valid)}{did_you_mean(arg, valid)}")
    return Perturbation(name, arg)


def _swap_pairs(arg: str, spec: str) -> tuple[tuple[str, str], ...]:
    if arg in SWAPS:
        return SWAPS[arg]
    if "=" not in arg:
        raise InputError(f"--perturb {spec!r}: swap takes one of {', '.join(SWAPS)} or pairs a=b[,c=d]"
                         f"{did_you_mean(arg, SWAPS)}")
    pairs = []
    for item in arg.split(","):
        a, _, b = item.partition("=")
        a, b = a.strip().lower(), b.strip().lower()
        if not a or not b or a == b:
            raise InputError(f"--perturb {spec!r}: bad pair {item!r}; write swap:light=dark")
        pairs.append((a, b))
    return tuple(pairs)


def shipped_maps() -> list[str]:
    root = resources.files("t2i_audit.evals.suites") / WORDMAP_DIR
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_word_map(ref: str) -> tuple[tuple[str, str], ...]:
    """A word map from a shipped name, a YAML mapping file or a two-column CSV file."""
    from t2i_audit.core.io import read_user_text

    path = Path(ref)
    if not path.is_file():
        if ref not in shipped_maps():
            raise InputError(f"word map {ref!r}: not a file and not a shipped map{did_you_mean(ref, shipped_maps())} "
                             f"(shipped: {', '.join(shipped_maps())})")
        path = Path(str(resources.files("t2i_audit.evals.suites") / WORDMAP_DIR / f"{ref}.yaml"))
    text = read_user_text(path, "word map", "save it as UTF-8 YAML (from: to) or CSV (from,to)")
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["from", "to"]:
            rows = rows[1:]
        bad = [r for r in rows if len(r) != 2]
        if bad:
            raise InputError(f"{path}: each row needs two columns from,to; got {bad[0]!r}")
        data = {r[0]: r[1] for r in rows}
    else:
        import yaml

        try:
            data = bounded_yaml(text, str(path))
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected a non-empty mapping of word -> replacement")
    out = []
    for k, v in data.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k.strip() or not v.strip():
            raise InputError(f"{path}: entry {k!r}: {v!r}: both sides must be non-empty text")
        out.append((k.strip().lower(), v.strip()))
    return tuple(out)


def _match_case(src: str, new: str) -> str:
    if src.isupper() and len(src) > 1:
        return new.upper()
    if src[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def map_words(text: str, mapping: dict[str, str]) -> tuple[str, list[Change]]:
    """Whole-word (or phrase) replacement, longest phrase first, case kept; one pass, so a swap
    man<->woman never swaps back."""
    if not mapping:
        return text, []
    keys = sorted(mapping, key=len, reverse=True)
    pat = re.compile(r"(?<![\w])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])", re.IGNORECASE)
    changes: list[Change] = []

    def repl(m):
        new = _match_case(m.group(0), mapping[m.group(0).lower()])
        changes.append(Change(m.group(0), new))
        return new

    return pat.sub(repl, text), changes


def typos(text: str, rate: float, rng: random.Random) -> tuple[str, list[Change]]:
    """Keyboard typos at ``rate`` per letter; changes are listed per word (before -> after)."""
    out: list[str] = []
    chars = list(text)
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and c.lower() in KEY_NEIGHBOURS and rng.random() < rate:
            kind = rng.randrange(3)
            if kind == 0:
                n = rng.choice(KEY_NEIGHBOURS[c.lower()])
                out.append(n.upper() if c.isupper() else n)
            elif kind == 2 and i + 1 < len(chars) and chars[i + 1].isalpha():
                out += [chars[i + 1], c]
                i += 1
            elif kind == 1:
                pass  # deletion
            else:  # transposition at the end of a word: substitute instead
                n = rng.choice(KEY_NEIGHBOURS[c.lower()])
                out.append(n.upper() if c.isupper() else n)
        else:
            out.append(c)
        i += 1
    new = "".join(out)
    if new == text:
        return text, []
    a, b = text.split(" "), new.split(" ")
    if len(a) == len(b):
        return new, [Change(x, y) for x, y in zip(a, b) if x != y]
    return new, [Change(text, new)]


def prompt_rng(seed: int, prompt_id: str, p: Perturbation) -> random.Random:
    """The random stream of one (seed, source prompt, perturbation): independent of all others."""
    h = hashlib.sha256(f"{seed}\n{prompt_id}\n{p.label}".encode()).hexdigest()
    return random.Random(int(h[:16], 16))
