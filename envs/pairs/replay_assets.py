"""DraftVerify replay data bundled with the repository: a pair's recorded traces (train and held-out)
and a calibrated cost profile, so an env replays the pair's real draft proposals at once, with no
model load and no download (``SpecGym/DraftVerify-v1``). The recipe of each file is in the README
beside it."""

from __future__ import annotations

from pathlib import Path

from envs.pairs.registry import BUNDLED
from envs.specdec.errors import SpecGymError

BUNDLED_NAME = "bundled"  # what traces= and cost_model= say to mean these files

# pair -> (its folder under envs/pairs/assets, the profile's file name: calibrated on which device and dtype)
REPLAY_ASSETS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("smollm2-135m-replay", "profile__cpu-amd-epyc__bfloat16.json"),
}


def _folder(pair: str, what: str) -> Path:
    if pair not in REPLAY_ASSETS:
        have = ", ".join(sorted(REPLAY_ASSETS))
        raise SpecGymError(
            f"no {what} is bundled for pair {pair!r} (bundled: {have}); pass a file of your own "
            "(python -m experiments.record_traces / benchmark cost make them)"
        )
    return BUNDLED / REPLAY_ASSETS[pair][0]


def bundled_trace(pair: str, split: str, width: int) -> Path:
    """The bundled trace of ``pair`` for ``split`` recorded at tree ``width`` (``w{W}_d{D}_{split}.npz``:
    an env replays it at any ``max_depth`` up to D)."""
    folder = _folder(pair, "trace")
    found = sorted(folder.glob(f"w{width}_d*_{split}.npz"))
    if not found:
        have = sorted(p.stem for p in folder.glob("*.npz"))
        raise SpecGymError(
            f"no bundled trace of {pair} at width={width}, split={split!r} (bundled: {', '.join(have)}); "
            f"pass width= and split= of one of those, or traces=FILE.npz from python -m experiments.record_traces"
        )
    return found[0]


def bundled_profile(pair: str) -> Path:
    """The bundled cost profile of ``pair`` (its file name names the device it was calibrated on)."""
    return _folder(pair, "cost profile") / REPLAY_ASSETS[pair][1]
