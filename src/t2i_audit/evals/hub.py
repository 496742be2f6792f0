"""Hugging Face hub ids resolved through the local hub cache, as transformers/diffusers/open_clip do.

``ORG/NAME[@REVISION]`` names a snapshot in the cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
else ``~/.cache/huggingface/hub``), laid out as ``models--ORG--NAME/{refs/REVISION, snapshots/COMMIT/…,
blobs/}``. The cache is always read first (``huggingface_hub.snapshot_download(local_files_only=True)``);
only when the snapshot is absent and ``HF_HUB_OFFLINE`` is not set is it downloaded, and then only
JSON/text/tokenizer files and ``.safetensors`` weights: pickle weights (``.bin``/``.pt``/``.ckpt``) are
never fetched nor opened. The resolved commit hash is recorded in the model's id, hence in run.json.
Environment variables are read at call time, not at import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from t2i_audit.errors import InputError

_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# what a download may fetch: configs, tokenizers and safetensors weights, nothing that unpickles
SAFE_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken", "*.vocab"]


@dataclass(frozen=True)
class HubSnapshot:
    """One resolved snapshot: the id asked for, the commit it resolved to and its local folder."""

    repo_id: str
    revision: str
    commit: str
    path: Path

    @property
    def pinned(self) -> str:
        """``ORG/NAME@COMMIT``: the exact, reproducible reference recorded in ids and run.json."""
        return f"{self.repo_id}@{self.commit}"

    def to_dict(self) -> dict:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def looks_like_hub_id(target: str) -> bool:
    """``ORG/NAME[@REVISION]`` that is not an existing local path."""
    return bool(_ID.fullmatch(target)) and not Path(target).expanduser().exists()


def cache_dir() -> Path:
    """The hub cache the libraries would use now (``HF_HUB_CACHE`` > ``HF_HOME``/hub > default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve(spec: str, what: str) -> HubSnapshot:
    """The cached snapshot for ``ORG/NAME[@REVISION]`` (revision: branch, tag or commit; default main).

    ``what`` names the option in errors (e.g. ``"diffusers:"``). Raises InputError when the id is
    malformed, or the snapshot is not cached and cannot (offline) or could not be downloaded."""
    from huggingface_hub import snapshot_download

    if not _ID.fullmatch(spec):
        raise InputError(
            f"{what}{spec}: not a hub id; write ORG/NAME or ORG/NAME@REVISION, or give a local path"
        )
    repo_id, _, revision = spec.partition("@")
    revision = revision or "main"
    cache = cache_dir()
    try:
        path = snapshot_download(repo_id, revision=revision, cache_dir=str(cache), local_files_only=True)
    except Exception as e:  # LocalEntryNotFoundError and friends: not (fully) in the cache
        if offline():
            raise InputError(
                f"{what}{spec}: no such local folder, and not in the Hugging Face cache {cache} while "
                "HF_HUB_OFFLINE is set; run "
                f"`hf download {repo_id} --revision {revision}` where the hub is reachable (or set "
                f"HF_HOME to the cache that has it)"
            ) from None
        try:
            path = snapshot_download(
                repo_id, revision=revision, cache_dir=str(cache), allow_patterns=SAFE_PATTERNS
            )
        except Exception as e2:
            raise InputError(
                f"{what}{spec}: not in the Hugging Face cache {cache} ({type(e).__name__}) and the "
                f"download failed ({type(e2).__name__}: {str(e2)[:120]}); check the id and revision, "
                "or set HF_HOME to a cache that has it"
            ) from None
    p = Path(path)
    return HubSnapshot(repo_id, revision, p.name, p)


def require_safetensors(folder: Path, label: str) -> None:
    """Refuse a snapshot (or a sub-folder of one) whose weights are pickles only.

    Every folder holding a pickle weights file must also hold a ``.safetensors`` file (then the
    pickle is ignored by the safetensors-only loaders); otherwise InputError names the file."""
    dirs: dict[Path, list[Path]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts):
            dirs.setdefault(p.parent, []).append(p)
    for files in dirs.values():
        pickles = [f for f in files if f.suffix in PICKLE_SUFFIXES]
        if pickles and not any(f.suffix == ".safetensors" for f in files):
            rel = pickles[0].relative_to(folder).as_posix()
            raise InputError(
                f"{label}: {rel} is a pickle weights file with no .safetensors beside it; pickles "
                "can run code when loaded and are refused: use a revision with safetensors weights"
            )
