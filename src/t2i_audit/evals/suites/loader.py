"""Prompt suites: YAML data expanded into PromptSpec rows, content-hashed.

A suite names templates with slots (``"a drawing of a {color} {shape}"``), the slot values, each
template's category, tags and machine-checkable expectations, the images per prompt and a seed
policy. Expansion takes the product of the slot values a template uses. Format: docs/suites-and-runs.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from t2i_audit.core.io import read_user_text
from t2i_audit.core.safe_yaml import check_yaml_file
from t2i_audit.evals.suites.schema import (
    IDENT_RE,
    INCLUDE_KEYS,
    NAME_RE,
    SEED_KEYS,
    SUITE_KEYS,
    LList,
    SuiteError,
    Where,
    check_int,
    check_keys,
    check_str,
    load_yaml,
    require,
    suggest,
)
from t2i_audit.evals.suites.templates import PromptSpec, expand_template, slot_values

BUILTIN_PACKAGE = "t2i_audit.evals.suites"
BUILTIN_DIR = "builtin"
_SEED_MAX = 2**31 - 1


# ----------------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class SeedPolicy:
    """How the seeds of a prompt are chosen: ``range`` (start, start+1, ...: the same seeds for every
    prompt), ``fixed`` (an explicit list), or ``prompt_hash`` (derived from the prompt id, so prompts
    do not share initial noise)."""

    kind: str = "range"
    start: int = 0
    seeds: tuple[int, ...] = ()

    def seeds_for(self, prompt_id: str, n: int) -> list[int]:
        if self.kind == "range":
            return [self.start + i for i in range(n)]
        if self.kind == "fixed":
            if n > len(self.seeds):
                raise SuiteError(f"seed policy 'fixed' lists {len(self.seeds)} seeds but {n} images per "
                                 f"prompt were asked for; list more seeds or lower images per prompt")
            return list(self.seeds[:n])
        out = []
        for i in range(n):
            h = hashlib.sha256(f"{prompt_id}:{self.start}:{i}".encode()).hexdigest()
            out.append(int(h[:8], 16) & _SEED_MAX)
        return out

    def to_dict(self) -> dict:
        if self.kind == "fixed":
            return {"kind": "fixed", "seeds": list(self.seeds)}
        return {"kind": self.kind, "start": self.start}

    @staticmethod
    def from_dict(d: dict, where: Where | None = None) -> SeedPolicy:
        where = where or Where("<seed policy>")
        if not isinstance(d, dict):
            raise where.error("seeds: expected a mapping like {kind: range, start: 0}")
        kind = require(d, "kind", where, "seeds")
        if kind not in SEED_KEYS:
            raise where.key(d, "kind").error(f"unknown seed policy {kind!r}{suggest(kind, SEED_KEYS)} "
                                             f"(valid: {', '.join(SEED_KEYS)})")
        check_keys(d, SEED_KEYS[kind], where, f"seeds of kind {kind}")
        if kind == "fixed":
            seeds = require(d, "seeds", where, "seeds")
            w = where.key(d, "seeds")
            if not isinstance(seeds, list) or not seeds:
                raise w.error("expected a non-empty list of integer seeds")
            vals = tuple(check_int(s, w.item(seeds, i), minimum=0) for i, s in enumerate(seeds))
            if len(set(vals)) != len(vals):
                raise w.error("seeds repeat; each image of a prompt needs its own seed")
            return SeedPolicy("fixed", 0, vals)
        start = check_int(d.get("start", 0), where.key(d, "start"), minimum=0)
        return SeedPolicy(kind, start)


@dataclass
class PromptSuite:
    name: str
    version: str
    description: str
    seed_policy: SeedPolicy
    prompts: list[PromptSpec]
    reference: str | None = None
    images_per_prompt: int = 1
    source: str = "<memory>"
    includes: list[str] = field(default_factory=list)
    # Prompts brought in by ``include`` keep the seed policy of the suite that defines them, so an
    # including suite draws the same images as the included one.
    included_policies: dict[str, SeedPolicy] = field(default_factory=dict)

    def policy_for(self, prompt_id: str) -> SeedPolicy:
        return self.included_policies.get(prompt_id, self.seed_policy)

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(p.category for p in self.prompts))

    def content(self) -> dict:
        """The normalised content the hash covers (the description and formatting are left out)."""
        return {"name": self.name, "version": self.version, "reference": self.reference,
                "seed_policy": self.seed_policy.to_dict(), "images_per_prompt": self.images_per_prompt,
                "prompts": [p.to_dict() for p in self.prompts],
                **({"included_seed_policies": {k: v.to_dict() for k, v in sorted(self.included_policies.items())}}
                   if self.included_policies else {})}

    @property
    def hash(self) -> str:
        blob = json.dumps(self.content(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def n_images(self, images_per_prompt: int | None = None) -> int:
        return sum(p.n_images(images_per_prompt) for p in self.prompts)

    def select(self, limit: int | None = None) -> list[PromptSpec]:
        """The first ``limit`` prompts taken round-robin across categories (all when None), so a
        limited run still covers every category; order is deterministic."""
        if limit is None or limit >= len(self.prompts):
            return list(self.prompts)
        by_cat: dict[str, list[PromptSpec]] = {}
        for p in self.prompts:
            by_cat.setdefault(p.category, []).append(p)
        chosen: set[str] = set()
        for row in itertools.zip_longest(*by_cat.values()):
            for p in row:
                if p is not None and len(chosen) < limit:
                    chosen.add(p.prompt_id)
        return [p for p in self.prompts if p.prompt_id in chosen]

    def plan(self, images_per_prompt: int | None = None, limit: int | None = None
             ) -> list[tuple[PromptSpec, int]]:
        """(prompt, seed) pairs to generate, in suite order."""
        return [(p, s) for p in self.select(limit)
                for s in self.policy_for(p.prompt_id).seeds_for(p.prompt_id, p.n_images(images_per_prompt))]

    def summary(self) -> dict:
        cats = {}
        for p in self.prompts:
            c = cats.setdefault(p.category, {"prompts": 0, "images": 0})
            c["prompts"] += 1
            c["images"] += p.n_images()
        return {"name": self.name, "version": self.version, "hash": self.hash, "reference": self.reference,
                "prompts": len(self.prompts), "images": self.n_images(), "categories": cats,
                "seed_policy": self.seed_policy.to_dict(), "images_per_prompt": self.images_per_prompt}


# ----------------------------------------------------------------------------------- size limit
MAX_SUITE_IMAGES = 1_000_000  # images one run of a suite may plan, unless --allow-large
MAX_SUITE_PROMPTS = 1_000_000  # prompts a suite may expand to (templates and includes together)


def suite_size_problem(suite: PromptSuite, images_per_prompt: int | None = None, limit: int | None = None,
                       *, max_images: int = MAX_SUITE_IMAGES) -> str | None:
    """Why a run of ``suite`` would be too large to plan (``None`` when within ``max_images``);
    counted from the prompts' sizes, before any (prompt, seed) pair is built."""
    prompts = suite.select(limit)
    n = sum(p.n_images(images_per_prompt) for p in prompts)
    if n <= max_images:
        return None
    return (f"suite {suite.name} ({suite.source}): {n:,} images from {len(prompts):,} prompts is more than the "
            f"{max_images:,}-image limit; lower images_per_prompt or slot weights, pass --limit, or pass "
            "--allow-large")


