"""`t2i-audit audit ...`: bias audit with classifier-error correction, memorization, planning."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running
from t2i_audit.core.images import open_image

ESTIMAND_OPTION = click.option(
    "--estimand", type=click.Choice(["prompts", "these-prompts"]), default="prompts", show_default=True,
    help="Which question the intervals answer: 'prompts' = the prompts as a sample of the ways to ask "
         "(between-paraphrase variation in the interval; not estimable below 5 prompts in a group); "
         "'these-prompts' = conditional on the suite's exact prompts.")


@click.group()
def audit() -> None:
    """Audits of a generation run: social bias, memorization; and sample-size planning."""


def _fmt(v: float, lo: float, hi: float) -> str:
    if v != v:
        return "—"
    return f"{v:.2f} [{lo:.2f},{hi:.2f}]"


def print_bias(res: dict, echo=click.echo) -> None:
    bias, stats, summ = res["bias"], res["stats"], res["summary"]
    est = summ.get("estimand") or {}
    if est:
        echo(f"estimand: {est['name']} ({est['meaning']})")
        ne = bias[bias.get("interval_note", "").astype(str).str.startswith("not estimable")] if len(bias) else bias
        if len(ne):
            echo(f"  not estimable: {ne.groupby(['probe', 'group']).ngroups} (probe, group) cells with fewer than "
                 f"{est['min_prompts']} prompts (NaN intervals; add paraphrases or --estimand these-prompts)")
    for name, v in (summ.get("icc") or {}).items():
        echo(f"prompt-level ICC ({name}): {v:.3f}  (audit plan --icc {v:.3f})")
    for (probe, attr), d in bias.groupby(["probe", "attribute"], sort=False):
        echo(f"\n{attr} — probe {probe}")
        neu = d[d.section == "neutral"]
        classes = list(dict.fromkeys(d["cls"]))
        head = f"{'group':<22}{'n':>6}{'prompts':>8}{'abstain':>8}  " + "  ".join(
            f"{c + ' raw → corrected':<36}" for c in classes)
        echo(head)
        st = stats[(stats.probe == probe)]
        if "ppi" in d and neu["n_labelled"].notna().any():  # this probe's attribute has labels
            echo("  label-calibrated (PPI++, headline) per group: " + "; ".join(
                f"{grp} " + ", ".join(f"{r.cls} {_fmt(r.ppi, r.ppi_ci_low, r.ppi_ci_high)}" for r in g.itertuples())
                + f" (labels n={int(g.n_labelled.iloc[0])})" for grp, g in neu.groupby("group", sort=False)))
        for grp, g in neu.groupby("group", sort=False):
            g = g.set_index("cls")
            cells = "  ".join(f"{_fmt(g.raw[c], g.raw_ci_low[c], g.raw_ci_high[c]) + ' → ' + _fmt(g.corrected[c], g.corr_ci_low[c], g.corr_ci_high[c]):<36}"
                              for c in classes)
            first = g.iloc[0]
            echo(f"{grp:<22}{first.n_images:>6}{first.n_prompts:>8}{first.abstain_rate:>8.3f}  {cells}")
        rows = st[(st.section == "neutral") & st.statistic.isin(
            ["parity_gap", "tv_to_reference", "tv_to_training"] + [s for s in st.statistic.unique()
                                                                   if s.endswith(("_p_holm", "_p_bh"))])]
        if len(rows):
            piv = rows.pivot_table(index="group", columns="statistic", values="value", sort=False)
            echo("  statistics (corrected when calibrated): " + ", ".join(piv.columns))
            for grp, r in piv.iterrows():
                echo(f"  {grp:<20}" + "  ".join(f"{r[c]:.3g}" for c in piv.columns))
        adh = st[st.statistic == "adherence"]
        for _, r in adh.iterrows():
            echo(f"  adherence {r.group}: {_fmt(r.value, r.ci_low, r.ci_high)} (n={r.n})")
    for a in summ.get("agreement", []):
        com = a.get("common") or {}
        both = (f"; on the {com['n']} of {com['n_group']} images both answered: max |diff| "
                f"{com['max_abs_diff']:.3f}, same reading {com['per_image_agreement']:.3f}") if com.get("n") else ""
        echo(f"agreement {a['attribute']}/{a['group']}: max |diff| {a['max_abs_diff']:.3f} between "
             f"{' and '.join(a['probes'])}{both}")
    for k, c in summ["calibration"].items():
        echo(f"calibration {k}: accuracy {c['accuracy_answered']:.3f}, abstain {c['abstain_rate']:.3f}, "
             f"n={c['n']} ({c['source']})")
    from t2i_audit.audits.engine.calibration_shift import shift_warnings

    for w in shift_warnings(summ.get("calibration_shift") or []):
        echo(f"WARNING: {w}")
    if not summ["calibration"]:
        echo("no calibration: corrected shares are not available (give --calibration DIR)")
    for lim in summ["limits"]:
        echo(f"limits: {lim}")
    echo(f"wrote {res['out']}/bias.parquet, bias_stats.parquet, bias_items.parquet, bias.json")


@audit.command("bias")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--probe", "probes", multiple=True,
              help="Probe name (pictoworld-presentation, pictoworld-skin, pictoworld-profession, "
                   "real-gender-presentation, real-skin-tone, oracle-<attribute>) or YAML file; repeatable. "
                   "Default: by domain.")
@click.option("--clip", default="bundled-clip", show_default=True,
              help="Evaluator for zero-shot probes: bundled-clip[:DIR], open_clip:ARCH:WEIGHTS, hf-clip:DIR.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="CSV attribute,group,cls,share (group '*' for all); default uniform.")
@click.option("--calibration", default="auto", show_default=True,
              help="Labelled folder (labels.csv or a world render), 'pictoworld', 'none' or 'auto' "
                   "(PictoWorld renders for PictoWorld runs, none otherwise).")
@click.option("--calibration-n", type=click.IntRange(min=20), default=600, show_default=True)
@click.option("--training-spec", default="auto", show_default=True,
              help="Bias spec of the training data for amplification: default, FILE, none, auto.")
@click.option("--method", type=click.Choice(["em", "lsq"]), default="em", show_default=True)
@click.option("--bootstrap", type=click.IntRange(min=50), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--adjust", type=click.Choice(["holm", "bh"]), default="holm", show_default=True)
@click.option("--test", type=click.Choice(["chi2", "g"]), default="chi2", show_default=True)
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="labels.csv (image_id,attribute,label) on a random subset of RUN's images (`t2i-audit label`): "
                   "adds label-calibrated estimates (PPI++, per-group confusion), which become the headline.")
@ESTIMAND_OPTION
@long_running()
def bias_cmd(run: Path, probes, clip, reference, calibration, calibration_n, training_spec, method,
             bootstrap, seed, adjust, test, labels, estimand, progress, threads) -> None:
    """Bias audit of RUN: per-group class shares, raw, corrected and (with --labels) label-calibrated,
    with 95% intervals."""
    from t2i_audit.audits.bias.bias_audit import BiasAuditConfig, run_bias_audit

    cfg = BiasAuditConfig(probes=list(probes), clip=clip, reference=reference, calibration=calibration,
                          calibration_n=calibration_n, training_spec=training_spec, method=method,
                          bootstrap=bootstrap, seed=seed, adjust=adjust, test=test, progress=progress,
                          labels=labels, estimand=estimand)
    print_bias(run_bias_audit(run, cfg))


@audit.command("diversity")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--probe", "probes", multiple=True,
              help="Attribute probe (oracle-clothing, oracle-background, a zero-shot probe YAML); repeatable. "
                   "Default for PictoWorld runs: oracle-clothing and oracle-background; for real runs the "
                   "zero-shot real-background, real-age-group and real-clothing-colour (with --clip).")
@click.option("--clip", default="bundled-clip", show_default=True, help="Evaluator for zero-shot probes.")
@click.option("--bootstrap", type=click.IntRange(min=50), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--missing-fraction", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="A mode is missing when its share's upper 95% bound is below this x its training share.")
@click.option("--features", default="auto", show_default=True,
              help="Evaluator for precision/recall, density/coverage and Vendi (a --features spec), 'auto' "
                   "(= --clip) or 'none'.")
@ESTIMAND_OPTION
@long_running()
def diversity_cmd(run: Path, probes, clip, bootstrap, seed, missing_fraction, features, estimand, progress,
                  threads) -> None:
    """Diversity audit of RUN: attributes the prompt leaves open, per group, vs training."""
    from t2i_audit.audits.diversity.diversity_audit import DiversityAuditConfig, run_diversity_audit

    res = run_diversity_audit(run, DiversityAuditConfig(probes=list(probes), clip=clip, bootstrap=bootstrap,
                                                        seed=seed, missing_fraction=missing_fraction,
                                                        features=features, progress=progress,
                                                        estimand=estimand))
    if res["summary"].get("default_probes"):
        click.echo(f"probes: {', '.join(res['summary']['default_probes'])} (the defaults for this run; "
                   "choose others with --probe)")
    f = res["findings"]
    feats = f[f.attribute == "features"]
    for (attr, grp), d in f[f.attribute != "features"].groupby(["attribute", "group"], sort=False):
        r = d.set_index("statistic")
        shares = ", ".join(f"{s[6:-1]} {_fmt(r.loc[s, 'value'], r.loc[s, 'ci_low'], r.loc[s, 'ci_high'])}"
                           for s in r.index if s.startswith("share["))
        click.echo(f"{attr:<11}{grp:<18}n={int(r['n'].iloc[0]):<6}{shares}  missing {int(r.loc['missing_modes', 'value'])}"
                   f"  entropy ratio {r.loc['entropy_ratio', 'value']:.2f}  TV {r.loc['tv_to_training', 'value']:.2f}"
                   f"{'  FLAGGED' if r['flagged'].iloc[0] else ''}")
    for grp, d in feats.groupby("group", sort=False):
        r = d.set_index("statistic")
        click.echo(f"features   {grp:<18}n={int(r['n'].iloc[0]):<6}" + "  ".join(
            f"{s} {_fmt(r.loc[s, 'value'], r.loc[s, 'ci_low'], r.loc[s, 'ci_high'])}" for s in r.index))
    for s in res["summary"]["sentences"]:
        click.echo(f"finding: {s}")
    click.echo(f"rule: {res['summary']['rule']}")
    click.echo(f"wrote {res['out']}/diversity.parquet, diversity_stats.parquet, diversity_findings.parquet, "
               "diversity.json")


def load_image_dir(d: Path):
    """Images of a folder: a run (manifest 'path'), a world render / labelled folder (manifest or
    labels.csv 'file'), or every PNG/JPEG under it."""
    import pandas as pd

    from t2i_audit.core.rundir import listed_images
    from t2i_audit.errors import InputError

    if not d.is_dir():
        raise InputError(f"{d}: not a directory of images")
    rels = listed_images(d)
    if rels is None and (d / "labels.csv").is_file():
        rels = list(pd.read_csv(d / "labels.csv")["file"])
    paths = [d / str(r) for r in rels] if rels is not None else sorted(
        p for p in d.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not paths:
        raise InputError(f"{d}: no images found (PNG/JPEG, or a manifest)")
    imgs = []
    for p in paths:
        try:
            with open_image(p) as im:
                imgs.append(im.convert("RGB"))
        except (OSError, FileNotFoundError) as e:
            raise InputError(f"{p}: cannot read image ({e}); fix or remove it") from None
    return imgs, [str(p.relative_to(d)) for p in paths]


@audit.command("memorization")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--train", "train_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Training images: a folder, a world render output, or a run directory.")
@click.option("--clip", default="none", show_default=True,
              help="Evaluator for CLIP-space neighbours (bundled-clip[:DIR], open_clip:..., hf-clip:DIR) or none.")
@click.option("--space", type=click.Choice(["pixel", "clip"]), default="pixel", show_default=True,
              help="Which score decides a near-copy.")
@click.option("--target-fpr", type=click.FloatRange(0.0001, 0.5), default=0.01, show_default=True)
@click.option("--pixel-size", type=click.IntRange(4, 64), default=12, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@long_running()
def memorization_cmd(run: Path, train_dir: Path, clip, space, target_fpr, pixel_size, seed, top, progress,
                     threads) -> None:
    """Nearest training neighbours of RUN's images; near-copy rate with a 95% interval."""
    from t2i_audit.audits.memorization.memorization_audit import MemorizationConfig, audit_memorization
    from t2i_audit.core.io import atomic_write_json, atomic_write_parquet
    from t2i_audit.evals.runs.locking import RunLock
    from t2i_audit.evals.runs.sampling import load_run

    meta, manifest = load_run(run)
    from t2i_audit.audits.engine.readings import load_images

    gen = load_images(run, manifest)
    train, train_ids = load_image_dir(train_dir)
    ext = None
    if clip != "none":
        from t2i_audit.evals.features.extractors import load_extractor

        ext = load_extractor(clip)
    cfg = MemorizationConfig(space=space, target_fpr=target_fpr, pixel_size=pixel_size, seed=seed, top_k=top)
    pairs, summ = audit_memorization(gen, train, cfg, ext, list(manifest["image_id"].astype(str)), train_ids,
                                     progress=progress, generated_prompts=manifest.get("prompt_id"))
    summ.update(run_id=meta.get("run_id"), train=str(train_dir), extractor=getattr(ext, "id", None))
    out = run / "audits"
    with RunLock(run, purpose="audit memorization"):  # one writer per run directory
        out.mkdir(exist_ok=True)
        atomic_write_parquet(out / "memorization.parquet", pairs)
        atomic_write_json(out / "memorization.json", summ)
    t = summ["threshold"]
    click.echo(f"near-copies {summ['near_copies']}/{summ['n_generated']} = {summ['rate']:.4f} "
               f"[{summ['rate_ci_low']:.4f}, {summ['rate_ci_high']:.4f}] (95% Wilson), train n={summ['n_train']}")
    click.echo(f"threshold {space} cosine >= {t['value']:.4f} (calibration recall {t['recall']:.3f}, "
               f"FPR {t['fpr']:.4f}; planted exact/noise/crop copies vs distinct training images)")
    cols = [c for c in ("image_id", "pixel_score", "pixel_train_id", "clip_score", "clip_train_id", "near_copy")
            if c in pairs.columns]
    click.echo(pairs[cols].head(top).to_string(index=False))
    click.echo(f"wrote {out}/memorization.parquet and memorization.json")


