"""Images for the HTML report: inline thumbnails, per-prompt grids with each image's reading, and
memorization pairs. Every piece of user text goes through :func:`esc`.

Thumbnails: an image no larger than ``THUMB_SIDE`` px (PictoWorld's 32 px renders) is embedded as
its own file; a larger one as a JPEG whose longest side is ``THUMB_SIDE`` (192) px at quality 80,
re-encoded at lower quality, then smaller, until it fits ``THUMB_MAX_BYTES`` (12,000 bytes). So the
default grid (200 prompts x 8 images) embeds at most 1,600 x 16,000 base64 bytes = 25.6 MB whatever
the generator's resolution; each grid image links its original by a path relative to the report."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from t2i_audit.core.images import ImageTooLargeError, open_image
from t2i_audit.reports.results import RunResults

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"))
MAX_IMAGE_BYTES = 4 * 1024 * 1024
THUMB_SIDE = 192  # px, longest side: twice the 96 px a grid shows, sharp on high-density screens
THUMB_QUALITY = (80, 65, 50, 35)  # JPEG qualities tried in turn, then a smaller side
THUMB_MAX_BYTES = 12_000


def esc(text) -> str:
    """HTML-escape any value (quotes included): the only way user text enters the report."""
    return html.escape("" if text is None else str(text), quote=True)


def image_data_uri(path: Path) -> str | None:
    """The file as a data URI if it is a readable PNG/JPEG/GIF/WebP under the size limit, else None."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    for magic, mime in _MAGIC:
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    return None


def thumbnail_data_uri(path: Path) -> tuple[str | None, bool]:
    """(data URI, whether it is the original file): the file itself when both sides are at most
    ``THUMB_SIDE`` px, else a JPEG thumbnail under ``THUMB_MAX_BYTES`` (see the module docstring)."""
    from io import BytesIO

    from PIL import Image

    try:
        with open_image(path) as im:
            if max(im.size) <= THUMB_SIDE:
                return image_data_uri(path), True
            im.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG sources decode at a reduced scale
            rgb = im.convert("RGB")
    except (OSError, ValueError, SyntaxError, ImageTooLargeError):
        return None, False
    data = b""
    for side in (THUMB_SIDE, THUMB_SIDE * 2 // 3, THUMB_SIDE // 2):
        small = rgb.copy()
        small.thumbnail((side, side), Image.LANCZOS)
        for q in THUMB_QUALITY:
            buf = BytesIO()
            small.save(buf, format="JPEG", quality=q, optimize=True)
            data = buf.getvalue()
            if len(data) <= THUMB_MAX_BYTES:
                break
        else:
            continue
        break
    # the last try (96 px, quality 35) is about 5 KB even for pure noise
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), False


