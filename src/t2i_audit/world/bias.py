"""Bias spec: P(presentation, skin | profession) for captions that leave them unsaid.

This is the *planted* bias of PictoWorld. A spec is YAML; each profession gives either independent
marginals (``presentation:`` and ``skin:``) or a ``joint:`` table (presentation -> skin -> p).
It is validated with errors that name the file, the key and the fix, and versioned by a content
hash of its normalised form (formatting and key order do not change the hash).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from t2i_audit.core.io import read_user_text
from t2i_audit.core.safe_yaml import safe_load as bounded_yaml
from t2i_audit.errors import InputError
from t2i_audit.errors import did_you_mean as _suggest
from t2i_audit.world.vocab import PRESENTATIONS, PROFESSIONS, SKINS

TOLERANCE = 1e-6


class BiasSpecError(InputError):
    """A bias spec is malformed. The message names the file, the key and the fix."""


def _prob(where: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise BiasSpecError(f"{where}: probability must be a number, got {v!r}")
    if v < 0 or v > 1:
        raise BiasSpecError(f"{where}: probability {v} is outside [0, 1]")
    return float(v)


def _check_dist(where: str, dist, classes) -> dict[str, float]:
    if not isinstance(dist, dict):
        raise BiasSpecError(f"{where}: expected a mapping of {', '.join(classes)} to probabilities")
    out = {}
    for k, v in dist.items():
        if k not in classes:
            raise BiasSpecError(f"{where}: unknown class {k!r}{_suggest(k, classes)}; "
                                f"valid: {', '.join(classes)}")
        out[k] = _prob(f"{where}.{k}", v)
    missing = [c for c in classes if c not in out]
    if missing:
        raise BiasSpecError(f"{where}: missing {', '.join(missing)} (give every class, 0 if never)")
    total = sum(out.values())
    if abs(total - 1.0) > TOLERANCE:
        raise BiasSpecError(f"{where}: probabilities sum to {total:.6g}, not 1; rescale them")
    return out


@dataclass(frozen=True)
class BiasSpec:
    name: str
    version: str
    description: str
    # profession -> {(presentation, skin): p}
    joint: dict[str, dict[tuple[str, str], float]]
    source: str = "<memory>"

    # ------------------------------------------------------------------ loading
    @staticmethod
    def from_dict(data, source: str = "<memory>") -> BiasSpec:
        if not isinstance(data, dict):
            raise BiasSpecError(f"{source}: a bias spec is a mapping with keys name, version, professions")
        allowed = {"name", "version", "description", "professions"}
        for key in data:
            if key not in allowed:
                raise BiasSpecError(f"{source}: unknown key {key!r}{_suggest(key, allowed)}")
        profs = data.get("professions")
        if not isinstance(profs, dict) or not profs:
            raise BiasSpecError(f"{source}: 'professions' must map each profession to its distribution")
        joint: dict[str, dict[tuple[str, str], float]] = {}
        for prof, entry in profs.items():
            where = f"{source}: professions.{prof}"
            if prof not in PROFESSIONS:
                raise BiasSpecError(f"{source}: unknown profession {prof!r}{_suggest(prof, PROFESSIONS)}; "
                                    f"valid: {', '.join(PROFESSIONS)}")
            if not isinstance(entry, dict):
                raise BiasSpecError(f"{where}: expected 'presentation' and 'skin', or 'joint'")
            extra = set(entry) - {"presentation", "skin", "joint"}
            if extra:
                k = sorted(extra)[0]
                raise BiasSpecError(f"{where}: unknown key {k!r}"
                                    f"{_suggest(k, ['presentation', 'skin', 'joint'])}")
            if "joint" in entry:
                if {"presentation", "skin"} & set(entry):
                    raise BiasSpecError(f"{where}: give either 'joint' or the marginals, not both")
                table = entry["joint"]
                if not isinstance(table, dict):
                    raise BiasSpecError(f"{where}.joint: expected presentation -> skin -> probability")
                cells = {}
                for pres, row in table.items():
                    if pres not in PRESENTATIONS:
                        raise BiasSpecError(f"{where}.joint: unknown presentation {pres!r}"
                                            f"{_suggest(pres, PRESENTATIONS)}")
                    if not isinstance(row, dict):
                        raise BiasSpecError(f"{where}.joint.{pres}: expected skin -> probability")
                    for skin, p in row.items():
                        if skin not in SKINS:
                            raise BiasSpecError(f"{where}.joint.{pres}: unknown skin {skin!r}"
                                                f"{_suggest(skin, SKINS)}")
                        cells[(pres, skin)] = _prob(f"{where}.joint.{pres}.{skin}", p)
                for pres in PRESENTATIONS:
                    for skin in SKINS:
                        cells.setdefault((pres, skin), 0.0)
                total = sum(cells.values())
                if abs(total - 1.0) > TOLERANCE:
                    raise BiasSpecError(f"{where}.joint: cells sum to {total:.6g}, not 1; rescale them")
            else:
                for key in ("presentation", "skin"):
                    if key not in entry:
                        raise BiasSpecError(f"{where}: missing {key!r} (or give a 'joint' table)")
                pres = _check_dist(f"{where}.presentation", entry["presentation"], PRESENTATIONS)
                skin = _check_dist(f"{where}.skin", entry["skin"], SKINS)
                cells = {(p, s): pres[p] * skin[s] for p in PRESENTATIONS for s in SKINS}
            joint[prof] = cells
        missing = [p for p in PROFESSIONS if p not in joint]
        if missing:
            raise BiasSpecError(f"{source}: professions missing: {', '.join(missing)}; every profession "
                                "needs a distribution")
        return BiasSpec(
            name=str(data.get("name", Path(source).stem)),
            version=str(data.get("version", "0")),
            description=str(data.get("description", "")),
            joint=joint,
            source=source,
        )

    @staticmethod
    def load(path: str | Path | None = None) -> BiasSpec:
        """Load a spec file; ``None`` or ``"default"`` loads the bundled default spec."""
        if path is None or str(path) == "default":
            text = resources.files("t2i_audit.world").joinpath("default_bias.yaml").read_text()
            source = "default_bias.yaml"
        else:
            p = Path(path)
            if not p.is_file():
                raise BiasSpecError(f"{p}: bias spec file not found")
            text, source = read_user_text(p, "bias spec", "save the spec as UTF-8 YAML"), str(p)
        try:
            data = bounded_yaml(text, source)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise BiasSpecError(f"{source}:{line} is not valid YAML: {getattr(e, 'problem', e)}") from None
        return BiasSpec.from_dict(data, source)

    @staticmethod
    def uniform() -> BiasSpec:
        """The spec with no bias: presentation and skin uniform and independent for every profession.
        A decoder trained on it learns to draw what its CLIP embedding says, not the planted mode."""
        p, s = 1.0 / len(PRESENTATIONS), 1.0 / len(SKINS)
        return BiasSpec(name="uniform", version="1", description="no planted bias: every cell equal",
                        joint={prof: {(a, b): p * s for a in PRESENTATIONS for b in SKINS}
                               for prof in PROFESSIONS})

    # ------------------------------------------------------------------ queries
    def canonical(self) -> dict:
        return {
            "professions": {
                prof: {f"{p}|{s}": round(v, 12) for (p, s), v in sorted(cells.items())}
                for prof, cells in sorted(self.joint.items())
            }
        }

    @property
    def hash(self) -> str:
        """Content hash of the distributions (name/description/formatting excluded)."""
        blob = json.dumps(self.canonical(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def marginal(self, profession: str, attribute: str) -> dict[str, float]:
        """P(attribute | profession) for attribute in {'presentation', 'skin'}."""
        cells = self.joint[profession]
        idx, classes = (0, PRESENTATIONS) if attribute == "presentation" else (1, SKINS)
        return {c: sum(v for k, v in cells.items() if k[idx] == c) for c in classes}

    def sample(self, rng: random.Random, profession: str, presentation: str | None = None,
               skin: str | None = None) -> tuple[str, str]:
        """Draw (presentation, skin) given the profession and whatever is already fixed."""
        cells = [(k, v) for k, v in self.joint[profession].items()
                 if (presentation is None or k[0] == presentation) and (skin is None or k[1] == skin)]
        total = sum(v for _, v in cells)
        if total <= 0:  # the spec gives this combination zero mass: fall back to uniform
            cells = [(k, 1.0) for k, _ in cells]
            total = float(len(cells))
        r = rng.random() * total
        acc = 0.0
        for k, v in cells:
            acc += v
            if r < acc:
                return k
        return cells[-1][0]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "professions": {
                prof: {"joint": {p: {s: cells[(p, s)] for s in SKINS} for p in PRESENTATIONS}}
                for prof, cells in self.joint.items()
            },
        }
