"""Trained DraftVerify policies shipped with the repository, by name.

Each lives in ``envs/policies/<name>/``: the depth policy (``draft.zip``) and the size policy
(``verify.zip``) of one co-adaptive run, ``policy.json`` (the env settings they were trained with:
pair, tree shape, cost model, observation layout) and ``README.md``, the card with the training
command, seed, steps and held-out figures. ``python -m experiments.publish RUN_DIR --name NAME``
makes one from a finished run. The name is accepted wherever a policy is: DraftVerify's
``partner=`` (the role the env does not train), ``python -m experiments.evaluate --policy NAME``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envs.specdec.errors import SpecGymError

POLICIES = Path(__file__).resolve().parent / "policies"
MANIFEST = "policy.json"
ROLE_FILES = {"draft": "draft.zip", "verify": "verify.zip"}


def published_names() -> list[str]:
    """The names of the shipped policies."""
    return sorted(p.parent.name for p in POLICIES.glob(f"*/{MANIFEST}"))


def is_published(name: str) -> bool:
    return "/" not in name and (POLICIES / name / MANIFEST).is_file()


def manifest(name: str) -> dict[str, Any]:
    """What ``policy.json`` records: ``env_kwargs`` (the trained settings), ``pair``, ``run`` ..."""
    if not is_published(name):
        have = ", ".join(published_names()) or "none"
        raise SpecGymError(f"no published policy {name!r} (published: {have}); pass a run directory or a .zip")
    return json.loads((POLICIES / name / MANIFEST).read_text())


def role_file(name: str, role: str) -> Path:
    """The ``.zip`` of ``name``'s policy for ``role`` (draft: depth, verify: size)."""
    if role not in ROLE_FILES:
        raise SpecGymError(f"published policies are a depth and a size policy; role {role!r} has none")
    manifest(name)
    return POLICIES / name / ROLE_FILES[role]
