"""The main job, `t2i-audit run`: sample -> score -> audits -> report (-> gate) for one checkpoint.

Every stage is resumable: sampling skips images whose hash checks out, scoring hits the embedding
cache, and the audit and report are recomputed from the files. The summary printed at the end
carries n and a 95% interval for every number, and the wall time of each stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from t2i_audit.core.config import ConfigBase
from t2i_audit.core.threads import set_threads
from t2i_audit.errors import InputError

DEFAULT_SUITE = "pictoworld-audit"
# Metrics per suite kind: PictoWorld suites have oracle expectations; a quality suite has a reference.
PICTOWORLD_METRICS = ("clip_score", "skills")


@dataclass
class JobConfig(ConfigBase):
    checkpoint: str = "bundled"  # 'bundled', a checkpoint DIR, or any --generator spec (diffusers:DIR, ...)
    suite: str = DEFAULT_SUITE
    out: str = "t2i-audit-out"
    rules: str | None = None
    baseline: str | None = None
    images_per_prompt: int | None = None
    limit: int | None = None
    params: dict = field(default_factory=dict)
    metrics: tuple[str, ...] = PICTOWORLD_METRICS
    bias: bool = True
    estimand: str = "prompts"  # which question intervals answer: 'prompts' or 'these-prompts' (stats.clusters)
    oracle_labels: int = 150  # PictoWorld runs: oracle labels per profession for label-calibrated bias; 0 off
    diversity: bool = True
    alignment: bool = True  # PictoWorld runs: the bundled judge on the suite's questions + 150 oracle labels per skill
    threads: int | None = None
    progress: bool = True


def generator_spec(checkpoint: str) -> str:
    if checkpoint == "bundled" or ":" in checkpoint.split("/")[0]:
        return checkpoint
    if Path(checkpoint).is_dir():
        return f"checkpoint:{checkpoint}"
    raise InputError(f"--checkpoint {checkpoint!r}: not 'bundled', a checkpoint directory, or a generator "
                     "spec (checkpoint:DIR, diffusers:DIR, folder:DIR, python:module:callable)")


@dataclass
class JobResult:
    run_dir: Path
    report: Path | None
    stage_seconds: dict
    gate_exit: int | None
    summary: str


def run_job(cfg: JobConfig, echo=print) -> JobResult:
    from t2i_audit.evals.runs.sampling import SampleConfig, sample
    from t2i_audit.evals.scoring.score import ScoreConfig, format_table, score_run
    from t2i_audit.reports.report import render_report

    set_threads(cfg.threads)
    t_all = time.perf_counter()
    run_dir = Path(cfg.out)
    times: dict[str, float] = {}
    stages = ["sample", "score"] + (["bias audit"] if cfg.bias else []) + (
        ["diversity audit"] if cfg.diversity else []) + (["alignment"] if cfg.alignment else []) + ["report"] + (["gate"] if cfg.rules else [])

    def stage(name: str):
        echo(f"[{stages.index(name) + 1}/{len(stages)}] {name} ...")
        return time.perf_counter()

    t = stage("sample")
    r = sample(SampleConfig(suite=cfg.suite, out=str(run_dir), generator=generator_spec(cfg.checkpoint),
                            images_per_prompt=cfg.images_per_prompt, limit=cfg.limit, params=cfg.params,
                            progress=cfg.progress))
    times["sample"] = time.perf_counter() - t
    echo(f"      {r.n_images} images ({r.n_generated} generated, {r.n_reused} reused) in {times['sample']:.0f} s")

    t = stage("score")
    res = score_run(run_dir, ScoreConfig(metrics=cfg.metrics, progress=cfg.progress))
    times["score"] = time.perf_counter() - t
    table = format_table(res["aggregates"])

    bias_text = ""
    pictoworld = _pictoworld(run_dir)  # the run's domain, read once for both audits
    if cfg.bias:
        from t2i_audit.audits.bias.bias_audit import run_bias_audit

        t = stage("bias audit")
        out = run_bias_audit(run_dir, job_bias_config(run_dir, cfg, pictoworld))
        times["bias audit"] = time.perf_counter() - t
        bias_text = bias_summary(out)
    if cfg.diversity:
        bias_text += diversity_stage(run_dir, cfg, stage, times) if pictoworld else ""
    if cfg.alignment and pictoworld:
        bias_text += "\n" + alignment_stage(run_dir, cfg, stage, times)

    t = stage("report")
    gate_exit = None
    if cfg.rules:
        from t2i_audit.reports.gate.run import gate_run_dir

        times["report"] = 0.0
        t2 = stage("gate")
        g = gate_run_dir(run_dir, cfg.rules, cfg.baseline)
        gate_exit = g.exit_code
        times["gate"] = time.perf_counter() - t2
        echo(g.table())
        t = time.perf_counter()
    paths = render_report(run_dir)
    times["report"] = times.get("report", 0.0) + time.perf_counter() - t
    times["total"] = time.perf_counter() - t_all
    summary = "\n".join([
        f"t2i-audit run: {cfg.suite} on {cfg.checkpoint} -> {run_dir}",
        table, bias_text,
        "stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()),
        f"report: {paths.html}",
    ])
    return JobResult(run_dir, paths.html, times, gate_exit, summary)


def _pictoworld(run_dir: Path) -> bool:
    from t2i_audit.audits.engine.readings import run_domain
    from t2i_audit.evals.runs.sampling import load_run

    return run_domain(*load_run(run_dir)) == "pictoworld"


def job_bias_config(run_dir: Path, cfg: JobConfig, pictoworld: bool):
    """On PictoWorld runs the job runs what a real-model user runs -- the CLIP probes plus labels on a
    stratified subset (here by the oracle) -- and reads every image with the oracle beside them."""
    from t2i_audit.audits.bias.bias_audit import BiasAuditConfig, default_probes

    if not (cfg.oracle_labels and pictoworld):
        return BiasAuditConfig(progress=cfg.progress, estimand=cfg.estimand)
    from t2i_audit.audits.labels.run_labelling import label_run

    lab = label_run(run_dir, ["presentation", "skin"], n=cfg.oracle_labels, labeller="oracle", seed=0)
    return BiasAuditConfig(probes=default_probes("pictoworld") + ["oracle-presentation", "oracle-skin"],
                           labels=lab["labels"], progress=cfg.progress, estimand=cfg.estimand)


def diversity_stage(run_dir: Path, cfg: JobConfig, stage, times: dict) -> str:
    from t2i_audit.audits.diversity.diversity_audit import DiversityAuditConfig, run_diversity_audit

    t = stage("diversity audit")
    res = run_diversity_audit(run_dir, DiversityAuditConfig(progress=cfg.progress, estimand=cfg.estimand))
    times["diversity audit"] = time.perf_counter() - t
    lines = res["summary"]["sentences"] or ["no attribute left open by the prompts is collapsed or shifted"]
    return "\ndiversity (attributes the prompts leave open, vs training):\n" + "\n".join(f"  {s}" for s in lines)


def alignment_stage(run_dir: Path, cfg: JobConfig, stage, times: dict) -> str:
    from t2i_audit.evals.alignment.main_job import score_alignment, summary_text

    t = stage("alignment")
    s = score_alignment(run_dir, progress=cfg.progress)
    times["alignment"] = time.perf_counter() - t
    return summary_text(s)


def bias_summary(out: dict) -> str:
    """Neutral-prompt shares per profession (the headline estimate: reports.tables.bias_headline),
    with 95% intervals."""
    from t2i_audit.reports.tables import bias_headline

    bias = out["bias"]
    rows = bias[(bias.section == "neutral")] if "section" in bias else bias
    lines = ["bias (neutral prompts; share [95% CI]; label-calibrated (PPI++) where labelled, else corrected "
             "for probe error where calibrated):"]
    for (probe, attr), d in rows.groupby(["probe", "attribute"], sort=False):
        if "+" in attr or "×" in attr:
            continue
        lines.append(f"  {attr} ({probe})")
        for grp, g in d.groupby("group", sort=False):
            cells = []
            for _, x in g.iterrows():
                v, lo, hi = bias_headline(x)
                ref = f" ref {x.reference:.2f}" if x.reference == x.reference else ""
                cells.append(f"{x.cls} {v:.2f} [{lo:.2f},{hi:.2f}]{ref}")
            lines.append(f"    {grp:<20} n={int(g.iloc[0].n_images):<4} " + "; ".join(cells))
    from t2i_audit.audits.engine.calibration_shift import shift_warnings

    lines += [f"WARNING: {w}" for w in shift_warnings(out["summary"].get("calibration_shift") or [])]
    return "\n".join(lines)
