"""`t2i-audit robustness`: paired deltas against perturbed runs and counterfactual fairness."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("robustness")
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.argument("perturbed", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory [default: PERTURBED/robustness, or SOURCE/robustness without PERTURBED].")
@click.option("--reps", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap replicates.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Family-wise level of the Holm-adjusted fairness tests.")
@click.option("--min-gap", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Smallest |disparity| a fairness flag needs (0.05 = 5 pp).")
@click.option("--identity-slot", "identity_slots", multiple=True,
              help="Slot names that hold identities [default: presentation, skin, gender, skin_tone, race, ethnicity, age].")
@long_running(threads=False)
def robustness(source: Path, perturbed: Path | None, out: Path | None, reps: int, seed: int, alpha: float,
               min_gap: float, identity_slots: tuple[str, ...], progress: bool) -> None:
    """Paired deltas PERTURBED − SOURCE per perturbation and category, and counterfactual fairness
    (per-identity adherence and quality, largest disparity, Holm) of SOURCE.

    PERTURBED is a run sampled with `t2i-audit sample --perturb ...` from SOURCE's suite; both scored
    (and, for adherence and shares, bias-audited). Writes deltas.parquet, fairness.parquet,
    robustness.json, report.md and report.html.
    """
    from t2i_audit.core.rundir import read_run
    from t2i_audit.reports.fairness import IDENTITY_SLOTS, counterfactual
    from t2i_audit.reports.robustness import item_values, paired_deltas
    from t2i_audit.reports.robustness_report import DIR, write_results

    deltas, summary = None, {"source_run": None, "notes": []}
    if perturbed is not None:
        deltas, summary = paired_deltas(source, perturbed, n_boot=reps, seed=seed)
        summary["perturbed_run"] = str(read_run(perturbed)[0].get("run_id"))
    meta, manifest = read_run(source, require_images=True)
    summary["source_run"] = str(meta.get("run_id"))
    fair = counterfactual(item_values(source), manifest, attributes=identity_slots or IDENTITY_SLOTS, n_boot=reps,
                          seed=seed, alpha=alpha, min_gap=min_gap)
    if fair.empty:
        summary["notes"].append("counterfactual fairness: no template varies only an identity slot; none computed")
    out = out or (perturbed or source) / DIR
    res = write_results(out, deltas, fair if len(fair) else None, summary)
    for n in summary["notes"]:
        click.echo(n)
    if deltas is not None:
        click.echo(f"{'perturbation':<36}{'metric':<24}{'source':>8}{'perturbed':>10}{'delta':>9}  95% CI            n  prompts")
        for r in deltas[deltas["group"] == "all"].itertuples():
            click.echo(f"{r.perturbation:<36}{r.metric:<24}{r.source:>8.3f}{r.perturbed:>10.3f}{r.delta:>+9.3f}  "
                       f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] {r.n:>5} {r.n_prompts:>7}")
    if len(fair):
        click.echo(f"{'attribute':<14}{'metric':<24}{'largest disparity':<22}{'value':>8}  95% CI            Holm p     n")
        for r in fair[fair["kind"] == "max_disparity"].itertuples():
            click.echo(f"{r.attribute:<14}{r.metric:<24}{r.group:<22}{r.value:>+8.3f}  [{r.ci_low:+.3f}, {r.ci_high:+.3f}] "
                       f"{r.p_holm:>8.3g} {r.n:>5}" + ("  FLAGGED" if r.flagged else ""))
    for t in res["findings"]:
        click.echo(f"finding: {t}")
    click.echo(f"wrote {out}/deltas.parquet, fairness.parquet, robustness.json, report.md, report.html")
