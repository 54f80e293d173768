"""Writing data files whole or not at all: a temporary name in the same directory, then ``os.replace``.

An interrupted save (Ctrl-C, a full disk, a killed job) leaves at most a hidden
``.NAME.*.part`` file beside the target, never a half-written ``NAME``; readers name such
leftovers (:func:`leftovers`) when the file they want is missing or unreadable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
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
