"""Red-teaming prompt sets from a local CSV (``loader.load_suite`` makes a PromptSuite of it): the
I2P format (Schramowski et al., CVPR 2023, "Safe Latent Diffusion": ``prompt``, ``categories``, ``hard``,
``inappropriate_percentage``, ``nudity_percentage``, ``sd_seed``, ``sd_guidance``, ...) or any CSV
with ``prompt`` and ``categories`` (or ``category``).

- category = the first of the comma-separated ``categories`` (the audit's group); all of them are
  the prompt's tags and its slot ``categories``;
- seeds: a row with ``sd_seed`` draws seeds ``sd_seed, sd_seed + 1, ...`` (the first image uses the
  published seed); rows without one use the suite's range policy from 0;
- ``sd_guidance`` and the other I2P columns are kept as slots (``sd_guidance``, ``hard``, ...),
  recorded in the run's manifest; the generator's guidance is still set run-wide by ``--param``.

No prompt text of this kind ships with the package: the user supplies the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from t2i_audit.errors import InputError

KEEP = (
    "hard",
    "inappropriate_percentage",
    "nudity_percentage",
    "q16_percentage",
    "sd_safety_percentage",
    "prompt_toxicity",
    "sd_guidance",
    "sd_image_width",
    "sd_image_height",
)


def _number(v: str):
    v = (v or "").strip()
    if not v:
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v else f


def _seed(v: str, where: str) -> int | None:
    f = _number(v)
    if f is None:
        return None
    if isinstance(f, str):
        raise InputError(f"{where}: sd_seed {f!r} is not an integer; fix or empty it")
    if not float(f).is_integer() or not 0 <= f < 2**31:
        raise InputError(f"{where}: sd_seed {v.strip()!r} must be a whole number in [0, 2^31)")
    return int(f)


def read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """The CSV's rows and columns; one-line InputErrors for encoding and missing columns."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 (byte {e.start}); re-save the CSV as UTF-8") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    reader = csv.DictReader(io.StringIO(text))
    cols = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = cols
    cat = "categories" if "categories" in cols else "category" if "category" in cols else None
    if "prompt" not in cols or cat is None:
        raise InputError(
            f"{path}: a red-team CSV needs columns 'prompt' and 'categories' (has "
            f"{', '.join(cols) or 'none'})"
        )
    return list(reader), cols


def read_redteam_csv(path: str | Path, images_per_prompt: int = 1) -> tuple[str, list, dict[str, int]]:
    """(suite name, PromptSpecs, prompt id -> first seed) from an I2P-format (or any
    prompt,categories) CSV; ``loader.load_suite`` turns them into a PromptSuite (module doc)."""
    from t2i_audit.evals.suites.templates import PromptSpec

    path = Path(path)
    rows, cols = read_rows(path)
    name = "redteam-" + (re.sub(r"[^a-z0-9_.-]+", "-", path.stem.lower()).strip("-.") or "prompts")
    cat_col = "categories" if "categories" in cols else "category"
    prompts, policies, seen = [], {}, set()
    for line, r in enumerate(rows, start=2):
        text = (r.get("prompt") or "").strip()
        where = f"{path}:{line}"
        if not text:
            raise InputError(f"{where}: empty prompt; fill or delete the row")
        cats = [c.strip() for c in (r.get(cat_col) or "").split(",") if c.strip()] or ["uncategorised"]
        seed = _seed(r.get("sd_seed", ""), where) if "sd_seed" in cols else None
        slots = {"categories": cats, **{k: _number(r.get(k, "")) for k in KEEP if k in cols}}
        if seed is not None:
            slots["sd_seed"] = seed
        key = f"{text}\x00{seed}\x00{slots.get('sd_guidance')}"
        pid = hashlib.sha256(key.encode()).hexdigest()[:12]
        if pid in seen:  # the same prompt, seed and guidance twice: one prompt
            continue
        seen.add(pid)
        tags = tuple(cats) + (("hard",) if str(slots.get("hard")) in ("1", "True", "true") else ())
        prompts.append(
            PromptSpec(
                prompt_id=pid,
                suite=name,
                category=cats[0],
                template=text,
                slots=slots,
                text=text,
                tags=tags,
                images_per_prompt=images_per_prompt,
            )
        )
        if seed is not None:
            policies[pid] = seed
    if not prompts:
        raise InputError(f"{path}: no prompts; add rows under the header")
    return name, prompts, policies
