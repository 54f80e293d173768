"""Reading JSONL files of prompts or math items, one clear error per bad line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from envs.specdec.errors import SpecGymError


def read_jsonl(path: str | Path, what: str) -> Iterator[tuple[str, dict]]:
    """(``file:line``, record) for every non-empty line of a JSONL file; one clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise SpecGymError(f"{what} file {str(path)!r} not found; pass an existing .jsonl file")
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise SpecGymError(f"{path}:{lineno} is not valid JSON; one JSON object per line") from None
        if not isinstance(record, dict):
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(record), "number")
            raise SpecGymError(f"{path}:{lineno} is a JSON {kind}, not an object; one JSON object per line")
        yield f"{path}:{lineno}", record
