"""A suite derived from another by perturbations (:mod:`.perturb`), paired with it by seed.

Each (source prompt, perturbation) gives one derived prompt ``<source id>~<perturbation slug>`` with
the source's category, images per prompt and **seeds** (the source's seed policy applied to the
source id), so its images pair with the source run's by (source prompt, seed). A derived prompt whose
text did not change is not sampled (its images would equal the source's); it is recorded as
unchanged, and a perturbation that changes no prompt at all is reported as such.

The prompt table (``RUN/perturb/prompts.parquet``: prompt_id, source_prompt_id, perturbation,
changed, source_text, text, changes, category) and ``RUN/perturb/perturb.json`` record what was done;
the manifest's tags carry ``perturbation=...`` and ``source_prompt_id=...`` too.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from t2i_audit.errors import InputError
from t2i_audit.evals.suites.loader import PromptSuite
from t2i_audit.evals.suites.perturb import Perturbation, map_words, parse_perturbation, prompt_rng
from t2i_audit.evals.suites.templates import PromptSpec

PERTURB_SCHEMA = "t2i-audit/perturb/1"
TABLE_COLUMNS = ("prompt_id", "source_prompt_id", "perturbation", "changed", "category", "source_text",
                 "text", "changes")


def _swap_value(v, mapping: dict[str, str]):
    if isinstance(v, str):
        return mapping.get(v.lower(), v)
    if isinstance(v, dict):
        return {k: _swap_value(x, mapping) for k, x in v.items()}
    if isinstance(v, list):
        return [_swap_value(x, mapping) for x in v]
    return v


def _swap_tag(tag: str, mapping: dict[str, str]) -> str:
    key, sep, val = tag.partition("=")
    return f"{key}={mapping.get(val.lower(), val)}" if sep else tag


def derive(p: PromptSpec, pert: Perturbation, seed: int) -> tuple[PromptSpec, list]:
    """The perturbed prompt of ``p`` and the list of changes (empty: unchanged)."""
    text, changes = pert.apply(p.text, prompt_rng(seed, p.prompt_id, pert))
    slots, expect, tags = dict(p.slots), p.expect, list(p.tags)
    if pert.changes_meaning and changes:
        m = pert.word_map()
        slots = {k: map_words(v, m)[0] if isinstance(v, str) else v for k, v in slots.items()}
        expect = _swap_value(p.expect, m) if p.expect is not None else None
        tags = [_swap_tag(t, m) for t in tags]
    tags += [f"perturbation={pert.label}", f"source_prompt_id={p.prompt_id}"]
    new = dataclasses.replace(p, prompt_id=f"{p.prompt_id}~{pert.slug}", text=text, slots=slots,
                              expect=expect, tags=tuple(tags))
    return new, changes


@dataclass
class PerturbedSuite(PromptSuite):
    """A PromptSuite whose prompts are perturbations of ``source``'s, drawing the source's seeds."""

    source_suite: PromptSuite | None = None
    perturbations: tuple[Perturbation, ...] = ()
    perturb_seed: int = 0
    records: list[dict] = field(default_factory=list)  # one per (source prompt, perturbation)
    source_of: dict[str, str] = field(default_factory=dict)  # derived id -> source id

    def content(self) -> dict:
        return {**super().content(), "perturb": {"source_hash": self.source_suite.hash,
                                                 "perturbations": [p.label for p in self.perturbations],
                                                 "seed": self.perturb_seed}}

    def select(self, limit: int | None = None) -> list[PromptSpec]:
        """The derivatives of the source prompts ``source.select(limit)`` picks, so a perturbed run
        with ``--limit N`` pairs with a source run sampled with the same ``--limit N``."""
        chosen = {p.prompt_id for p in self.source_suite.select(limit)}
        return [p for p in self.prompts if self.source_of[p.prompt_id] in chosen]

    def plan(self, images_per_prompt: int | None = None, limit: int | None = None) -> list[tuple[PromptSpec, int]]:
        out = []
        for p in self.select(limit):
            src = self.source_of[p.prompt_id]
            seeds = self.source_suite.policy_for(src).seeds_for(src, p.n_images(images_per_prompt))
            out += [(p, s) for s in seeds]
        return out

    def counts(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in self.records:
            c = out.setdefault(r["perturbation"], {"prompts": 0, "changed": 0, "unchanged": 0})
            c["prompts"] += 1
            c["changed" if r["changed"] else "unchanged"] += 1
        return out

    def notes(self) -> list[str]:
        """One line per perturbation that left prompts unchanged (all of them: 'changes nothing')."""
        out = []
        for label, c in self.counts().items():
            if c["changed"] == 0:
                out.append(f"perturbation {label} changes nothing: 0 of {c['prompts']} prompts differ")
            elif c["unchanged"]:
                out.append(f"perturbation {label}: {c['unchanged']} of {c['prompts']} prompts unchanged "
                           "(not sampled; their images would equal the source's)")
        return out


def perturb_suite(source: PromptSuite, specs, seed: int = 0) -> PerturbedSuite:
    """Derive a PerturbedSuite from ``source`` with each perturbation in ``specs`` (names or objects)."""
    perts = tuple(s if isinstance(s, Perturbation) else parse_perturbation(s) for s in specs)
    if not perts:
        raise InputError("perturb: no perturbation given; e.g. --perturb typo:0.05")
    labels = [p.label for p in perts]
    if len(set(labels)) != len(labels):
        raise InputError(f"--perturb: {labels} lists one perturbation twice; give each once")
    prompts, records, source_of = [], [], {}
    for src in source.prompts:
        for pert in perts:
            new, changes = derive(src, pert, seed)
            changed = new.text != src.text
            records.append({"prompt_id": new.prompt_id, "source_prompt_id": src.prompt_id,
                            "perturbation": pert.label, "changed": changed, "category": src.category,
                            "source_text": src.text, "text": new.text,
                            "changes": json.dumps([str(c) for c in changes], ensure_ascii=False)})
            if changed:
                prompts.append(new)
                source_of[new.prompt_id] = src.prompt_id
    suite = PerturbedSuite(
        name=source.name, version=source.version, description=source.description,
        seed_policy=source.seed_policy, prompts=prompts, reference=source.reference,
        images_per_prompt=source.images_per_prompt, source=source.source, includes=list(source.includes),
        included_policies={}, source_suite=source, perturbations=perts, perturb_seed=seed, records=records,
        source_of=source_of)
    if not prompts:
        raise InputError(f"--perturb {', '.join(labels)}: changes nothing in suite {source.name!r} "
                         f"({len(source.prompts)} prompts); choose a perturbation that applies to its words")
    return suite


def write_prompt_table(run_dir: str | Path, suite: PerturbedSuite) -> Path:
    """RUN/perturb/prompts.parquet and perturb.json: what each perturbation did to each prompt."""
    import pandas as pd

    from t2i_audit.core.io import atomic_write_json, atomic_write_parquet

    out = Path(run_dir) / "perturb"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(out / "prompts.parquet", pd.DataFrame(suite.records, columns=list(TABLE_COLUMNS)))
    atomic_write_json(out / "perturb.json", {
        "schema": PERTURB_SCHEMA, "source_suite": {"name": suite.source_suite.name,
                                                   "hash": suite.source_suite.hash},
        "perturbations": [p.label for p in suite.perturbations], "seed": suite.perturb_seed,
        "counts": suite.counts(), "notes": suite.notes()})
    return out
