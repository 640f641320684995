"""Atomic, non-clobbering output.

Outputs are written to a temporary file in the destination folder and renamed into place, so a crash
never leaves a half-written file. Existing files are never silently replaced: callers pass
``overwrite=True`` only when the user asked for it (``--overwrite``).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Union

from .errors import InputError

PathLike = Union[str, os.PathLike]
_UMASK = os.umask(0)
os.umask(_UMASK)


def check_writable(path: PathLike, overwrite: bool = False) -> Path:
    """Raise InputError if ``path`` exists and ``overwrite`` is false; create the parent folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_output_path(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` to write (any writer that needs a file name, e.g.
    ``np.lib.format.open_memmap`` for arrays larger than memory); synced and renamed to ``path`` when
    the block ends without error, removed otherwise."""
    path = check_writable(path, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextlib.contextmanager
def atomic_stream(path: PathLike, overwrite: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` piece by piece: it appears under its name, complete, only
    when the ``with`` block ends without an error (a kill leaves a hidden ``.*.tmp`` beside it)."""
    with atomic_output_path(path, overwrite) as tmp, open(tmp, "wb") as f:
        yield f


def atomic_write_bytes(path: PathLike, data: bytes, overwrite: bool = False) -> Path:
    with atomic_output_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, overwrite: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite)


def atomic_write_json(path: PathLike, obj: Any, overwrite: bool = False, indent=None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent), overwrite)


def load_json(path: PathLike) -> Any:
    """Read JSON; a missing or malformed file is an InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
