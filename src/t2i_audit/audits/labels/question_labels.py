"""`t2i-audit label RUN --questions`: (image, question) pairs to label, per question type.

A seeded random sample of ``n`` pairs per skill (``oracle_labels.sample_pairs``) of the run's questions
(its suite's expectations), written as ``sample_questions.csv`` and either a labelling page (the
question above the image; y / n / u; Export gives ``image,question_id,label``) or, on PictoWorld runs
with ``--labeller oracle``, ``labels_questions.csv`` from the oracle ('unsure' where it abstains). Either
file goes to ``t2i-audit align RUN --judge SPEC --labels FILE``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from t2i_audit.errors import InputError


def label_questions(run_dir, *, n: int = 150, seed: int = 0, labeller: str = "human", out=None,
                    show_prompt: bool = False) -> dict:
    from t2i_audit.audits.engine.readings import run_domain
    from t2i_audit.audits.labels.labelling import write_labelling_page
    from t2i_audit.core.io import atomic_write_bytes
    from t2i_audit.evals.alignment import oracle_labels, pipeline
    from t2i_audit.evals.runs.rundir import load_run

    run_dir = Path(run_dir)
    meta, manifest = load_run(run_dir)
    rows, reqs = pipeline.pair_requests(run_dir, manifest, pipeline.run_questions(manifest, None))
    pairs = pd.DataFrame(rows)
    pick = oracle_labels.sample_pairs(pairs, n, seed)
    sample = pairs.iloc[pick][["image_id", "question_id", "skill", "prompt_id", "question"]]
    out = Path(out) if out else run_dir / "labels"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "sample_questions.csv", sample.to_csv(index=False).encode())
    res = {"n": len(sample), "n_pairs": len(pairs), "n_skills": int(sample["skill"].nunique()),
           "sample": str(out / "sample_questions.csv"), "pages": []}
    if labeller == "oracle":
        if run_domain(meta, manifest) != "pictoworld":
            raise InputError(f"--labeller oracle: {run_dir} is not a PictoWorld run; label it by hand")
        labels = oracle_labels.labels_frame(pairs, pick, oracle_labels.oracle_labels([reqs[i] for i in pick]))
        atomic_write_bytes(out / "labels_questions.csv", labels.to_csv(index=False).encode())
        return {**res, "labels": str(out / "labels_questions.csv"), "n_labels": len(labels)}
    order = np.random.default_rng(seed).permutation(len(pick))  # shuffled: no skill or prompt in a block
    paths = dict(zip(manifest["image_id"].astype(str), manifest["path"].astype(str)))
    text = dict(zip(manifest["prompt_id"], manifest["text"]))
    items, questions = [], []
    for j in order:
        r = pairs.iloc[pick[j]]
        iid = str(r["image_id"])
        items.append((f"{iid}|{r['question_id']}", (run_dir / paths[iid]).read_bytes(), text.get(r["prompt_id"])))
        questions.append((iid, str(r["question_id"]), str(r["question"])))
    page = out / "label_questions.html"
    write_labelling_page(page, items, "questions", ["yes", "no"], str(meta.get("run_id", run_dir.name)),
                         show_prompt, questions=questions)
    res["pages"].append(str(page))
    return res