def check_suite_size(suite: PromptSuite, images_per_prompt: int | None = None, limit: int | None = None,
                     *, allow_large: bool = False) -> None:
    """Raise a one-line :class:`SuiteError` when a run would plan more than :data:`MAX_SUITE_IMAGES`
    images and ``allow_large`` is not set."""
    problem = None if allow_large else suite_size_problem(suite, images_per_prompt, limit)
    if problem:
        raise SuiteError(problem)


# ----------------------------------------------------------------------------------- loading
def builtin_names() -> list[str]:
    root = resources.files(BUILTIN_PACKAGE) / BUILTIN_DIR
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _resolve(ref: str, base: Path | None) -> Path:
    p = Path(ref)
    if base is not None and not p.is_absolute() and (base / p).is_file():
        return base / p
    if p.is_file():
        return p
    names = builtin_names()
    if ref in names:
        return Path(str(resources.files(BUILTIN_PACKAGE) / BUILTIN_DIR / f"{ref}.yaml"))
    raise SuiteError(f"no suite {ref!r}: not a file and not a built-in suite{suggest(ref, names)} "
                     f"(built-in: {', '.join(names)})")


def load_suite(ref: str | Path, _stack: tuple[str, ...] = ()) -> PromptSuite:
    """Load and expand a suite by built-in name or path. Raises SuiteError (an InputError)."""
    path = _resolve(str(ref), None) if not _stack else Path(ref)
    if path.suffix.lower() == ".csv":  # a red-team prompt set (I2P format): evals.suites.redteam
        return load_redteam_csv(path)
    key = str(path.resolve())
    if key in _stack:
        raise SuiteError(f"{path}: include cycle: {' -> '.join([*_stack, key])}")
    try:
        check_yaml_file(path)  # before reading: a suite is small
        text = read_user_text(path, "suite", "save the suite as UTF-8 YAML")
    except OSError as e:
        raise SuiteError(f"{path}: cannot read suite: {e.strerror}") from None
    return parse_suite(text, str(path), base=path.parent, _stack=(*_stack, key))


def load_redteam_csv(path: str | Path, images_per_prompt: int = 1) -> PromptSuite:
    """A suite from a red-team CSV (``evals.suites.redteam``): each prompt with an ``sd_seed`` draws
    seeds sd_seed, sd_seed + 1, ...; the others the range policy from 0."""
    from t2i_audit.evals.suites.redteam import read_redteam_csv

    name, prompts, seeds = read_redteam_csv(path, images_per_prompt)
    return PromptSuite(name=name, version="1", description=f"red-team prompts from {Path(path).name}",
                       seed_policy=SeedPolicy("range", 0), prompts=prompts,
                       images_per_prompt=images_per_prompt, source=str(path),
                       included_policies={k: SeedPolicy("range", s) for k, s in seeds.items()})