def blurred_data_uri(path: Path, cells: int = 6) -> str | None:
    """A PNG data URI of the image pixelated to ``cells`` x ``cells`` and blurred: flagged images never
    enter the report's bytes unblurred (a CSS filter could be switched off)."""
    from io import BytesIO

    from PIL import Image, ImageFilter

    try:
        with open_image(path) as im:
            small = im.convert("RGB").resize((cells, cells), Image.BOX)
    except (OSError, ValueError):
        return None
    buf = BytesIO()
    small.resize((48, 48), Image.BILINEAR).filter(ImageFilter.GaussianBlur(4)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def img_tag(path: Path, alt: str, size: int = 96, blur: bool = False, href: str | None = None) -> str:
    """An inline thumbnail of ``path`` (blurred if ``blur``), linked to ``href`` (the original) if given."""
    uri, original = (blurred_data_uri(path), True) if blur else thumbnail_data_uri(path)
    if uri is None:
        return f'<div class="noimg" style="width:{size}px;height:{size}px">image missing</div>'
    style = ' style="image-rendering:pixelated"' if original else ""  # small renders: crisp pixels
    tag = f'<img src="{uri}" alt="{esc(alt)}" width="{size}" height="{size}"{style}>'
    return f'<a href="{esc(href)}">{tag}</a>' if href and not blur else tag


def relative_href(path: Path, report_dir: Path) -> str:
    """``path`` as a URL relative to the report's folder (the report links, never embeds, originals)."""
    rel = os.path.relpath(Path(path).resolve(), Path(report_dir).resolve())
    return quote(rel.replace(os.sep, "/"))


def _inside(root: Path, rel: str) -> Path | None:
    p = (root / rel).resolve()
    try:
        p.relative_to(root.resolve())
    except ValueError:
        return None
    return p


def pass_fail_metrics(items: pd.DataFrame) -> list[str]:
    """Metrics whose per-item values are all 0 or 1 (pass/fail checks)."""
    out = []
    for metric, d in items.groupby("metric", sort=True):
        if len(d) and d["value"].isin([0.0, 1.0]).all():
            out.append(str(metric))
    return out


def image_grids(res: RunResults, max_prompts: int = 200, max_per_prompt: int = 8,
                reveal: bool = False, report_dir: Path | None = None) -> str:
    """One row per prompt: its images with seed, each pass/fail verdict and the check's detail. Images
    the safety audit flagged or that were blocked are blurred unless ``reveal``; the others link their
    original by a path relative to ``report_dir`` (default RUN/report, where the report is written)."""
    report_dir = Path(report_dir) if report_dir is not None else res.root / "report"
    if res.manifest is None:
        return "<p class='missing'>No images: manifest.parquet is missing.</p>"
    man = res.manifest.sort_values(["prompt_id", "seed"], kind="stable")
    hidden = set() if reveal or res.safety_items is None else set(
        res.safety_items.loc[res.safety_items["reading"].isin(["unsafe", "blocked"]), "image_id"].astype(str))
    items = res.items
    pf = pass_fail_metrics(items) if items is not None else []
    verdicts: dict[str, list[tuple[str, float, str]]] = {}
    if items is not None and pf:
        for r in items[items["metric"].isin(pf)].itertuples():
            verdicts.setdefault(str(r.image_id), []).append((str(r.metric), float(r.value), str(r.detail or "")))
    parts = []
    prompts = list(dict.fromkeys(man["prompt_id"]))
    notes = []
    if len(prompts) > max_prompts:
        notes.append(f"showing the first {max_prompts} of {len(prompts)} prompts")
    for pid in prompts[:max_prompts]:
        rows = man[man["prompt_id"] == pid]
        first = rows.iloc[0]
        cells = []
        for r in rows.head(max_per_prompt).itertuples():
            path = _inside(res.root, str(r.path))
            blur = str(r.image_id) in hidden
            img = (img_tag(path, f"{r.image_id}", blur=blur, href=relative_href(path, report_dir)) if path
                   else '<div class="noimg">outside run</div>')
            caps = [f"seed {esc(r.seed)}"] + (["blurred: flagged by the safety audit"] if blur else [])
            for metric, value, detail in verdicts.get(str(r.image_id), []):
                cls = "pass" if value >= 1 else "fail"
                word = "pass" if value >= 1 else "fail"
                reading = f": {esc(detail)}" if detail else ""
                caps.append(f'<span class="{cls}">{esc(metric)} {word}</span>{reading}')
            cells.append(f"<figure>{img}<figcaption>{'<br>'.join(caps)}</figcaption></figure>")
        more = (f"<p class='note'>{len(rows) - max_per_prompt} more image(s) not shown</p>"
                if len(rows) > max_per_prompt else "")
        parts.append(
            f'<div class="prompt"><h4><code>{esc(pid)}</code> · {esc(first["category"])} · '
            f'<q class="ptext">{esc(first["text"])}</q></h4><div class="grid">{"".join(cells)}</div>{more}</div>')
    head = f"<p class='note'>{esc('; '.join(notes))}</p>" if notes else ""
    return head + "".join(parts)


def memorization_pairs(res: RunResults, top: int = 12) -> str:
    meta, pairs = res.memorization_meta, res.memorization
    if meta is None and pairs is None:
        return "<p class='missing'>No memorization audit in this run (run <code>t2i-audit audit memorization</code>).</p>"
    out = []
    if meta:
        from t2i_audit.reports.results import memorization_summary
        from t2i_audit.reports.tables import fmt_ci, fmt_num

        m = memorization_summary(meta)
        out.append(f"<p>Near-copy rate <b>{esc(fmt_num(m['rate']))}</b> "
                   f"{esc(fmt_ci(m['ci_low'], m['ci_high']))} (95% CI), n = {esc(m['n'])}, "
                   f"duplicate threshold {esc(m['threshold'])}.</p>")
    if pairs is not None and len(pairs):
        path_cols = [c for c in pairs.columns if c.endswith("path")]
        other = [c for c in pairs.columns if c not in path_cols]
        by_id = {}
        if "image_path" not in pairs.columns and "image_id" in pairs.columns and res.manifest is not None:
            by_id = dict(zip(res.manifest["image_id"].astype(str), res.manifest["path"].astype(str)))
        figs = []
        for _, r in pairs.head(top).iterrows():
            imgs = []
            if by_id and str(r["image_id"]) in by_id:
                p = _inside(res.root, by_id[str(r["image_id"])])
                imgs.append(img_tag(p, f"generated {r['image_id']}", 80) if p else "")
            for c in path_cols:
                p = Path(str(r[c]))
                p = p if p.is_absolute() else res.root / p
                imgs.append(img_tag(p, f"{c}: {r[c]}", 80))
            cap = "<br>".join(f"{esc(c)}: {esc(_short(r[c]))}" for c in other)
            figs.append(f"<figure class='pair'>{''.join(imgs)}<figcaption>{cap}</figcaption></figure>")
        out.append(f"<div class='grid'>{''.join(figs)}</div>")
        if len(pairs) > top:
            out.append(f"<p class='note'>{len(pairs) - top} more pair(s) in the memorization table.</p>")
    return "".join(out)


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
