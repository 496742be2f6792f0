"""The report's Safety section (Markdown and HTML) from audits/safety.json and safety.parquet:
unsafe rates per prompt category three ways (among delivered, blocked, unsafe or blocked) with 95%
intervals and n, the detector and its thresholds, and thumbnails of flagged images -- blurred
(pixelated in the report's bytes) unless the report is rendered with ``--reveal-unsafe``."""

from __future__ import annotations

from t2i_audit.reports.html_images import _inside, esc, img_tag
from t2i_audit.reports.tables import fmt_ci, fmt_num

STATS = ("rate", "raw_rate", "blocked_rate", "unsafe_or_blocked_rate")
HEADER = ["category", "statistic", "value", "95% CI", "n", "prompts", "basis"]


def safety_rows(res) -> list[list]:
    d = res.safety[res.safety["statistic"].isin(STATS) | res.safety["statistic"].str.startswith("raw_rate[")]
    return [
        [
            r.group,
            r.statistic,
            fmt_num(r.value),
            fmt_ci(r.ci_low, r.ci_high),
            int(r.n),
            int(r.n_prompts),
            r.basis,
        ]
        for r in d.itertuples()
    ]


def _pct(v, lo=None, hi=None) -> str:
    return f"{100 * v:.1f}%" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else "")


def headline(res) -> list[str]:
    """One sentence per category: the headline rate, and blocked images when there are any."""
    out = []
    d = res.safety.set_index(["group", "statistic"])
    for g in dict.fromkeys(res.safety["group"]):
        if (g, "rate") not in d.index:
            out.append(f"{g}: every image blocked")
            continue
        r, b = d.loc[(g, "rate")], d.loc[(g, "blocked_rate")]
        s = f"{g}: unsafe {_pct(r.value, r.ci_low, r.ci_high)} of delivered images (n={int(r.n)}, {r.basis})"
        if b.value > 0:
            ub = d.loc[(g, "unsafe_or_blocked_rate")]
            s += (
                f"; blocked {_pct(b.value, b.ci_low, b.ci_high)}, unsafe or blocked "
                f"{_pct(ub.value, ub.ci_low, ub.ci_high)} of all (n={int(ub.n)})"
            )
        out.append(s)
    return out


def _detector_line(meta: dict) -> str:
    det = meta.get("detector", {})
    return (
        f"Detector {det.get('id')}, thresholds {meta.get('thresholds')}; "
        f"{str(det.get('rule', '')).rstrip('.')}. Blocked: "
        f"{meta.get('n_blocked')} of {meta.get('n_images')} images ({meta.get('blocked_source')})."
    )


def safety_md(res, md_table) -> list[str]:
    if res.safety_meta is None or res.safety is None:
        return []
    return [
        "## Safety",
        "",
        *[f"- {s}" for s in headline(res)],
        "",
        _detector_line(res.safety_meta),
        "",
        md_table(HEADER, safety_rows(res)),
        "",
    ]


def flagged_thumbnails(res, reveal: bool, top: int = 24) -> str:
    items = res.safety_items
    if items is None or res.manifest is None:
        return ""
    flagged = items[items["reading"] == "unsafe"].head(top)
    if not len(flagged):
        return "<p class='note'>No image was flagged.</p>"
    paths = dict(zip(res.manifest["image_id"].astype(str), res.manifest["path"].astype(str)))
    figs = []
    for r in flagged.itertuples():
        p = _inside(res.root, paths.get(str(r.image_id), ""))
        img = img_tag(p, str(r.image_id), 72, blur=not reveal) if p else ""
        figs.append(f"<figure>{img}<figcaption>{esc(r.image_id)}<br>{esc(r.category)}</figcaption></figure>")
    note = (
        "shown unblurred (--reveal-unsafe)" if reveal else "blurred; render with --reveal-unsafe to show them"
    )
    return (
        f"<p class='note'>Flagged images ({len(flagged)} of "
        f"{int((items['reading'] == 'unsafe').sum())} shown), "
        f"{note}.</p><div class='grid'>{''.join(figs)}</div>"
    )


def safety_html(res, table, reveal: bool = False) -> str:
    if res.safety_meta is None or res.safety is None:
        return ""
    return (
        "<h2 id='safety'>Safety</h2><ul class='findings'>"
        + "".join(f"<li>{esc(s)}</li>" for s in headline(res))
        + f"</ul><p class='note'>{esc(_detector_line(res.safety_meta))}</p>"
        + table(HEADER, safety_rows(res), {2, 4, 5})
        + flagged_thumbnails(res, reveal)
    )
