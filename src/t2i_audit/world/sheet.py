"""Captioned contact sheets (grids of images with wrapped captions underneath)."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont


def contact_sheet(items: list[tuple[Image.Image, str]], cols: int = 8, cell: int | None = None,
                  caption_lines: int = 3) -> Image.Image:
    """Lay out (image, caption) pairs in a grid; images are scaled (nearest) to ``cell`` pixels."""
    if not items:
        raise ValueError("contact_sheet needs at least one image")
    cell = cell or max(96, items[0][0].width)
    font = ImageFont.load_default()
    line_h = 11
    width_chars = max(8, cell // 6)
    pad = 4
    cols = min(cols, len(items))
    rows = (len(items) + cols - 1) // cols
    h_cell = cell + caption_lines * line_h + 2 * pad
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, rows * h_cell + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, text) in enumerate(items):
        x = pad + (i % cols) * (cell + pad)
        y = pad + (i // cols) * h_cell
        sheet.paste(img.convert("RGB").resize((cell, cell), Image.NEAREST), (x, y))
        lines = textwrap.wrap(text, width_chars)[:caption_lines]
        for j, line in enumerate(lines):
            draw.text((x, y + cell + 2 + j * line_h), line, fill=(0, 0, 0), font=font)
    return sheet
