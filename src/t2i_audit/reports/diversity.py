"""The report's Diversity section (Markdown and HTML) from audits/diversity.json, and the label-
calibrated columns of the bias tables. Shown only when the run has a diversity audit / labels."""

from __future__ import annotations

from t2i_audit.reports.html_images import esc
from t2i_audit.reports.tables import fmt_ci, fmt_num

KEY_STATS = ("missing_modes", "entropy_ratio", "tv_to_training", "p_adjusted")


def finding_rows(meta: dict) -> list[list]:
    rows = []
    for f in meta.get("findings", []):
        if f["statistic"] in KEY_STATS:
            rows.append([f.get("probe") or "", f["attribute"], f["group"], f["statistic"], fmt_num(f["value"]),
                         fmt_ci(f.get("ci_low"), f.get("ci_high")), int(f["n"]), "yes" if f["flagged"] else "",
                         f.get("detail") or ""])
    return rows


HEADER = ["probe", "attribute", "group", "statistic", "value", "95% CI", "n", "flagged", "detail"]  # probe: whose reading


def diversity_md(meta: dict | None, md_table) -> list[str]:
    if meta is None:
        return []
    found = meta.get("sentences") or ["No attribute the prompts leave open is collapsed or shifted."]
    return ["## Diversity", "", *[f"- {s}" for s in found], "", f"Rule: {meta.get('rule', '')}", "",
            md_table(HEADER, finding_rows(meta)), ""]


def diversity_html(meta: dict | None, table) -> str:
    if meta is None:
        return ""
    found = meta.get("sentences") or ["No attribute the prompts leave open is collapsed or shifted."]
    return ("<h2 id='diversity'>Diversity</h2><ul class='findings'>"
            + "".join(f"<li>{esc(s)}</li>" for s in found) + "</ul>"
            + f"<p class='note'>Rule: {esc(meta.get('rule', ''))}</p>"
            + "<details><summary>Per group: missing modes, entropy ratio, TV to training, adjusted p</summary>"
            + table(HEADER, finding_rows(meta), {4, 6}) + "</details>")


def label_cells(r) -> list[str]:
    """'label-calibrated [95% CI]' cell of a bias row, or none when the run has no labels."""
    if not hasattr(r, "ppi"):
        return []
    if r.n_labelled != r.n_labelled:  # NaN: labels.csv names other attributes than this probe's
        return ["— (no labels)"]
    return [f"{fmt_num(r.ppi)} {fmt_ci(r.ppi_ci_low, r.ppi_ci_high)} (labels n={int(r.n_labelled)})"]
