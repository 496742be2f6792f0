"""`t2i-audit reproduce RUN IMAGE_ID`: regenerate one image from the run's record and check its sha256."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("reproduce")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.argument("image_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the regenerated PNG here.")
@long_running(apply_threads=False, threads_help="torch threads (default: as recorded in run.json).")
def reproduce(run: Path, image_id: str, out: Path | None, threads: int | None, progress: bool) -> None:
    """Regenerate IMAGE_ID of RUN from run.json and the manifest (generator, params, prompt, seed) and
    compare its sha256 with the manifest's: exit 0 on a match, 1 on a mismatch."""
    from t2i_audit.core.rundir import RUN_JSON, read_run_json
    from t2i_audit.core.threads import set_threads
    from t2i_audit.errors import InputError
    from t2i_audit.evals.runs.reproduce import reproduce as run_reproduce

    recorded = None
    try:
        recorded = (read_run_json(run / RUN_JSON).get("environment") or {}).get("threads")
    except (OSError, InputError):
        pass  # reproduce below reports a missing or malformed run.json
    set_threads(int(threads or recorded) if (threads or recorded) else None)
    r = run_reproduce(run, image_id, out)
    state = "match" if r.match else "mismatch"
    click.echo(f"{state}: {r.image_id} (prompt {r.prompt!r}, seed {r.seed}): sha256 {r.sha256} "
               f"{'==' if r.match else '!='} {r.expected_sha256} (manifest)")
    for d in r.differences:
        click.echo(f"  differs from the run: {d}")
    if r.out:
        click.echo(f"wrote {r.out}")
    if not r.match:
        sys.exit(1)
