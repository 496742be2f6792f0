"""Reproduce one image of a run from what the run recorded, and check it byte for byte.

run.json records the generator spec (and a hash of its config), the sampler parameters, the
package, torch and Python versions and the torch thread count; the manifest records each image's
prompt text, seed and sha256. :func:`reproduce` rebuilds the generator from that spec, draws the one
image from its (prompt, seed) with the recorded parameters, encodes it exactly as ``sample`` does,
and compares the sha256. A mismatch lists what differs between the recording and this process
(generator config, versions, threads), the usual causes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from t2i_audit.core.io import atomic_write_bytes, sha256_bytes
from t2i_audit.errors import InputError, did_you_mean
from t2i_audit.evals.adapters.registry import GeneratorSpec, config_hash, load_generator
from t2i_audit.evals.runs.sampling import _encode, environment, load_run


@dataclass
class ReproduceResult:
    image_id: str
    expected_sha256: str
    sha256: str
    prompt: str
    seed: int
    out: str | None = None
    differences: list[str] = field(default_factory=list)  # recorded vs now (config, versions, threads)

    @property
    def match(self) -> bool:
        return self.sha256 == self.expected_sha256


def _differences(meta: dict, gen) -> list[str]:
    diffs = []
    recorded = (meta.get("generator") or {}).get("config_hash")
    now = config_hash(gen.config())
    if recorded and recorded != now:
        diffs.append(f"generator config hash {recorded} (run) vs {now} (now): the checkpoint or code changed")
    env_then, env_now = meta.get("environment") or {}, environment()
    env_then.setdefault("package", meta.get("package_version"))
    for k, v in env_now.items():
        if env_then.get(k) is not None and env_then.get(k) != v:
            diffs.append(f"{k} {env_then.get(k)} (run) vs {v} (now)")
    return diffs


def reproduce(run_dir: str | Path, image_id: str, out: str | Path | None = None, generator=None) -> ReproduceResult:
    """Regenerate ``image_id`` of the run at ``run_dir``; write it to ``out`` if given."""
    meta, manifest = load_run(run_dir)
    rows = manifest[manifest["image_id"].astype(str) == image_id]
    if rows.empty:
        ids = manifest["image_id"].astype(str).tolist()
        hint = did_you_mean(image_id, ids, form="did you mean {}? ")
        raise InputError(f"{run_dir}: no image {image_id!r} in the manifest; {hint}"
                         f"ids look like {ids[0]!r} (column image_id of manifest.parquet)")
    row = rows.iloc[0]
    spec = (meta.get("generator") or {}).get("id")
    if not spec:
        raise InputError(f"{Path(run_dir) / 'run.json'}: no generator id recorded; cannot reproduce")
    gen = generator or load_generator(GeneratorSpec.parse(spec))
    images = gen([str(row["text"])], [int(row["seed"])], dict(meta.get("params") or {}))
    if len(images) != 1:
        raise InputError(f"{spec}: returned {len(images)} images for one prompt")
    data, _, _ = _encode(images[0])
    if out is not None:
        atomic_write_bytes(out, data)
    return ReproduceResult(image_id=image_id, expected_sha256=str(row["sha256"]), sha256=sha256_bytes(data),
                           prompt=str(row["text"]), seed=int(row["seed"]), out=str(out) if out else None,
                           differences=_differences(meta, gen))
