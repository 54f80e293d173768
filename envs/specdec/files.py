"""Writing data files and folders whole or not at all: a temporary name in the same directory, then ``os.replace``.

An interrupted save (Ctrl-C, a full disk, a killed job) leaves at most a hidden
``.NAME.*.part`` file beside the target, never a half-written ``NAME``; readers name such
leftovers (:func:`leftovers`) when the file they want is missing or unreadable.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib.npyio import NpzFile

from envs.specdec.errors import SpecGymError

PART = ".part"


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a binary file opened at a temporary name beside ``path``, then move it
    into place; on any error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PART)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`write_atomic` for UTF-8 text."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


@contextlib.contextmanager
def staged_dir(path: str | Path) -> Iterator[Path]:
    """A new temporary directory ``.NAME.*.part`` beside ``path`` to write a whole folder into: when
    the block ends without error it replaces ``path`` (removed first); on any error it is removed
    and ``path`` left as it was. A killed process can leave no half-written ``path``, only a
    ``.part`` directory, which the next staging of ``path`` removes (one writer per ``path``).

    Replacing a folder is not one atomic step: callers mark a finished build with a file written
    after the rename (e.g. a recipe), so a build stopped between two renames reads as unfinished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in leftovers(path):
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=PART))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def leftovers(path: str | Path) -> list[Path]:
    """Temporary files an interrupted :func:`write_atomic` of ``path`` left behind."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{path.name}.*{PART}"))


def leftover_note(path: str | Path) -> str:
    """``" (an interrupted save left X; delete it)"`` when there are leftovers of ``path``, else ``""``."""
    found = leftovers(path)
    if not found:
        return ""
    names = ", ".join(repr(str(p)) for p in found)
    return f" (an interrupted save left {names}; delete {'it' if len(found) == 1 else 'them'})"


def sidecar_pair(path: Path) -> str:
    """The pair a saved archive's readable ``.json`` sidecar names (for a re-record command), else ``NAME``."""
    try:
        pair = json.loads(path.with_suffix(".json").read_text()).get("pair")
    except (OSError, ValueError, AttributeError):
        return "NAME"
    return pair if isinstance(pair, str) and pair else "NAME"


def read_npz(
    path: Path, names: tuple[str, ...], *, kind: str, version: int, remedy: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``meta`` JSON and the arrays ``names`` of a SpecGym ``.npz`` archive of format ``version``.

    Every way such a file can be unusable (missing, left by an interrupted save, truncated, not
    ours, another format version) raises one :class:`SpecGymError` naming it and ``remedy``.
    """
    if not path.is_file():
        sidecar = path.with_suffix(".json")
        note = leftover_note(path)
        if sidecar.is_file() and path.suffix == ".npz":
            note += f" (its sidecar {str(sidecar)!r} is there: a save was interrupted)"
        raise SpecGymError(f"{kind} file {str(path)!r} not found{note}; record one with {remedy}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with data:
            missing = [name for name in ("meta", *names) if name not in data.files]
            if not missing:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in names}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # a garbage file reaches numpy's pickle branch, whose message is about allow_pickle: not repeated
        broken = f"it is truncated or corrupt ({type(exc).__name__}){leftover_note(path)}"
        raise SpecGymError(f"cannot read {kind} {str(path)!r}: {broken}; re-record it with {remedy}") from None
    if missing or not isinstance(meta, dict):
        lacks = f"no {missing[0]!r} array" if missing else "meta that is not a JSON object"
        raise SpecGymError(
            f"cannot read {kind} {str(path)!r}: it has {lacks}, so it is not a SpecGym {kind}; "
            f"re-record it with {remedy}"
        )
    if meta.get("version") != version:
        raise SpecGymError(
            f"{kind} {str(path)!r} has format version {meta.get('version')}, this SpecGym reads "
            f"{version}; re-record it with {remedy}"
        )
    return meta, arrays
