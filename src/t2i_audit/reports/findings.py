"""The report's opening "Findings": what the result files say, in ranked plain sentences with their
numbers, intervals and n, each pointing at its evidence (a section anchor). Read from result files
only; a sentence is written only where its numbers exist.

Ranking: the gate's verdict first, then collapsed or shifted open attributes (diversity), bias
amplification over the training distribution whose interval excludes 0 (largest first), the weakest
skill, near-copies of training images, and what the audits say about their own validity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from t2i_audit.reports.results import RunResults, memorization_summary
from t2i_audit.reports.tables import fmt_ci, fmt_num

MAX_AMPLIFICATION = 3


@dataclass(frozen=True)
class Finding:
    text: str
    anchor: str  # id of the section that holds the evidence


def _pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def gate_findings(res: RunResults) -> list[Finding]:
    g = res.gate
    if not g:
        return []
    checks = g.get("rules") or []
    failed = [c for c in checks if c.get("verdict") != "pass"]
    verdict = "PASS" if g.get("passed") else "FAIL"
    names = ", ".join(str(c.get("name") or c.get("key", "")) for c in failed[:3])
    tail = f": {len(failed)} of {len(checks)} checks failed ({names})" if failed else f": {len(checks)} checks passed"
    return [Finding(f"Gate {verdict}{tail}.", "summary")]


def diversity_findings(res: RunResults) -> list[Finding]:
    """One sentence per attribute and kind of flag (modes missing / distribution shifted), naming
    the flagged groups and the lowest share among them."""
    meta = res.diversity_meta
    if not meta or not meta.get("findings"):
        return []
    f = pd.DataFrame(meta["findings"])
    f = f[f["flagged"].astype(bool) & (f["group"] != "all") & (f["attribute"] != "features")]
    out = []
    for attr, d in f.groupby("attribute", sort=False):
        miss = d[d["statistic"] == "missing_modes"].set_index("group")["value"]
        k = int(d[d["statistic"].str.startswith("share[")].groupby("group").size().max())
        for kind, groups in (("missing", [g for g, v in miss.items() if v > 0]),
                             ("shifted", [g for g, v in miss.items() if v == 0])):
            if not groups:
                continue
            shares = d[d["statistic"].str.startswith("share[") & d["group"].isin(groups)]
            low = shares.loc[shares["value"].idxmin()]
            train = low.get("reference")  # a number field (older audits lack it), never parsed from text
            vs = f" vs {100 * float(train):.1f}% in training" if pd.notna(train) else ""
            head = (f"{attr}: {int(miss[groups].max())} of {k} modes missing" if kind == "missing" else
                    f"{attr}: distribution shifted from training")
            where = groups[0] if len(groups) == 1 else f"{len(groups)} groups ({', '.join(map(str, groups))})"
            out.append(Finding(f"{head} in {where}; lowest share {low['statistic'][6:-1]} "
                               f"{100 * low['value']:.1f}% [{100 * low['ci_low']:.1f}, {100 * low['ci_high']:.1f}] "
                               f"({low['group']}, n={int(low['n'])}){vs}.", "diversity"))
    return out


def amplification_findings(res: RunResults) -> list[Finding]:
    s = res.bias_stats
    if s is None or s.empty or "statistic" not in s:
        return []
    amp = s[s["statistic"].astype(str).str.startswith("amplification[") & (s["group"] != "all")]
    if "section" in amp:
        amp = amp[amp["section"] == "neutral"]
    amp = amp[~amp["attribute"].astype(str).str.contains("×")]
    sig = amp[(amp["ci_low"] > 0) | (amp["ci_high"] < 0)]
    sig = sig.assign(_abs=sig["value"].abs()).sort_values("_abs", ascending=False, kind="stable")
    keys = ["group", "attribute"] + (["probe"] if "probe" in sig.columns else [])
    sig = sig.drop_duplicates(keys).head(MAX_AMPLIFICATION)  # two classes: one fact, told once
    out = []
    for r in sig.itertuples():
        cls = str(r.statistic)[len("amplification["):-1]
        more = "more" if r.value > 0 else "less"
        basis = f"; {r.basis}" if "basis" in s.columns and isinstance(getattr(r, "basis", None), str) else ""
        if "probe" in s.columns and s["probe"].nunique() > 1:
            basis += f"; probe {r.probe}"
        out.append(Finding(f"{r.group}: drawn as {cls} {abs(100 * r.value):.1f} pp {more} often than in training "
                           f"({_pp(r.value)} [{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}] pp, n={int(r.n)}{basis}).",
                           "bias"))
    return out


def skill_findings(res: RunResults) -> list[Finding]:
    agg = res.aggregates
    if agg is None or agg.empty:
        return []
    sk = agg[agg["metric"].isin(["skill", "skills"]) & agg["group"].astype(str).str.startswith("category=")]
    if len(sk) < 2:
        return []
    w = sk.loc[sk["value"].idxmin()]
    cat = str(w["group"]).split("=", 1)[1]
    return [Finding(f"{cat} is the weakest skill: {fmt_num(w['value'])} {fmt_ci(w['ci_low'], w['ci_high'])} "
                    f"(n={int(w['n_images'])} images).", "skills")]


def memorization_findings(res: RunResults) -> list[Finding]:
    m = memorization_summary(res.memorization_meta)
    if not m or m["rate"] is None or not math.isfinite(float(m["rate"])) or float(m["rate"]) <= 0:
        return []
    return [Finding(f"Near-copies of training images: {fmt_num(m['rate'])} {fmt_ci(m['ci_low'], m['ci_high'])} "
                    f"(n={m['n']}).", "memorization")]


def validity_findings(res: RunResults) -> list[Finding]:
    meta = res.bias_meta or {}
    out = []
    for s in meta.get("calibration_shift") or []:
        if s.get("detected"):
            out.append(Finding(f"Calibration does not fit the audited images for probe {s.get('probe')} "
                               f"(p = {fmt_num(s.get('p_value'))}, n = {s.get('n_calib')} vs {s.get('n_run')}): "
                               "its clean-calibrated 'corrected' shares are not trustworthy; use labels.", "bias"))
    labels = meta.get("labels") or {}
    for g in labels.get("too_few", []):
        out.append(Finding(f"Too few labels for {g}: no label-calibrated share there.", "bias"))
    return out


def robustness_findings(res: RunResults) -> list[Finding]:
    """The sentences `t2i-audit robustness` computed from its numbers (RUN/robustness/robustness.json)."""
    from t2i_audit.reports.robustness_report import read_results

    return [Finding(str(t), "robustness-section") for t in (read_results(res.root) or {}).get("findings", [])]


def findings(res: RunResults) -> list[Finding]:
    out: list[Finding] = []
    for fn in (gate_findings, diversity_findings, amplification_findings, skill_findings,
               robustness_findings, memorization_findings, validity_findings):
        out += fn(res)
    return out


def findings_md(res: RunResults) -> list[str]:
    f = findings(res)
    if not f:
        return []
    return ["## Findings", "", *[f"{i}. {x.text}" for i, x in enumerate(f, 1)], ""]


def findings_html(res: RunResults, esc) -> str:
    f = findings(res)
    if not f:
        return ""
    items = "".join(f"<li>{esc(x.text)} <a href='#{x.anchor}'>evidence</a></li>" for x in f)
    return f"<h2 id='findings'>Findings</h2><ol class='findings'>{items}</ol>"


def frame(res: RunResults) -> pd.DataFrame:
    """The findings as a table (rank, text, anchor) for CSV/JSON exports."""
    return pd.DataFrame([{"rank": i, "text": x.text, "anchor": x.anchor} for i, x in enumerate(findings(res), 1)])
