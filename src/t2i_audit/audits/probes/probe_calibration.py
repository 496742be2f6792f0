"""Calibration: a probe's confusion matrix, measured on images whose attribute is known.

Labelled images come from PictoWorld renders (attributes drawn uniformly, so every class is
well represented) or from a user's folder: a ``world render`` output (``manifest.parquet`` with
``file`` and attribute columns) or any folder with ``labels.csv`` (a ``file`` column relative to
the folder, plus one column per attribute). Counts are kept per true class and predicted outcome
(each class, ``unsure``, ``no person``) so the bootstrap can resample them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2i_audit.audits.probes.attribute_probes import NO_PERSON, UNSURE, JointProbe, Probe, ProbeOutput
from t2i_audit.core.images import open_image
from t2i_audit.core.io import read_user_csv
from t2i_audit.errors import InputError
from t2i_audit.stats.correction import conditional_from_counts, outcome_index

OUTCOMES_EXTRA = ("unsure", "no person")


@dataclass
class Calibration:
    """Counts ``(K, K + 2)``: rows true class, columns predicted class, then unsure, no person."""

    probe: str
    attribute: str
    classes: tuple[str, ...]
    counts: np.ndarray
    source: str = ""

    @property
    def n(self) -> np.ndarray:
        return self.counts.sum(1)

    def conditional(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, a): A[j, i] = P(pred i | true j, answered), a[j] = P(abstain | true j)."""
        return conditional_from_counts(self.counts)

    @property
    def accuracy(self) -> float:
        """Share of answered calibration images read correctly."""
        k = len(self.classes)
        ans = self.counts[:, :k].sum()
        return float(np.trace(self.counts[:, :k]) / ans) if ans else float("nan")

    def summary(self) -> dict:
        k = len(self.classes)
        A, a = self.conditional()
        return {"probe": self.probe, "attribute": self.attribute, "source": self.source,
                "n": int(self.counts.sum()), "n_per_class": dict(zip(self.classes, map(int, self.n))),
                "accuracy_answered": self.accuracy,
                "recall_per_class": {c: float(A[j, j]) for j, c in enumerate(self.classes)},
                "abstain_per_class": {c: float(a[j]) for j, c in enumerate(self.classes)},
                "abstain_rate": float(self.counts[:, k:].sum() / max(self.counts.sum(), 1))}

    def to_dict(self) -> dict:
        return {"probe": self.probe, "attribute": self.attribute, "classes": list(self.classes),
                "outcomes": list(self.classes) + list(OUTCOMES_EXTRA),
                "counts": self.counts.astype(int).tolist(), "source": self.source}

    @staticmethod
    def from_dict(d: dict) -> Calibration:
        return Calibration(d["probe"], d["attribute"], tuple(d["classes"]),
                           np.asarray(d["counts"], dtype=np.int64), d.get("source", ""))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @staticmethod
    def load(path: str | Path) -> Calibration:
        return Calibration.from_dict(json.loads(Path(path).read_text()))


def confusion_counts(true_idx: np.ndarray, out: ProbeOutput) -> np.ndarray:
    k = len(out.classes)
    counts = np.zeros((k, k + 2), dtype=np.int64)
    np.add.at(counts, (np.asarray(true_idx), outcome_index(out.labels, k)), 1)
    return counts


def calibrate_from_output(probe: Probe, out: ProbeOutput, true_labels, source: str) -> Calibration:
    idx = {c: i for i, c in enumerate(out.classes)}
    bad = sorted({t for t in true_labels if t not in idx})
    if bad:
        raise InputError(f"{source}: labels {', '.join(map(str, bad[:5]))} are not classes of probe "
                         f"{probe.name} ({', '.join(out.classes)}); fix the labels or the probe")
    true_idx = np.array([idx[t] for t in true_labels], dtype=np.int64)
    return Calibration(probe.name, probe.attribute, tuple(out.classes), confusion_counts(true_idx, out),
                       source)


def calibrate(probe: Probe, images, true_labels, source: str = "labelled images") -> Calibration:
    """Run ``probe`` on labelled ``images`` and count its confusion matrix."""
    if len(images) != len(true_labels):
        raise InputError(f"{source}: {len(images)} images but {len(true_labels)} labels")
    return calibrate_from_output(probe, probe.predict(images), list(true_labels), source)