@audit.command("plan")
@click.option("--labels", "labels_mode", is_flag=True,
              help="Plan labels instead: how many labelled images per group a label-calibrated (PPI++) share "
                   "interval of --width needs, given the probe's --agreement with labels.")
@click.option("--agreement", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="--labels: share of labelled images where the probe's reading equals the label.")
@click.option("--width", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True,
              help="--labels: total width of the 95% interval (0.1 = +-5 pp).")
@click.option("--images", type=click.IntRange(min=10), default=None,
              help="--labels: audited images per group (default: many).")
@click.option("--gap", type=float, default=None, help="Smallest difference in share to detect, e.g. 0.1.")
@click.option("--power", type=float, default=0.8, show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--base", type=float, default=0.5, show_default=True, help="Reference share (one-sample) "
              "or the first group's share (two-sample).")
@click.option("--design", type=click.Choice(["one-sample", "two-sample"]), default="one-sample", show_default=True)
@click.option("--design-effect", type=float, default=None, help="Variance inflation from clustering (>= 1).")
@click.option("--icc", type=float, default=0.0, show_default=True,
              help="Intra-prompt correlation; with --images-per-prompt gives the design effect.")
@click.option("--icc-from", type=click.Path(exists=True, path_type=Path), default=None,
              help="RUN (or its audits/bias.json): take --icc from a pilot's `audit bias` (the largest over probes).")
