"""Crash-safe file writes for run directories.

Every file a run writes goes through a temporary file in the same directory, is fsync'ed, and is
moved into place with ``os.replace`` (atomic on POSIX), so a reader or a resumed run sees either the
old file or the complete new one, never a torn write. Appends to a journal are single ``write`` calls
of one line followed by fsync; a reader skips a torn last line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry (the rename itself) to disk; a no-op where unsupported."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + os.replace).

    ``fsync`` flushes the data before the rename, so that even after a power loss the name never
    points at an empty file; ``sync_dir`` also flushes the rename itself (callers writing many files
    may flush the directory once at the end instead). A killed process never leaves a torn file
    either way: the rename is atomic.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX + path.name + ".")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise with_filename(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync and sync_dir:
        fsync_dir(path.parent)


def with_filename(error: OSError, path: str | Path) -> OSError:
    """``error`` naming ``path`` where it names no file (a failed ``write``/``fsync`` names none), so
    that the CLI's one line says which file could not be written."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or os.strerror(error.errno), str(path))


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj, *, fsync: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", fsync=fsync)


def atomic_write_parquet(path: str | Path, df) -> None:
    """Write a pandas DataFrame as Parquet atomically."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def remove_temp_files(directory: str | Path) -> int:
    """Delete leftovers of interrupted atomic writes in ``directory``; returns how many."""
    n = 0
    d = Path(directory)
    if not d.is_dir():
        return 0
    for p in d.iterdir():
        if p.name.startswith(TMP_PREFIX) and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class Journal:
    """An append-only JSON-lines file; each record is one ``write`` + fsync.

    A process killed mid-append can leave a torn last line; :meth:`read` skips lines that do not
    parse, and opening for append first terminates such a line so the next record starts clean.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = None

    @staticmethod
    def read(path: str | Path) -> list[dict]:
        path = Path(path)
        if not path.is_file():
            return []
        out = []
        for line in path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # torn write from a killed process
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def open(self) -> Journal:
        needs_newline = False
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        self._f = open(self.path, "ab", buffering=0)
        if needs_newline:
            self._f.write(b"\n")
        return self

    def append(self, record: dict, *, sync: bool = True) -> None:
        """Append one record in a single write; ``sync=False`` defers the fsync to :meth:`sync`
        (a kill never loses a written line, only a power loss can)."""
        if self._f is None:
            self.open()
        try:
            self._f.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
            if sync:
                os.fsync(self._f.fileno())
        except OSError as e:
            raise with_filename(e, self.path) from None

    def sync(self) -> None:
        if self._f is not None:
            try:
                os.fsync(self._f.fileno())
            except OSError as e:
                raise with_filename(e, self.path) from None

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def read_user_text(path: str | Path, what: str, fix: str = "save it as UTF-8 text") -> str:
    """A user-supplied text file (suite, rules, bias spec, reference or label CSV) as ``str``.

    Binary content (a NUL byte) or bytes that are not UTF-8 raise :class:`InputError` with one line
    naming ``what``, the file, the first bad byte's offset and ``fix``, never a ``UnicodeDecodeError``.
    A UTF-8 byte-order mark is dropped. OSErrors propagate (callers word "not found" their own way).
    """
    from t2i_audit.errors import InputError

    data = Path(path).read_bytes()
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(f"{what} {path}: binary content (a NUL byte at offset {nul}), not a text file; "
                         f"{fix}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                         f"{fix}") from None


def read_user_csv(path: str | Path, what: str, fix: str, **kwargs):
    """A user-supplied CSV as a pandas DataFrame via :func:`read_user_text`: undecodable, binary,
    empty or unparsable files raise one-line :class:`InputError`\\ s. ``kwargs`` go to ``read_csv``."""
    import io

    import pandas as pd

    from t2i_audit.errors import InputError

    text = read_user_text(path, what, fix)
    try:
        return pd.read_csv(io.StringIO(text), **kwargs)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} {path}: the file is empty; {fix}") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise InputError(f"{what} {path}: not a readable CSV ({str(e).strip()[:120]}); {fix}") from None