def parse_suite(text: str, source: str = "<string>", base: Path | None = None,
                _stack: tuple[str, ...] = ()) -> PromptSuite:
    data = load_yaml(text, source)
    w = Where(source, getattr(data, "line", 1))
    check_keys(data, SUITE_KEYS, w, "a suite")
    name = check_str(require(data, "name", w, "a suite"), w.key(data, "name"))
    if not NAME_RE.match(name):
        raise w.key(data, "name").error(f"suite name {name!r} must be lower-case letters, digits, '-', '_' or '.'")
    version = check_str(data.get("version", "1"), w.key(data, "version"))
    ipp = check_int(data.get("images_per_prompt", 1), w.key(data, "images_per_prompt"), minimum=1)
    policy = SeedPolicy.from_dict(data.get("seeds", {"kind": "range", "start": 0}), w.key(data, "seeds"))
    reference = data.get("reference")
    if reference is not None:
        reference = check_str(reference, w.key(data, "reference"))
    slots_node = data.get("slots", {}) or {}
    if not isinstance(slots_node, dict):
        raise w.key(data, "slots").error("expected a mapping of slot name to a list of values")
    suite_slots = {}
    for k, v in slots_node.items():
        if not IDENT_RE.match(str(k)):
            raise w.key(data, "slots").key(slots_node, k).error(f"slot name {k!r} must be an identifier")
        suite_slots[k] = slot_values(v, w.key(data, "slots").key(slots_node, k))
    prompts: list[PromptSpec] = []
    includes = data.get("include", []) or []
    if isinstance(includes, (str, dict)):
        includes = [includes]
    wi = w.key(data, "include")
    included_names = []
    included_policies: dict[str, SeedPolicy] = {}
    for i, inc in enumerate(includes):
        wii = wi.item(includes, i) if isinstance(includes, LList) else wi
        cats, inc_ipp = None, None
        if isinstance(inc, dict):
            check_keys(inc, INCLUDE_KEYS, wii, "an include")
            cats = inc.get("categories")
            inc_ipp = inc.get("images_per_prompt")
            if inc_ipp is not None and (isinstance(inc_ipp, bool) or not isinstance(inc_ipp, int) or inc_ipp < 1):
                raise wii.error(f"images_per_prompt: expected a whole number >= 1, got {inc_ipp!r}")
            inc = require(inc, "suite", wii, "an include")
        ref = check_str(inc, wii)
        try:
            sub = load_suite(_resolve(ref, base), _stack)
        except SuiteError as e:
            raise wii.error(f"in included suite {ref!r}: {e}") from None
        sub_prompts = sub.prompts
        if cats is not None:
            if not isinstance(cats, list):
                raise wii.error("categories: expected a list")
            for c in cats:
                if c not in sub.categories:
                    raise wii.error(f"suite {sub.name!r} has no category {c!r}{suggest(c, sub.categories)}")
            sub_prompts = [p for p in sub_prompts if p.category in cats]
        if inc_ipp is not None:  # the including suite sets the images per prompt of what it includes
            sub_prompts = [dataclasses.replace(p, images_per_prompt=inc_ipp) for p in sub_prompts]
        prompts.extend(sub_prompts)
        for p in sub_prompts:
            included_policies[p.prompt_id] = sub.policy_for(p.prompt_id)
        included_names.append(f"{sub.name}@{sub.hash}")
    templates = data.get("templates", []) or []
    wt = w.key(data, "templates")
    if not isinstance(templates, list):
        raise wt.error("expected a list of templates")
    for i, t in enumerate(templates):
        prompts.extend(expand_template(t, wt.item(templates, i), name, suite_slots, ipp))
        if len(prompts) > MAX_SUITE_PROMPTS:
            raise wt.item(templates, i).error(f"the suite expands to more than {MAX_SUITE_PROMPTS:,} prompts "
                                              "(the limit); use fewer templates or slot values")
    if not prompts:
        raise w.error("the suite is empty: add 'templates:' or 'include:'")
    seen: dict[str, PromptSpec] = {}
    for p in prompts:
        if p.prompt_id in seen:
            raise w.error(f"duplicate prompt {p.text!r} (id {p.prompt_id}) from template {p.template!r} "
                          f"in categories {seen[p.prompt_id].category!r} and {p.category!r}; "
                          f"make the templates or slot values differ")
        seen[p.prompt_id] = p
    return PromptSuite(name=name, version=version, description=str(data.get("description", "")).strip(),
                       seed_policy=policy, prompts=prompts, reference=reference, images_per_prompt=ipp,
                       source=source, includes=included_names, included_policies=included_policies)
