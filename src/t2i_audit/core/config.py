"""One config base for every settings dataclass: dict and JSON round trips, unknown keys refused.

A config class is a ``@dataclass`` that also derives from :class:`ConfigBase`. It gets

- ``to_dict()``: plain JSON types (tuples become lists, paths strings);
- ``to_json()``: ``json.dumps`` of that (``JSON_INDENT``, ``JSON_SORT_KEYS`` keep a file's bytes);
- ``from_dict(d, source)``: the inverse; an unknown key raises :class:`~t2i_audit.errors.InputError`
  naming the class, a did-you-mean and the valid keys; a missing required key names it; lists
  come back as tuples and strings as paths where the field is annotated so;
- ``from_json(text, source)``, ``load(path)`` and ``save(path)`` (an atomic write).

The conversions read the field annotations as text (``tuple[...]``, ``Path``), so they work with
``from __future__ import annotations`` and never evaluate an annotation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePath
from typing import ClassVar

from t2i_audit.errors import InputError, did_you_mean


def read_config_json(path: str | Path) -> dict:
    """The dict a config JSON file holds, with one-line errors for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file missing; a checkpoint needs one JSON per component")
    try:
        from t2i_audit.core.io import read_user_text

        data = json.loads(read_user_text(p, "config JSON", "save it as UTF-8 JSON"))
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return data


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    return value


def _typed(annotation: str, value):
    """A JSON value back as the field's annotated type: list -> tuple, str -> Path."""
    ann = str(annotation).replace(" ", "")
    if isinstance(value, list) and (ann.startswith("tuple[") or ann.startswith("Tuple[")):
        return tuple(value)
    if isinstance(value, str) and ann.split("|")[0] in ("Path", "pathlib.Path"):
        return Path(value)
    return value


class ConfigBase:
    """Mixin for settings dataclasses (see the module doc)."""

    JSON_INDENT: ClassVar[int | None] = None
    JSON_SORT_KEYS: ClassVar[bool] = True

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=self.JSON_INDENT, sort_keys=self.JSON_SORT_KEYS)

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>"):
        if not isinstance(d, dict):
            raise InputError(f"{source}: expected a mapping of {cls.__name__} keys, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields), key=str)
        if unknown:
            raise InputError(f"{source}: unknown key {unknown[0]!r} for {cls.__name__}"
                             f"{did_you_mean(unknown[0], fields)}; valid keys: {', '.join(sorted(fields))}")
        required = [n for n, f in fields.items() if f.init and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING and n not in d]
        if required:
            raise InputError(f"{source}: {cls.__name__} needs the key {required[0]!r}; "
                             f"required keys: {', '.join(required)}")
        return cls(**{k: _typed(fields[k].type, v) for k, v in d.items()})

    @classmethod
    def from_json(cls, text: str, source: str = "<json>"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}: not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(read_config_json(path), str(path))

    def save(self, path: str | Path) -> None:
        from t2i_audit.core.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n", fsync=False)
