"""SpecGym environments; importing this package registers the ``SpecGym/...`` ids."""

import os

# Nothing may download weights at run time: transformers' adapter lookup makes hub requests
# even with local_files_only, so default the hub client to offline (override by setting it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads that spin steal the CPU from whatever else runs: on a shared 2-core machine
# that slowed decoding 10-20x. Read when torch loads, so it must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# -- SpecGym/DraftVerify (LTD): depth, verification size, or both --------------------------
from gymnasium.envs.registration import register  # noqa: E402

_DRAFT_VERIFY = "envs.draft_verify:DraftVerifyEnv"
register(id="SpecGym/DraftVerify-v0", entry_point=_DRAFT_VERIFY)
# LTD's two policies share one width-4 tree, so policies saved from either partner the other
register(id="SpecGym/DraftVerify-Draft-v0", entry_point=_DRAFT_VERIFY, kwargs={"role": "draft", "width": 4})
register(id="SpecGym/DraftVerify-Verify-v0", entry_point=_DRAFT_VERIFY, kwargs={"role": "verify", "width": 4})
register(id="SpecGym/DraftVerify-Joint-v0", entry_point=_DRAFT_VERIFY, kwargs={"role": "joint"})
register(
    id="SpecGym/DraftVerify-Tiny-v0",
    entry_point=_DRAFT_VERIFY,
    kwargs={"n_prompts": 4, "max_new_tokens": 32},
)
# v1: the real pair out of the box: SmolLM2-135M's recorded draft trees replayed under its calibrated
# cost profile, both bundled (envs/pairs/assets/smollm2-135m-replay): no model load, no download
register(
    id="SpecGym/DraftVerify-v1",
    entry_point=_DRAFT_VERIFY,
    kwargs={"pair": "smollm2-135m", "backend": "replay", "traces": "bundled", "width": 4, "cost_model": "bundled"},
)

# -- SpecGym/Arbitration (CoSpec): keep the draft's or the target's token at mismatches -------
_ARBITRATION = "envs.arbitration:ArbitrationEnv"
register(id="SpecGym/Arbitration-v0", entry_point=_ARBITRATION)
register(id="SpecGym/Arbitration-Speed-v0", entry_point=_ARBITRATION, kwargs={"speed_weight": 0.5})
register(
    id="SpecGym/Arbitration-Tiny-v0",
    entry_point=_ARBITRATION,
    kwargs={"pair": "tiny-random", "n_items": 8, "max_new_tokens": 24},
)
# the real pretrained pair (SmolLM2-135M-Instruct + LoRA, its fine-tuned draft) on replay of its
# bundled branch records (envs/pairs/assets/smollm2-math-arbitration): no model load, no download
register(
    id="SpecGym/Arbitration-SmolLM2-Math-v0",
    entry_point=_ARBITRATION,
    kwargs={"pair": "smollm2-math", "backend": "replay", "traces": "bundled"},
)
