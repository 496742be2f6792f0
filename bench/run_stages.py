"""End-to-end stage times of the main job `t2i-audit run` (sample -> score -> audits -> report),
then the same command again (resume: every stage finds its work done), side by side.

    python bench/run_stages.py [--checkpoint DIR] [--threads 1] [--limit N] [--images-per-prompt K]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_args, machine_line, resolve_checkpoint, setup, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts (default: the whole suite)")
    ap.add_argument("--images-per-prompt", type=int, default=None)
    ap.add_argument("--suite", default=None, help="default: the job's default suite")
    ap.add_argument("--keep", default=None, help="write the job here and keep it")
    add_common_args(ap)
    args = ap.parse_args()
    setup(args)
    from t2i_audit.job import JobConfig, run_job

    ckpt = resolve_checkpoint(args.checkpoint)
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="t2i-bench-run-")) / "job"
    kw = {"suite": args.suite} if args.suite else {}
    cfg = JobConfig(checkpoint=ckpt, out=str(out), limit=args.limit, images_per_prompt=args.images_per_prompt,
                    threads=args.threads, progress=False, **kw)
    try:
        first = run_job(cfg, echo=lambda *a, **k: None)
        again = run_job(cfg, echo=lambda *a, **k: None)
    finally:
        if not args.keep:
            shutil.rmtree(out.parent, ignore_errors=True)
    total = first.stage_seconds.get("total") or sum(first.stage_seconds.values())
    rows = []
    for stage, sec in first.stage_seconds.items():
        if stage == "total":
            continue
        rows.append([stage, sec, 100.0 * sec / total, again.stage_seconds.get(stage)])
    rows.append(["total", total, 100.0, again.stage_seconds.get("total")])
    print(machine_line(args))
    print(f"t2i-audit run on {ckpt} ({cfg.suite}, limit {args.limit}, images/prompt {args.images_per_prompt}); "
          "wall seconds")
    print(table(["stage", "first run (s)", "% of total", "re-run, resumed (s)"], rows))


if __name__ == "__main__":
    main()
