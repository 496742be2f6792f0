"""Human labels for audited images: draw the sample, write the labelling page, read labels.csv back.

The bias audit calibrates its probe on the audited images themselves (prediction-powered
inference, Angelopoulos et al. 2023, Science 382:669; CLEAM, Teo et al. 2023): a random subset is
labelled by people, and the probe's errors on that subset correct its shares on the rest. For the
correction to be unbiased the subset must be a probability sample of the images, so
``draw_label_sample`` draws a seeded stratified simple random sample (Cochran, *Sampling
Techniques*, 3rd ed. 1977, ch. 5): without replacement within each group, either ``n`` per group
(equal allocation, the design for per-group shares) or ``n`` in total allocated in proportion to
group sizes (a self-weighting design). The page shows the sample in a seeded shuffled order so the
labeller never sees a group in a block, and hides the prompt by default (it names the profession
and sometimes the attribute, which would anchor the labeller).

``labels.csv`` has exactly the columns ``image_id,attribute,label``; a label is one of the classes,
``unsure`` or ``no person``. Any tool may write it; ``read_labels`` validates it. Torch-free.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.errors import InputError, close_matches, did_you_mean

from .labelling_page_assets import CSP, CSS, JS, PAGE

UNSURE = "unsure"
NO_PERSON = "no person"
RESERVED = (UNSURE, NO_PERSON)
COLUMNS = ("image_id", "attribute", "label")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _groups(manifest: pd.DataFrame, group_of: str | Callable) -> pd.Series:
    if isinstance(group_of, str):
        if group_of not in manifest.columns:
            raise InputError(f"manifest has no column {group_of!r}{did_you_mean(group_of, manifest.columns)}: "
                             "pass an existing column or a function of the row as group_of")
        raw = manifest[group_of]
    elif callable(group_of):
        raw = pd.Series([group_of(row) for _, row in manifest.iterrows()], index=manifest.index, dtype=object)
    else:
        raise InputError(f"group_of is a {type(group_of).__name__}: pass a column name or a function of the row")
    return raw.map(lambda g: None if g is None or (isinstance(g, float) and np.isnan(g)) else str(g))


def _allocate(sizes: pd.Series, n: int, per_group: bool) -> dict[str, int]:
    """Sample size per group: ``n`` each (capped at the group's size), or ``n`` in total allocated
    in proportion to size by largest remainder (ties to the larger group, then by name)."""
    if per_group:
        return {g: min(n, int(s)) for g, s in sizes.items()}
    total = int(sizes.sum())
    if n >= total:
        return {g: int(s) for g, s in sizes.items()}
    exact = sizes * n / total
    quota = np.floor(exact).astype(int)
    order = sorted(sizes.index, key=lambda g: (-(exact[g] - quota[g]), -sizes[g], g))
    for g in order[: n - int(quota.sum())]:
        quota[g] += 1
    return {g: int(q) for g, q in quota.items()}


def draw_label_sample(manifest: pd.DataFrame, group_of: str | Callable, n: int, per_group: bool = True,
                      seed: int = 0) -> pd.DataFrame:
    """A seeded stratified simple random sample of the run's images, in a seeded shuffled display order.

    ``group_of`` is a manifest column or a function of a manifest row (a ``pandas.Series``) giving
    the stratum, e.g. the profession; rows whose group is ``None`` are left out (images that show
    no person). With ``per_group`` each group gets ``n`` images drawn without replacement, or all of
    it when it has fewer; otherwise ``n`` images in total, allocated in proportion to group sizes.
    The draw depends only on the seed and the set of (group, image_id), not on the row order.

    Returns the sampled manifest rows with a ``group`` column and a ``note`` column (non-empty on
    rows of a group that was taken whole); ``attrs["note"]`` repeats the notes as one string and
    ``attrs["design"]`` states the design with its n.
    """
    if not isinstance(manifest, pd.DataFrame) or "image_id" not in manifest.columns:
        raise InputError("manifest has no image_id column: pass the run's manifest.parquet as a DataFrame")
    dup = manifest["image_id"][manifest["image_id"].duplicated()]
    if len(dup):
        raise InputError(f"manifest repeats image_id {dup.iloc[0]!r}: an image must appear once")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n={n!r}: pass a positive whole number of images to label")
    df = manifest.assign(group=_groups(manifest, group_of))
    left_out = int(df["group"].isna().sum())
    df = df[df["group"].notna()].sort_values(["group", "image_id"], kind="mergesort")
    if df.empty:
        raise InputError("every image's group is None: check group_of, nothing is left to sample")
    sizes = df.groupby("group", sort=True).size()
    quota = _allocate(sizes, int(n), per_group)
    rng = np.random.default_rng(seed)
    parts, notes = [], {}
    for g, rows in df.groupby("group", sort=True):
        k = quota[g]
        if per_group and k < n:
            notes[g] = f"group {g!r} has only {len(rows)} images (< n={n}): all {len(rows)} taken"
        parts.append(rows.iloc[np.sort(rng.choice(len(rows), size=k, replace=False))])
    sample = pd.concat(parts)
    if not per_group and len(sample) < n:
        notes = {g: f"only {len(sample)} images in all (< n={n}): all taken" for g in sizes.index}
    sample = sample.iloc[rng.permutation(len(sample))].reset_index(drop=True)
    sample["note"] = sample["group"].map(lambda g: notes.get(g, ""))
    design = (f"{'equal' if per_group else 'proportional'} allocation, seed {seed}: {len(sample)} images "
              f"from {len(sizes)} groups of {int(sizes.sum())} images")
    sample.attrs.update(note="; ".join(dict.fromkeys(notes.values())), design=design,
                        left_out=left_out, seed=seed)
    return sample


def page_items(run_dir: str | Path, sample: pd.DataFrame) -> list[tuple[str, bytes, str | None]]:
    """``(image_id, png_bytes, prompt text)`` for each sampled row, reading ``run_dir/path`` and
    checking its ``sha256`` against the manifest when that column is present."""
    run_dir = Path(run_dir)
    items = []
    for row in sample.itertuples(index=False):
        p = run_dir / str(row.path)
        if not p.is_file():
            raise InputError(f"image {row.image_id!r}: {p} is missing; pass the run directory the sample was drawn from")
        data = p.read_bytes()
        want = getattr(row, "sha256", None)
        if isinstance(want, str) and want and hashlib.sha256(data).hexdigest() != want:
            raise InputError(f"image {row.image_id!r}: {p} does not match the manifest's sha256; regenerate the run")
        text = getattr(row, "text", None)
        items.append((str(row.image_id), data, text if isinstance(text, str) else None))
    return items


def _check_page_inputs(items, attribute, classes, run_id) -> list[str]:
    classes = [str(c) for c in classes] if not isinstance(classes, str) else [classes]
    if not 1 <= len(classes) <= 9:
        raise InputError(f"{len(classes)} classes: pass 1 to 9 (keys 1..9 label them)")
    for k, c in enumerate(classes):
        if not c.strip() or c in RESERVED or c in classes[:k]:
            raise InputError(f"class {c!r}: classes must be distinct, non-empty and not 'unsure' or 'no person'")
    for name, value in (("attribute", attribute), ("run_id", run_id)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{name}={value!r}: pass a non-empty string")
    if not items:
        raise InputError("no items to label: pass at least one (image_id, png_bytes, caption)")
    ids = [str(it[0]) for it in items]
    if len(set(ids)) < len(ids):
        raise InputError(f"image_id {next(i for i in ids if ids.count(i) > 1)!r} appears twice: label each image once")
    for image_id, png, _caption in items:
        if not isinstance(png, (bytes, bytearray)) or not bytes(png).startswith(PNG_MAGIC):
            raise InputError(f"image {image_id!r} is not PNG bytes: pass the file's contents (Path.read_bytes())")
    return classes


def _script_json(obj) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can close it or open a comment."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_labelling_page(path: str | Path, items: Sequence[tuple[str, bytes, str | None]], attribute: str,
                         classes: Sequence[str], run_id: str, show_prompt: bool = False,
                         questions: Sequence[tuple[str, str, str]] | None = None) -> Path:
    """Write ONE self-contained HTML page for labelling ``items`` with ``attribute``; return its path.

    One image at a time, upscaled without smoothing; keys 1..K pick the classes, ``u`` unsure,
    ``n`` no person, Backspace clears the last label given and shows its image; "Export labels.csv"
    (or Ctrl/Cmd+S) downloads ``image_id,attribute,label`` rows in display order. Labels persist in the
    browser's localStorage under the run id and attribute, with the order they were given in, so
    undo reaches across reloads and sessions. Captions are embedded only when
    ``show_prompt`` is set. With ``questions`` (one ``(image_id, question_id, question text)`` per
    item; item ids unique per pair) the page labels (image, question) pairs: the question is shown
    above the image, keys ``y`` / ``n`` / ``u`` answer yes / no / unsure, and the export has the
    columns ``image,question_id,label`` (``align --labels``). Images are inlined as data URIs, all text is escaped, and the CSP
    allows only the page's own inline script and style (by hash) and data: images.
    """
    classes = _check_page_inputs(items, attribute, classes, run_id)
    data = {
        "run_id": run_id, "attribute": attribute, "classes": classes, "show_prompt": bool(show_prompt),
        "items": [{"id": str(i), "src": "data:image/png;base64," + base64.b64encode(bytes(png)).decode(),
                   "caption": (str(cap) if show_prompt and cap is not None else None)} for i, png, cap in items],
    }
    keys, names = [str(k + 1) for k in range(len(classes))] + ["u", "n"], [*classes, *RESERVED]
    if questions is not None:
        if len(questions) != len(items):
            raise InputError(f"{len(questions)} questions for {len(items)} items: pass one per item")
        data["keys"] = {"y": "yes", "n": "no", "u": UNSURE}
        for it, (image, qid, text) in zip(data["items"], questions):
            it.update(image=str(image), qid=str(qid), question=str(text))
        keys, names = list(data["keys"]), list(data["keys"].values())
    legend = "".join(f'<li><button type="button" data-key="{k}"><kbd>{k}</kbd>{html.escape(c)}</button></li>'
                     for k, c in zip(keys, names))
    page = PAGE.format(csp=CSP, css=CSS, js=JS, data=_script_json(data), legend=legend, n=len(items),
                       attribute=html.escape(attribute), run_id=html.escape(run_id))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _decode(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"labels file {path} not found: pass the labels.csv exported from the labelling page")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}: byte offset {e.start} (line {line}) is not UTF-8; save the file as UTF-8") from None


def _frame(path: Path, text: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty: it needs the header image_id,attribute,label") from None
    except pd.errors.ParserError as e:
        raise InputError(f"{path} is not valid CSV ({str(e).strip().splitlines()[-1]}); export it again") from None
    cols = [str(c) for c in df.columns]
    for c in COLUMNS:
        if c not in cols:
            near = close_matches(c, [x for x in cols if x not in COLUMNS])
            fix = f"rename column {near[0]!r} to {c!r}" if near else "the header must be exactly image_id,attribute,label"
            raise InputError(f"{path} has no column {c!r}: {fix}")
    if cols != list(COLUMNS):
        raise InputError(f"{path} has columns {','.join(cols)}: the header must be exactly image_id,attribute,label")
    for c in COLUMNS:
        blank = df.index[df[c].str.strip() == ""]
        if len(blank):
            raise InputError(f"{path} line {blank[0] + 2}: empty {c}; fill it in or delete the row")
    return df


def _check_labels(path: Path, df: pd.DataFrame, classes) -> None:
    for attr, rows in df.groupby("attribute", sort=False):
        if isinstance(classes, Mapping):
            if attr not in classes:
                raise InputError(f"{path}: unknown attribute {attr!r}{did_you_mean(attr, classes)}; "
                                 f"expected one of {', '.join(map(repr, classes))}")
            valid = [*map(str, classes[attr]), *RESERVED]
        else:
            valid = [*map(str, classes), *RESERVED]
        bad = rows.index[~rows["label"].isin(valid)]
        if len(bad):
            label = df.at[bad[0], "label"]
            raise InputError(f"{path} line {bad[0] + 2}: unknown label {label!r} for {attr!r}"
                             f"{did_you_mean(label, valid)}; use one of {', '.join(map(repr, valid))}")


def read_labels(path: str | Path, classes: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                image_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate a ``labels.csv`` (columns exactly ``image_id,attribute,label``, UTF-8).

    ``classes`` (a list for every attribute, or a dict attribute -> list) makes labels outside the
    classes, ``unsure`` and ``no person`` an error, with a did-you-mean; ``image_ids`` (the run's
    manifest ids) makes ids not in the run an error. An image labelled twice for one attribute is
    an error. Every error is an ``InputError`` naming the file, the line and the fix. Returns the
    rows in file order as strings.
    """
    path = Path(path)
    df = _frame(path, _decode(path))
    dup = df.index[df.duplicated(["image_id", "attribute"], keep="first")]
    if len(dup):
        r = df.loc[dup[0]]
        raise InputError(f"{path} line {dup[0] + 2}: image {r['image_id']!r} labelled twice for {r['attribute']!r};"
                         " keep one row per image and attribute")
    if classes is not None:
        _check_labels(path, df, classes)
    if image_ids is not None:
        known = set(map(str, image_ids))
        unknown = df.index[~df["image_id"].isin(known)]
        if len(unknown):
            i = df.at[unknown[0], "image_id"]
            raise InputError(f"{path} line {unknown[0] + 2}: image {i!r} is not in the run{did_you_mean(i, known)} "
                             f"({len(unknown)} such rows); label images of this run only")
    return df.reset_index(drop=True)
