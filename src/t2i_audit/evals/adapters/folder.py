"""The image-folder generator adapter (``--generator folder:DIR``): images made elsewhere (a closed
model, an API), listed in a CSV of ``prompt``, ``path`` and optionally ``seed``. Part of the adapter
protocol in :mod:`t2i_audit.evals.adapters.registry`, which re-exports it."""

from __future__ import annotations

import os
from pathlib import Path

from t2i_audit.core.images import ImageTooLargeError, open_image
from t2i_audit.core.io import read_user_text, sha256_file
from t2i_audit.errors import InputError
from t2i_audit.evals.suites.schema import suggest

FOLDER_COLUMNS = ("prompt", "seed", "path")
FOLDER_MODES = ("RGB", "RGBA", "L", "LA", "P")


class FolderAdapter:
    """Images made elsewhere (a closed model, an API): a folder with a CSV of ``prompt``, ``path``
    and optionally ``seed``. No generator runs; the suite's (prompt, seed) pairs are matched to rows by
    exact prompt text and seed, or, without a seed column, the k-th row of a prompt (in CSV order)
    serves the prompt's k-th seed."""

    kind = "folder"

    def __init__(self, target: str, *, allow_outside: bool = False):
        p = Path(target).expanduser()
        # Images must lie inside this folder (after following links) unless allow_outside.
        self.root = (p if p.is_dir() else p.absolute().parent).resolve()
        self.allow_outside = allow_outside
        if p.is_dir():
            csvs = sorted(p.glob("*.csv"))
            if (p / "manifest.csv").is_file():
                csvs = [p / "manifest.csv"]
            if len(csvs) != 1:
                raise InputError(f"folder:{target}: expected manifest.csv (or exactly one .csv) in the "
                                 f"folder, found {len(csvs)}")
            p = csvs[0]
        if not p.is_file():
            raise InputError(f"folder:{target}: no such folder or CSV file")
        self.csv = p.resolve()
        self.id = f"folder:{self.csv.parent}"
        self.rows = self._read()
        self._check_images()
        self.has_seed = any(r[1] is not None for r in self.rows)
        self._map: dict[tuple[str, int], Path] = {}
        self.unmatched_prompts: list[str] = []

    def _read(self) -> list[tuple[str, int | None, Path]]:
        import csv
        import io

        text = read_user_text(self.csv, f"folder:{self.csv}", "save the CSV (prompt,path[,seed]) as UTF-8")
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            # Other columns (prompt_id, category, ...) are ignored, unless one looks like a misspelt
            # column we read.
            for c in cols:
                close = suggest(c, FOLDER_COLUMNS)
                if c not in FOLDER_COLUMNS and close and close.split("'")[1] not in cols:
                    raise InputError(f"{self.csv}: unknown column {c!r}{close} "
                                     f"(columns: prompt, path, optional seed)")
            for c in ("prompt", "path"):
                if c not in cols:
                    raise InputError(f"{self.csv}: missing column {c!r} (columns: prompt, path, optional seed)")
            rows = []
            for i, r in enumerate(reader, start=2):
                seed = (r.get("seed") or "").strip()
                if seed and not seed.lstrip("-").isdigit():
                    raise InputError(f"{self.csv}:{i}: seed {seed!r} is not an integer")
                if r["path"] is None or r["prompt"] is None:  # a short row: csv fills the missing with None
                    raise InputError(f"{self.csv}:{i}: the row has fewer fields than the header; every "
                                     "row needs its prompt and path")
                path = Path(r["path"])
                path = path if path.is_absolute() else self.csv.parent / path
                self._check_inside(path, r["path"], i)
                rows.append((r["prompt"], int(seed) if seed else None, path))
        if not rows:
            raise InputError(f"{self.csv}: no rows")
        return rows

    def _check_inside(self, path: Path, given: str, line: int) -> None:
        """Refuse a row whose path (``..``, an absolute path, or a symlink followed) leaves the folder."""
        if self.allow_outside:
            return
        real = path.resolve()
        if not real.is_relative_to(self.root):
            via = " through a symlink" if path.absolute() != real and Path(os.path.abspath(path)).is_relative_to(
                self.root) else ""
            raise InputError(f"{self.csv}:{line}: path {given!r} resolves{via} to {real}, outside the folder "
                             f"{self.root}; move the image into the folder or pass --allow-outside")

    def _check_images(self) -> None:
        """Every image the CSV names and the folder holds must decode, in a mode that converts to RGB
        faithfully, at one size; checked before a run directory is touched. Absent files are
        reported by :meth:`prepare` (or skipped with --skip-missing)."""
        from PIL import UnidentifiedImageError

        sizes: dict[tuple[int, int], Path] = {}
        for _, _, path in self.rows:
            if not path.is_file():
                continue
            try:
                with open_image(path, f"{self.csv}: image") as im:
                    im.load()
                    mode, size = im.mode, im.size
            except ImageTooLargeError:
                raise
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise InputError(f"{self.csv}: image {path} does not decode ({str(e)[:80]}); re-export it as "
                                 f"PNG or remove its row") from None
            if mode not in FOLDER_MODES:
                raise InputError(f"{self.csv}: image {path} has mode {mode}; save it as 8-bit RGB "
                                 f"(modes accepted: {', '.join(FOLDER_MODES)})")
            sizes.setdefault(size, path)
            if len(sizes) > 1:
                (a, pa), (b, pb) = list(sizes.items())[:2]
                raise InputError(f"{self.csv}: images differ in size ({pa} is {a[0]}x{a[1]}, {pb} is "
                                 f"{b[0]}x{b[1]}); a run's images come from one model at one size: resize or "
                                 f"drop the odd ones")

    def config(self) -> dict:
        return {"csv": str(self.csv), "csv_sha256": sha256_file(self.csv)[:16], "rows": len(self.rows),
                "matched_by": "prompt+seed" if self.has_seed else "prompt+order"}

    def prepare(self, pairs: list[tuple[str, int]]) -> list[bool]:
        by_prompt: dict[str, list] = {}
        for prompt, seed, path in self.rows:
            by_prompt.setdefault(prompt, []).append((seed, path))
        self._map = {}
        if self.has_seed:
            for prompt, rows in by_prompt.items():
                for seed, path in rows:
                    self._map[(prompt, seed)] = path
        else:
            seen: dict[str, int] = {}
            for prompt, seed in pairs:
                k = seen.get(prompt, 0)
                seen[prompt] = k + 1
                if k < len(by_prompt.get(prompt, ())):
                    self._map[(prompt, int(seed))] = by_prompt[prompt][k][1]
        wanted = {p for p, _ in pairs}
        self.unmatched_prompts = [p for p in by_prompt if p not in wanted]
        covered = [(p, int(s)) in self._map for p, s in pairs]
        for (p, s), ok in zip(pairs, covered):
            if ok and not self._map[(p, int(s))].is_file():
                raise InputError(f"{self.csv}: image {self._map[(p, int(s))]} for prompt {p!r} does not exist")
        return covered

    def __call__(self, prompts, seeds, params):
        if not self._map:
            self.prepare(list(zip(prompts, seeds)))
        out = []
        for p, s in zip(prompts, seeds):
            path = self._map.get((p, int(s)))
            if path is None:
                raise InputError(f"{self.csv}: no image for prompt {p!r} seed {s}")
            with open_image(path, f"{self.csv}: image") as im:
                out.append(im.convert("RGB"))
        return out
