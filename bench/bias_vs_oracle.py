"""The main job's bias estimates checked against the truth on its own images: for a PictoWorld run
audited with the CLIP probes, labels (oracle-labelled subset) and the oracle probes beside them
(what `t2i-audit run` does), compare per (profession, class) the CLIP probe's raw, clean-corrected
and label-calibrated (PPI++) shares with the oracle's reading of every image.

    python bench/bias_vs_oracle.py RUN [--tolerance 0.03]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ESTIMATES = ("raw", "corrected", "ppi")


def table(run: Path) -> pd.DataFrame:
    b = pd.read_parquet(run / "audits" / "bias.parquet")
    if "ppi" not in b.columns:
        sys.exit(f"{run}: the bias audit has no label-calibrated columns; run it with --labels")
    neu = b[(b.section == "neutral") & (b.group != "all") & ~b.attribute.str.contains("×")]
    rows = []
    for attr in sorted(set(neu.attribute)):
        a = neu[neu.attribute == attr]
        clip = a[~a.probe.str.startswith("oracle")].set_index(["group", "cls"])
        orc = a[a.probe.str.startswith("oracle")].set_index(["group", "cls"])
        if orc.empty:
            sys.exit(f"{run}: no oracle probe read {attr}; audit with --probe oracle-{attr} beside the CLIP probe")
        for k in clip.index:
            row = {"attribute": attr, "group": k[0], "cls": k[1], "oracle_all": orc.loc[k, "raw"],
                   "n": int(clip.loc[k, "n_images"]), "n_labelled": int(clip.loc[k, "n_labelled"])}
            row.update({e: clip.loc[k, e] for e in ESTIMATES})
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--tolerance", type=float, default=0.03, help="max |label-calibrated - oracle| per cell")
    a = ap.parse_args()
    d = table(a.run)
    for e in ESTIMATES:
        d[f"|{e}-oracle| pp"] = (100 * (d[e] - d["oracle_all"]).abs()).round(1)
    pd.set_option("display.width", 200)
    print(d.round(3).to_string(index=False))
    for e in ESTIMATES:
        err = d[f"|{e}-oracle| pp"]
        print(f"{e:<10} max {err.max():.1f} pp, mean {err.mean():.2f} pp, cells within "
              f"{100 * a.tolerance:.0f} pp: {(err <= 100 * a.tolerance).sum()}/{len(err)}")
    s = pd.read_parquet(a.run / "audits" / "bias_stats.parquet")
    amp = s[s.statistic.str.startswith("amplification[") & ~s.attribute.str.contains("×")]
    print("amplification basis:", sorted(set(amp["basis"])))
    meta = json.loads((a.run / "audits" / "bias.json").read_text())
    print("calibration_shift:", [(r["probe"], r.get("detected"), r.get("p_value"))
                                 for r in meta.get("calibration_shift", [])])
    ok = (d["|ppi-oracle| pp"] <= 100 * a.tolerance).all()
    print(f"label-calibrated within {100 * a.tolerance:.0f} pp of the oracle in every cell: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