@click.option("--images-per-prompt", type=int, default=None)
@click.option("--prompts-per-group", type=int, default=None)
@click.option("--max-prompts", type=click.IntRange(min=1), default=12, show_default=True,
              help="With an ICC and neither size given: the most paraphrases per group you can write; "
                   "recommends prompts x images per prompt.")
@click.option("--accuracy", type=float, default=1.0, show_default=True, help="Probe accuracy (symmetric).")
@click.option("--abstain", type=float, default=0.0, show_default=True, help="Expected abstention rate.")
@click.option("--groups", type=int, default=1, show_default=True, help="Groups tested (Bonferroni split).")
@click.option("--simulate", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also confirm the power by this many Monte Carlo repeats.")
def plan_cmd(simulate, labels_mode, agreement, width, images, icc_from, max_prompts, **kw) -> None:
    """How many images per group (and per prompt) an audit needs to detect a gap; with --labels,
    how many labels per group a label-calibrated share needs."""
    from t2i_audit.errors import InputError
    from t2i_audit.stats.power import PlanConfig, labels_needed, plan, simulate_power

    if labels_mode:
        if agreement is None:
            raise InputError("--labels needs --agreement (the probe's agreement with labels, e.g. from a pilot "
                             "of 50 labels, or bias.json's calibration accuracy)")
        n = labels_needed(agreement, width, n_images=images)
        click.echo(f"labels per group: {n} for a 95% interval of width {width:g} (+-{50 * width:.3g} pp) on a "
                   f"share near 0.5 (the worst case), probe agreement {agreement:g}, "
                   f"{images or 'many'} audited images per group (PPI++ CLT variance; errors assumed balanced)")
        return
    if kw["gap"] is None:
        raise InputError("audit plan needs --gap (images to detect a difference) or --labels (labels per group)")
    if icc_from is not None:
        kw["icc"] = _pilot_icc(icc_from)
    if kw["icc"] > 0 and kw["images_per_prompt"] is None and kw["prompts_per_group"] is None \
            and kw["design_effect"] is None:
        pl = _recommend(PlanConfig(**kw), max_prompts)
    else:
        pl = plan(PlanConfig(**kw))
    c = pl.config
    click.echo(f"{c.design} test, alpha {c.alpha:g}{f' / {c.groups} groups' if c.groups > 1 else ''}, "
               f"power {c.power:g}: detect {c.base:g} -> {c.base + c.gap if c.base + c.gap <= 1 else c.base - c.gap:g}")
    click.echo(f"shares as the probe sees them: {pl.p0:.3f} -> {pl.p1:.3f}; design effect {pl.design_effect:.3g} "
               f"({pl.note}); abstention {c.abstain:g}")
    click.echo(f"images per group: {pl.images_per_group}"
               + (f" ({pl.prompts_per_group} prompts x {pl.images_per_prompt} images per prompt)"
                  if pl.images_per_prompt else ""))
    if simulate:
        click.echo(f"simulated power over {simulate} repeats: {simulate_power(pl, simulate):.3f}")


def _pilot_icc(path: Path) -> float:
    import json

    from t2i_audit.errors import InputError

    f = path / "audits" / "bias.json" if path.is_dir() else path
    if not f.is_file():
        raise InputError(f"--icc-from {path}: no audits/bias.json; run `t2i-audit audit bias` on the pilot first")
    icc = {k: v for k, v in (json.loads(f.read_text()).get("icc") or {}).items() if v == v}
    if not icc:
        raise InputError(f"--icc-from {f}: no prompt-level ICC (audit bias of this version, >= 2 images per prompt)")
    name = max(icc, key=icc.get)
    click.echo(f"ICC from {f}: {icc[name]:.3f} (probe {name}, the largest of {len(icc)})")
    return min(float(icc[name]), 0.99)


def _recommend(cfg, max_prompts: int):
    from t2i_audit.errors import InputError
    from t2i_audit.stats.power import recommend

    best, table = recommend(cfg, max_prompts)
    click.echo(f"designs for icc {cfg.icc:g} (prompts as a sample; t on P - 1 df):")
    for p in table:
        mark = "  <- recommended" if p is best else ""
        click.echo(f"  {p.prompts_per_group:>3} prompts x {p.images_per_prompt:>5} images = {p.images_per_group:>6}{mark}")
    if best is None:
        raise InputError(f"audit plan: no design with <= {max_prompts} prompts per group reaches the power at icc "
                         f"{cfg.icc:g}; write more paraphrases (--max-prompts) or aim at a larger --gap")
    return best


@audit.command("safety")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--detector", default="auto", show_default=True,
              help="nudenet (optional extra, AGPL-3.0) | concepts | q16 | python:module:fn; "
                   "auto: concepts for PictoWorld runs, nudenet otherwise.")
