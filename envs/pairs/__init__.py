"""Model pairs: the registry of named pairs and each pair's recipe (tiny-random, the SmolLM2
target conversion and distilled draft, the gsm math pair); ``ensure_built`` builds what is missing."""

from envs.pairs.build import data_dir, ensure_built
from envs.pairs.registry import PAIRS, PairSpec, check_pair_name, load_pair, pair_spec, pair_version, shared_pair

__all__ = [
    "PAIRS",
    "PairSpec",
    "check_pair_name",
    "data_dir",
    "ensure_built",
    "load_pair",
    "pair_spec",
    "pair_version",
    "shared_pair",
]
