"""`t2i-audit label RUN`: a seeded stratified subset of a run's images to label, as a self-contained
HTML page (labels.csv comes out of it), or labelled by the PictoWorld oracle for validation."""

from __future__ import annotations

from pathlib import Path

import click

from t2i_audit.commands.options import long_running


@click.command("label")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--attribute", "attributes", multiple=True,
              help="Attribute to label (presentation, skin); repeat for several. Classes come from --probe.")
@click.option("--questions", is_flag=True, help="Label (image, question) pairs of the run's questions instead: --n "
              "pairs per question type; the page shows the question above the image (y / n / u).")
@click.option("--probe", "probes", multiple=True,
              help="Probe whose classes the labels use (name or YAML), one per --attribute; default by domain.")
@click.option("--n", type=click.IntRange(min=1), default=150, show_default=True,
              help="Images to label: per group with --per-group, else in total.")
@click.option("--per-group/--total", default=True, show_default=True, help="Stratify by prompt group.")
@click.option("--group-slot", "group_slots", multiple=True, default=("profession", "occupation"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--labeller", type=click.Choice(["human", "oracle"]), default="human", show_default=True,
              help="human: write the labelling page; oracle: fill labels.csv with the PictoWorld oracle.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for label_page.html / labels.csv and sample.csv [default: RUN/labels].")
@click.option("--show-prompt", is_flag=True, help="Show each image's prompt on the page (can bias labellers).")
@long_running(threads=False)
def label(run: Path, attributes, questions, probes, n, per_group, group_slots, seed, labeller, out, show_prompt,
          progress: bool) -> None:
    """Draw a random subset of RUN's images to label, stratified by group, and write a labelling page
    (keys 1..K classes, u unsure, n no person, Backspace undo; Export saves labels.csv), or with
    --labeller oracle write labels.csv from the PictoWorld oracle. Then: audit bias RUN --labels FILE."""
    from t2i_audit.audits.labels.run_labelling import label_run
    from t2i_audit.errors import InputError

    if questions:
        return _label_questions(run, n, seed, labeller, out, show_prompt)
    if not attributes:
        raise InputError("give --attribute NAME (repeatable), or --questions to label (image, question) pairs")
    if probes and len(probes) != len(attributes):
        raise InputError(f"--probe: give one per --attribute ({len(attributes)}), or none for the defaults")
    res = label_run(run, list(attributes), list(probes) or None, n=n, per_group=per_group,
                    group_slots=tuple(group_slots), seed=seed, labeller=labeller, out=out, show_prompt=show_prompt)
    click.echo(f"sampled {res['n']} of {res['n_images']} images in {res['n_groups']} groups (seed {seed}) "
               f"-> {res['sample']}")
    for note in res["notes"]:
        click.echo(f"note: {note}")
    for path in res["pages"]:
        click.echo(f"labelling page: {path} (open it in a browser; Export saves labels.csv)")
    if res.get("labels"):
        click.echo(f"wrote {res['labels']} ({res['n_labels']} labels by the oracle); "
                   f"next: t2i-audit audit bias {run} --labels {res['labels']}")


def _label_questions(run: Path, n: int, seed: int, labeller: str, out, show_prompt: bool) -> None:
    from t2i_audit.audits.labels.question_labels import label_questions

    res = label_questions(run, n=n, seed=seed, labeller=labeller, out=out, show_prompt=show_prompt)
    click.echo(f"sampled {res['n']} of {res['n_pairs']} (image, question) pairs, up to {n} per question type "
               f"({res['n_skills']} types, seed {seed}) -> {res['sample']}")
    for path in res["pages"]:
        click.echo(f"labelling page: {path} (question above the image; y yes, n no, u unsure; Export saves "
                   "labels.csv with image,question_id,label)")
    nxt = res.get("labels") or "labels.csv"
    if res.get("labels"):
        click.echo(f"wrote {res['labels']} ({res['n_labels']} labels by the oracle)")
    click.echo(f"next: t2i-audit align {run} --judge SPEC --labels {nxt}")