@click.option("--concept", "concepts", multiple=True, metavar="NAME=TEXT[@THRESHOLD]",
              help="Restricted concept of the concept checker (repeatable); PictoWorld runs calibrate a "
                   "missing threshold.")
@click.option("--clip", default="bundled-clip", show_default=True,
              help="Evaluator for concepts / q16: bundled-clip[:DIR], open_clip:ARCH:WEIGHTS, hf-clip:DIR.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="NudeNet score / q16 probability / callable score that flags an image.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="labels.csv (image_id,attribute=unsafe,label=unsafe|safe) on a random subset of delivered "
                   "images: label-calibrated (PPI++) rates become the headline.")
@click.option("--bootstrap", type=click.IntRange(min=50), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@ESTIMAND_OPTION
@long_running()
def safety_cmd(run: Path, detector, concepts, clip, threshold, labels, bootstrap, seed, estimand, progress,
               threads) -> None:
    """Safety audit of RUN: unsafe rate per prompt category (among delivered, blocked, unsafe or
    blocked) with 95% cluster-bootstrap intervals; raw detector beside label-calibrated."""
    from t2i_audit.audits.safety.safety_audit import SafetyAuditConfig, run_safety_audit

    cfg = SafetyAuditConfig(detector=detector, concepts=list(concepts), clip=clip, threshold=threshold,
                            labels=labels, bootstrap=bootstrap, seed=seed, progress=progress, estimand=estimand)
    res = run_safety_audit(run, cfg)
    s, rates = res["summary"], res["rates"]
    click.echo(f"detector {s['detector']['id']}; thresholds {s['thresholds']}; blocked {s['n_blocked']} of "
               f"{s['n_images']} ({s['blocked_source']})")
    stats = ["rate", "raw_rate", "blocked_rate", "unsafe_or_blocked_rate"]
    click.echo(f"{'category':<18}{'n':>6}" + "".join(f"  {c:<24}" for c in stats))
    for g, d in rates[rates.statistic.isin(stats)].groupby("group", sort=False):
        r = d.set_index("statistic")
        cells = "".join(f"  {_fmt(r.value[c], r.ci_low[c], r.ci_high[c]) if c in r.index else '—':<24}"
                        for c in stats)
        click.echo(f"{g:<18}{int(r.n.max()):>6}{cells}")
    basis = rates.loc[rates.statistic == "rate", "basis"]
    click.echo(f"rate basis: {', '.join(sorted(set(basis)))}")
    click.echo(f"wrote {res['out']}/safety.parquet, safety_items.parquet, safety.json")
