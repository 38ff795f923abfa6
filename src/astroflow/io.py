"""Atomic file outputs: a product appears under its final name only once it is complete."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A killed or failing writer leaves no file under the final name, so Snakemake (and a
    human) never mistakes a half-written product for a finished one. The temporary file
    lives in the same directory, so the final ``os.replace`` is atomic on POSIX. The product
    gets the permissions the umask gives a new file (``mkstemp`` alone would make it 0600, and
    a group sharing a project directory could not read it).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask: from /proc on Linux (reading it elsewhere means setting it, which
    races with other threads creating files, so that is the fallback only)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (NaN is refused: it is not valid JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def string_attr(obj: Any, key: str) -> list[str]:
    """A string-list attribute of an HDF5 file or dataset ``obj`` as a list of str.

    h5py returns such attributes as str or bytes, one or many, depending on how they were
    written; a missing attribute is a KeyError naming the file and the key.
    """
    if key not in obj.attrs:
        raise KeyError(f"{obj.file.filename}: attribute {key!r} missing")
    value = obj.attrs[key]
    values = [value] if isinstance(value, str | bytes) else list(value)
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