def pictoworld_people(n: int, seed: int = 12345, size: int = 32, spec=None):
    """``n`` person renders with presentation, skin and profession drawn uniformly (the captions
    state both attributes, so the bias spec does not skew them). Returns (images, DataFrame)."""
    import pandas as pd

    from t2i_audit.world.bias import BiasSpec
    from t2i_audit.world.render import render
    from t2i_audit.world.scene import sample_scene, scene_rng

    spec = spec or BiasSpec.load()
    imgs, rows = [], []
    for i in range(n):
        sc = sample_scene(scene_rng(seed, i), spec, kind="person", mode="both")
        imgs.append(render(sc, size))
        p = sc.person
        rows.append({"profession": p.profession, "presentation": p.presentation, "skin": p.skin})
    return imgs, pd.DataFrame(rows)


def labels_for(probe: Probe, table) -> list[str]:
    """The true label of each row of ``table`` for ``probe`` (joint probes join two columns)."""
    if isinstance(probe, JointProbe):
        for col in (probe.a.attribute, probe.b.attribute):
            if col not in table.columns:
                raise InputError(f"calibration labels have no {col!r} column; add it or drop the probe")
        return [f"{x}|{y}" for x, y in zip(table[probe.a.attribute], table[probe.b.attribute])]
    if probe.attribute not in table.columns:
        raise InputError(f"calibration labels have no {probe.attribute!r} column "
                         f"(columns: {', '.join(map(str, table.columns))}); add it")
    return [str(v) for v in table[probe.attribute]]


def predict_all(probes: list[Probe], images) -> dict[str, ProbeOutput]:
    """Run every probe once; a joint probe reuses its parts' outputs when they are in the list."""
    out: dict[str, ProbeOutput] = {}
    for p in sorted(probes, key=lambda q: isinstance(q, JointProbe)):
        if isinstance(p, JointProbe):
            a = out.get(p.a.name) or p.a.predict(images)
            b = out.get(p.b.name) or p.b.predict(images)
            out[p.name] = JointProbe.combine(a, b)
        else:
            out[p.name] = p.predict(images)
    return out


def calibrate_set(probes: list[Probe], images, table, src: str) -> dict[str, Calibration]:
    outs = predict_all(probes, images)
    return {p.name: calibrate_from_output(p, outs[p.name], labels_for(p, table), src) for p in probes}


def pictoworld_calibration_set(n: int = 600, seed: int = 12345, size: int = 32) -> tuple[list, object, str]:
    """(images, label table, source description) of the PictoWorld calibration renders."""
    imgs, table = pictoworld_people(n, seed, size)
    return imgs, table, f"PictoWorld renders (n={n}, seed={seed}, size={size}, attributes uniform)"


def calibrate_on_pictoworld(probes: list[Probe], n: int = 600, seed: int = 12345, size: int = 32
                            ) -> dict[str, Calibration]:
    return calibrate_set(probes, *pictoworld_calibration_set(n, seed, size))


def load_labelled_folder(directory: str | Path):
    """Images and label table from a folder: ``manifest.parquet`` (``world render``) or
    ``labels.csv`` (``file`` + attribute columns). Person rows only for a PictoWorld manifest."""

    d = Path(directory)
    if (d / "labels.csv").is_file():
        table = read_user_csv(d / "labels.csv", "--calibration labels", "save labels.csv as UTF-8 CSV")
        src = str(d / "labels.csv")
    elif (d / "manifest.parquet").is_file():  # a PictoWorld data set, read where it is written
        from t2i_audit.world.dataset import load_manifest

        table = load_manifest(d)
        if "kind" in table.columns:
            table = table[table["kind"] == "person"]
        src = str(d / "manifest.parquet")
    else:
        raise InputError(f"{d}: no labels.csv or manifest.parquet; write labels.csv with a 'file' column "
                         "and one column per attribute, or render one with `t2i-audit world render`")
    if "file" not in table.columns:
        raise InputError(f"{src}: needs a 'file' column with image paths relative to {d}")
    if table.empty:
        raise InputError(f"{src}: no labelled person images")
    imgs = []
    for f in table["file"]:
        p = d / str(f)
        if not p.is_file():
            raise InputError(f"{src}: image {f} listed but missing under {d}; fix the path or remove the row")
        with open_image(p) as im:
            imgs.append(im.convert("RGB"))
    return imgs, table.reset_index(drop=True), src


def calibrate_on_folder(probes: list[Probe], directory: str | Path) -> dict[str, Calibration]:
    imgs, table, src = load_labelled_folder(directory)
    return calibrate_set(probes, imgs, table, src)


__all__ = ["Calibration", "calibrate", "calibrate_set", "calibrate_on_pictoworld", "calibrate_on_folder",
           "pictoworld_calibration_set",
           "confusion_counts", "conditional_from_counts", "outcome_index", "pictoworld_people",
           "load_labelled_folder", "labels_for", "predict_all", "NO_PERSON", "UNSURE"]
