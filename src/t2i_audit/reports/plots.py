"""Report figures with matplotlib (Agg backend, no display), returned as data URIs.

Each function takes result tables and returns a ``data:image/png;base64,...`` string (or ``None``
when there is nothing to draw). Every bar carries its 95% interval; figures are deterministic.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

_COLORS = {"corrected": "#1f6fb4", "raw": "#9bbfe0", "reference": "#d62728", "a": "#1f6fb4", "b": "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.hashsalt": "t2i-audit", "figure.dpi": 100})
    return plt


def fig_to_data_uri(fig, fmt: str = "png") -> str:
    plt = _plt()
    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None}
    fig.savefig(buf, format=fmt, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _err(values, lo, hi) -> np.ndarray:
    v, lo, hi = (np.asarray(x, dtype=float) for x in (values, lo, hi))
    return np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


def category_bars(agg: pd.DataFrame, metric: str) -> str | None:
    """Per-category value of ``metric`` with 95% intervals (and the overall value as a line)."""
    sub = agg[(agg["metric"] == metric) & agg["group"].str.startswith("category=")]
    if sub.empty:
        return None
    plt = _plt()
    names = [g.split("=", 1)[1] for g in sub["group"]]
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(names) + 1.5), 2.8))
    x = np.arange(len(names))
    ax.bar(x, sub["value"], color=_COLORS["a"], alpha=0.85)
    ax.errorbar(x, sub["value"], yerr=_err(sub["value"], sub["ci_low"], sub["ci_high"]), fmt="none",
                ecolor="black", capsize=4, lw=1)
    overall = agg[(agg["metric"] == metric) & (agg["group"] == "overall")]
    if len(overall):
        ax.axhline(float(overall["value"].iloc[0]), color="grey", ls="--", lw=1, label="overall")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(x, [f"{n}\n(n={int(k)})" for n, k in zip(names, sub["n_images"])])
    ax.set_ylabel(metric)
    if sub["ci_high"].max() <= 1.0 and sub["value"].min() >= 0:
        ax.set_ylim(0, 1.05)
    ax.set_title(f"{metric} by category (95% CI)")
    return fig_to_data_uri(fig)


def bias_chart(bias: pd.DataFrame, attribute: str) -> str | None:
    """Class shares per group: corrected and raw with 95% intervals, reference as red ticks."""
    sub = bias[bias["attribute"] == attribute].sort_values(["group", "cls"], kind="stable")
    if sub.empty:
        return None
    plt = _plt()
    groups = list(dict.fromkeys(sub["group"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(2.4 * len(groups) + 0.6, 2.8), sharey=True,
                             squeeze=False)
    for ax, g in zip(axes[0], groups):
        d = sub[sub["group"] == g]
        x = np.arange(len(d))
        w = 0.38
        ax.bar(x - w / 2, d["raw"], w, color=_COLORS["raw"], label="raw")
        ax.errorbar(x - w / 2, d["raw"], yerr=_err(d["raw"], d["raw_ci_low"], d["raw_ci_high"]), fmt="none",
                    ecolor="black", capsize=3, lw=0.8)
        ax.bar(x + w / 2, d["corrected"], w, color=_COLORS["corrected"], label="corrected")
        ax.errorbar(x + w / 2, d["corrected"], yerr=_err(d["corrected"], d["corr_ci_low"], d["corr_ci_high"]),
                    fmt="none", ecolor="black", capsize=3, lw=0.8)
        ref = d["reference"].to_numpy(dtype=float)
        if np.isfinite(ref).any():
            ax.hlines(ref, x - 0.45, x + 0.45, colors=_COLORS["reference"], lw=2, label="reference")
        ax.set_xticks(x, list(d["cls"]), rotation=30)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{g}\n(n={int(d['n_images'].iloc[0])})", fontsize=9)
    axes[0][0].set_ylabel(f"share ({attribute})")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    return fig_to_data_uri(fig)


def fd_vs_n(agg: pd.DataFrame) -> str | None:
    """Distribution metrics measured at several sample sizes (groups ``n=<N>``) against 1/N."""
    sub = agg[agg["group"].astype(str).str.fullmatch(r"n=\d+")]
    if sub.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    for i, (metric, d) in enumerate(sub.groupby("metric", sort=True)):
        n = d["group"].str.slice(2).astype(int).to_numpy()
        order = np.argsort(n)
        d = d.iloc[order]
        n = n[order]
        color = list(_COLORS.values())[i % len(_COLORS)]
        ax.errorbar(1.0 / n, d["value"], yerr=_err(d["value"], d["ci_low"], d["ci_high"]), marker="o",
                    color=color, capsize=3, label=metric)
        inf = agg[(agg["metric"] == f"{metric}_inf") & (agg["group"] == "overall")]
        if len(inf):
            ax.errorbar([0.0], inf["value"], yerr=_err(inf["value"], inf["ci_low"], inf["ci_high"]), marker="*",
                        ms=10, color=color, capsize=3, ls="none", label=f"{metric}∞ (1/N → 0)")
    ax.set_xlabel("1 / N")
    ax.set_ylabel("value")
    ax.set_title("Distribution metrics against sample size (95% CI)")
    ax.legend(fontsize=7)
    return fig_to_data_uri(fig)


def difference_chart(diffs: pd.DataFrame, label: str = "A − B") -> str | None:
    """Forest plot of paired differences with their 95% intervals (compare)."""
    if diffs is None or diffs.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(diffs) + 1.0))
    y = np.arange(len(diffs))[::-1]
    ax.errorbar(diffs["difference"], y, xerr=_err(diffs["difference"], diffs["ci_low"], diffs["ci_high"]),
                fmt="o", color=_COLORS["a"], capsize=3)
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_yticks(y, [f"{m} [{g}]" for m, g in zip(diffs["metric"], diffs["group"])])
    ax.set_xlabel(f"difference {label} (95% CI)")
    return fig_to_data_uri(fig)
