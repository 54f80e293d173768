"""The speculative-decoding engine: model pairs, drafting, verification, records, cost models."""

from envs.specdec.decoder import SpeculativeDecoder, check_shape
from envs.specdec.errors import SpecGymError
from envs.specdec.pair import ModelPair
from envs.specdec.records import CycleRecord, GenerationResult
from envs.specdec.sampling import SamplingConfig

__all__ = [
    "CycleRecord",
    "GenerationResult",
    "ModelPair",
    "SamplingConfig",
    "SpecGymError",
    "SpeculativeDecoder",
    "check_shape",
]
