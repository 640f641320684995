"""Atomic, non-clobbering output.

Outputs are written to a temporary file in the destination folder and renamed into place, so a crash
never leaves a half-written file. Existing files are never silently replaced: callers pass
``overwrite=True`` only when the user asked for it (``--overwrite``). Outputs that must appear
together or not at all (images + the JSON listing them) go through :class:`StagedOutputs`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
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


class StagedOutputs:
    """Several output files that appear together, or not at all (a PanNuke fold's images and its JSON).

    ``path(destination)`` refuses an existing destination (unless ``overwrite``) and gives the file
    to write instead, in a hidden temporary folder in ``out_dir`` (same file system, so moving it in
    is a rename). Leaving the ``with`` block without an error checks every destination again, then
    renames the files into place, ``last=True`` ones (the file that lists the others) after the rest.
    An error in the block removes the staging folder and the folders the run created: nothing of the
    run is left, and files that existed are untouched."""

    def __init__(self, out_dir: PathLike, overwrite: bool = False):
        self.out_dir, self.overwrite = Path(out_dir), overwrite
        self._staged: dict = {}  # destination -> (moved last, staged path)
        self._created: list = []  # folders this run made, removed again (if empty) on failure
        self._folder = None

    def _make_folder(self, folder: Path) -> None:
        self._created += [p for p in (folder, *folder.parents) if not p.exists()][::-1]
        folder.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "StagedOutputs":
        self._make_folder(self.out_dir)
        self._folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.out_dir))
        return self

    def path(self, destination: PathLike, last: bool = False) -> Path:
        """Where to write the file that becomes ``destination`` (a path under ``out_dir``)."""
        destination = Path(os.path.abspath(destination))
        self._make_folder(destination.parent)
        check_writable(destination, self.overwrite)
        staged = self._folder / destination.relative_to(os.path.abspath(self.out_dir))
        staged.parent.mkdir(parents=True, exist_ok=True)
        self._staged[destination] = (last, staged)
        return staged

    def staged_path(self, destination: PathLike):
        """The staged file that will become ``destination``, or None if it is not staged here (so a
        validator can read the files before they are moved into place)."""
        entry = self._staged.get(Path(os.path.abspath(destination)))
        return None if entry is None else entry[1]

    def __exit__(self, exc_type, exc, tb) -> None:
        moved = False
        try:
            if exc_type is None:
                for destination in self._staged:
                    check_writable(destination, self.overwrite)
                for destination, (_, staged) in sorted(self._staged.items(), key=lambda kv: kv[1][0]):
                    os.replace(staged, destination)
                moved = True
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
            if not moved:
                for folder in reversed(self._created):
                    try:
                        folder.rmdir()
                    except OSError:  # not empty: something else is in it now
                        pass
