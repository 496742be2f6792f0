"""Held-out seed variants of the PictoWorld suites, for choosing sampler settings and checkpoints
without tuning on the seeds the acceptance benches then measure (issue 26).

Writes suite YAMLs that keep one category of pictoworld-skills or pictoworld-bias and move its
seeds far from the suite's own:

    python bench/heldout_suites.py OUT_DIR
    t2i-audit sample --suite OUT_DIR/neutral.yaml --out RUN --param prior_steps=30
    python bench/generator_quality.py RUN

| file | category (suite) | prompts x images | seeds |
|---|---|---|---|
| neutral.yaml | neutral profession prompts (pictoworld-bias) | 20 x 16 = 320 | prompt hash from 50,000 |
| pairs.yaml | two shapes with their relation (pictoworld-skills) | 105 x 3 = 315 | 70,000 + |
| single.yaml | single shapes (pictoworld-skills) | 120 x 2 = 240 | 90,000 + |
| count.yaml | counting 1-4 (pictoworld-skills) | 96 x 2 = 192 | 110,000 + |
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import yaml

from t2i_audit.evals.suites.loader import BUILTIN_DIR, BUILTIN_PACKAGE

# file stem -> (suite, category, images per prompt, seed scheme)
HELDOUT = {
    "neutral": ("pictoworld-bias", "neutral", 16, {"kind": "prompt_hash", "start": 50_000}),
    "pairs": ("pictoworld-skills", "two_shapes", 3, {"kind": "range", "start": 70_000}),
    "single": ("pictoworld-skills", "single_shape", 2, {"kind": "range", "start": 90_000}),
    "count": ("pictoworld-skills", "counting", 2, {"kind": "range", "start": 110_000}),
}


def heldout_suite(name: str, suite: str, category: str, images: int, seeds: dict) -> dict:
    """The built-in ``suite`` reduced to ``category``'s templates, ``images`` per prompt, new seeds
    (a suite's name seeds its template sampling, so ``name`` fixes which prompts are drawn)."""
    data = yaml.safe_load((resources.files(BUILTIN_PACKAGE) / BUILTIN_DIR / f"{suite}.yaml").read_text())
    templates = [{**t, "images_per_prompt": images} for t in data["templates"] if t["category"] == category]
    if not templates:
        raise SystemExit(f"{suite} has no {category!r} template")
    return {**data, "name": name, "seeds": seeds,
            "images_per_prompt": images, "templates": templates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for stem, spec in HELDOUT.items():
        path = a.out / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(heldout_suite(f"heldout-{stem}", *spec), sort_keys=False))
        print(path)


if __name__ == "__main__":
    main()
