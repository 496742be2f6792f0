"""Labelling a run: the stratified subset, its HTML page(s) or oracle labels (see commands/label.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from t2i_audit.audits.engine.readings import image_table, load_images, run_domain
from t2i_audit.audits.labels.labelling import (
    NO_PERSON,
    UNSURE,
    draw_label_sample,
    page_items,
    write_labelling_page,
)
from t2i_audit.errors import InputError


def _classes(attribute: str, probe: str | None, domain: str) -> tuple[str, ...]:
    from t2i_audit.audits.probes.attribute_probes import DEFAULT_PROBES, load_probe_spec

    name = probe or DEFAULT_PROBES[domain].get(attribute)
    if name is None:
        raise InputError(f"--attribute {attribute}: no default probe for it; pass --probe NAME_OR_YAML")
    spec = load_probe_spec(name)
    if spec.attribute != attribute:
        raise InputError(f"--probe {name} reads {spec.attribute!r}, not {attribute!r}")
    return tuple(spec.prompts)


def oracle_labels(run_dir: Path, sample: pd.DataFrame, attributes: list[str]) -> pd.DataFrame:
    """labels.csv rows from the PictoWorld oracle (validation only: on generated images the oracle
    has its own, measured, error): class, 'unsure' when it cannot read, 'no person'."""
    from t2i_audit.audits.probes.attribute_probes import NO_PERSON as NO_PERSON_IDX
    from t2i_audit.audits.probes.attribute_probes import OracleProbe

    images = load_images(run_dir, sample)
    rows = []
    for attr in attributes:
        out = OracleProbe(attr).predict(images)
        for iid, lab in zip(sample["image_id"].astype(str), out.labels):
            name = out.classes[lab] if lab >= 0 else (NO_PERSON if lab == NO_PERSON_IDX else UNSURE)
            rows.append({"image_id": iid, "attribute": attr, "label": name})
    return pd.DataFrame(rows, columns=["image_id", "attribute", "label"])


def label_run(run_dir, attributes: list[str], probes: list[str] | None = None, *, n: int = 150,
              per_group: bool = True, group_slots=("profession", "occupation"), seed: int = 0,
              labeller: str = "human", out=None, show_prompt: bool = False) -> dict:
    from t2i_audit.core.io import atomic_write_bytes
    from t2i_audit.evals.runs.sampling import load_run

    run_dir = Path(run_dir)
    meta, manifest = load_run(run_dir)
    domain = run_domain(meta, manifest)
    classes = {a: _classes(a, (probes or [None] * len(attributes))[i], domain) for i, a in enumerate(attributes)}
    table = image_table(manifest, group_slots)
    people = table["group"].map(lambda g: not g.startswith("category=")).to_numpy()
    if people.any():  # a mixed suite: label the prompts about people, as the bias audit reads them
        manifest, table = manifest[people].reset_index(drop=True), table[people].reset_index(drop=True)
    sample = draw_label_sample(manifest.assign(group=table["group"].to_numpy()), "group", n, per_group, seed)
    out = Path(out) if out else run_dir / "labels"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "sample.csv", sample[["image_id", "prompt_id", "group"]].to_csv(index=False).encode())
    res = {"n": len(sample), "n_images": len(manifest), "n_groups": int(sample["group"].nunique()),
           "sample": str(out / "sample.csv"), "pages": [],
           "notes": sorted({str(x) for x in sample.get("note", []) if isinstance(x, str) and x})}
    if labeller == "oracle":
        if domain != "pictoworld":
            raise InputError(f"--labeller oracle: {run_dir} is not a PictoWorld run; label it by hand")
        labels = oracle_labels(run_dir, sample, attributes)
        atomic_write_bytes(out / "labels.csv", labels.to_csv(index=False).encode())
        return {**res, "labels": str(out / "labels.csv"), "n_labels": len(labels)}
    items = page_items(run_dir, sample)
    for a in attributes:
        page = out / f"label_{a}.html"
        write_labelling_page(page, items, a, list(classes[a]), str(meta.get("run_id", run_dir.name)), show_prompt)
        res["pages"].append(str(page))
    return res
