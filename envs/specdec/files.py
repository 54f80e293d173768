"""Writing data files and folders whole or not at all: a temporary name in the same directory, then ``os.replace``.

An interrupted save (Ctrl-C, a full disk, a killed job) leaves at most a hidden
``.NAME.*.part`` file beside the target, never a half-written ``NAME``; readers name such
leftovers (:func:`leftovers`) when the file they want is missing or unreadable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

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
