"""SpeculativeDecoder: our own draft-and-verify loop with per-step control.

transformers' ``generate(assistant_model=...)`` cannot stop after a chosen draft forward or
verify a chosen subset of a tree, which is what the environments need, so the loop is ours:
``start`` -> repeated ``draft_step`` / ``finish_cycle`` (or ``cycle``) until ``state.done``.
``generate_target`` is the plain autoregressive reference with the same stopping rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from envs.specdec.cache import forward_with_cache, keep_positions
from envs.specdec.draft import Drafter
from envs.specdec.errors import SpecGymError
from envs.specdec.pair import ModelPair
from envs.specdec.records import CycleRecord, GenerationResult
from envs.specdec.sampling import SamplingConfig, check_finite, sample, sampling_probs
from envs.specdec.state import DecodeState, Timer
from envs.specdec.verify import Verdict, verify

MAX_DEPTH = 32  # draft forwards per cycle
MAX_WIDTH = 16  # tree width


def check_shape(depth: int, width: int = 1, n_verify: int | None = None) -> None:
    """Range checks for a cycle's drafting shape, each with the valid range in the message."""
    if not (isinstance(depth, int) and 1 <= depth <= MAX_DEPTH):
        raise SpecGymError(f"draft length / tree depth must be an integer in 1..{MAX_DEPTH}, got {depth!r}")
    if not (isinstance(width, int) and 1 <= width <= MAX_WIDTH):
        raise SpecGymError(f"tree width must be an integer in 1..{MAX_WIDTH}, got {width!r}")
    if n_verify is not None and not (isinstance(n_verify, int) and 0 <= n_verify <= depth * width):
        raise SpecGymError(f"verification size must be in 0..depth*width={depth * width}, got {n_verify!r}")


class SpeculativeDecoder:
    """Draft-and-verify decoding on a :class:`ModelPair`, batch size 1.

    Greedy (``temperature=0``) output equals the target's greedy decoding token for token;
    sampled output follows the target's (temperature, top-p) distribution.
    """

    def __init__(self, pair: ModelPair, sampling: SamplingConfig | None = None):
        self.pair = pair
        self.sampling = sampling or SamplingConfig()
        self.eos = pair.eos_token_ids

    # -- setup -----------------------------------------------------------------
    def _check_prompt(self, prompt_ids: Sequence[int]) -> list[int]:
        ids = [int(t) for t in prompt_ids]
        if not ids:
            raise SpecGymError("empty prompt: give at least one token")
        limit = self.pair.max_context
        if len(ids) >= limit:
            raise SpecGymError(
                f"prompt of {len(ids)} tokens does not fit the {limit}-token context window; shorten the prompt"
            )
        if min(ids) < 0 or max(ids) >= self.pair.vocab_size:
            raise SpecGymError(f"prompt token ids must lie in 0..{self.pair.vocab_size - 1}")
        return ids

    def start(self, prompt_ids: Sequence[int], max_new_tokens: int, seed: int | None = None) -> DecodeState:
        """Prefill the target on the prompt (all but its last token) and return the state."""
        ids = self._check_prompt(prompt_ids)
        if max_new_tokens < 1:
            raise SpecGymError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        device = self.pair.device
        generator = None
        if not self.sampling.greedy:
            generator = torch.Generator(device=device)
            generator.manual_seed(0 if seed is None else seed)
        state = DecodeState(
            tokens=ids,
            prompt_len=len(ids),
            max_len=min(len(ids) + max_new_tokens, self.pair.max_context),
            target_cache=DynamicCache(config=self.pair.target.config),
            draft_cache=DynamicCache(config=self.pair.draft.config),
            device=device,
            generator=generator,
        )
        if len(ids) > 1:
            # both models take the prompt but its last token now, so every cycle's forwards are
            # small (1-2 pending tokens plus drafts) and the cost model sees uniform cycles
            with Timer(device) as timer, torch.no_grad():
                prefix = torch.tensor([ids[:-1]], device=device)
                forward_with_cache(self.pair.target, state.target_cache, input_ids=prefix)
                forward_with_cache(self.pair.draft, state.draft_cache, input_ids=prefix)
            state.target_cached = state.draft_cached = len(ids) - 1
            state.prefill_time = timer.elapsed
        return state

    # -- one cycle, step by step -------------------------------------------------
    def begin_cycle(self, state: DecodeState, width: int = 1) -> Drafter:
        """A drafter for the next cycle; call ``draft_step`` on it for each draft forward."""
        if state.done:
            raise SpecGymError("generation already finished; start a new one")
        check_shape(1, width)
        return Drafter(self.pair.draft, state, width, self.sampling)

    def finish_cycle(self, state: DecodeState, drafter: Drafter, n_verify: int | None = None) -> CycleRecord:
        """Verify the drafter's top-``n_verify`` nodes (all by default), accept, append, trim caches."""
        selected = drafter.tree.top_nodes(n_verify)
        with Timer(state.device) as timer:
            verdict = verify(self.pair.target, state, drafter.tree, selected, self.sampling)
        return self.commit(state, drafter, selected, verdict, timer.elapsed)

    def commit(
        self, state: DecodeState, drafter: Drafter, selected: list[int], verdict: Verdict, verify_time: float
    ) -> CycleRecord:
        """Trim the draft cache to the accepted path, append the new tokens, record the cycle
        (the target cache is already trimmed by verification)."""
        tree, ctx = drafter.tree, len(state.tokens)
        if drafter.forwards:
            # keep the context plus the accepted nodes the draft already processed (a root path:
            # every level but the newest was fed); the rest is re-fed next cycle
            fed = [tree.fed_pos[n] for n in verdict.accepted if n in tree.fed_pos]
            keep_positions(state.draft_cache, ctx, fed)
            state.draft_cached = ctx + len(fed)

        new = [tree.tokens[n] for n in verdict.accepted] + [verdict.final_token]
        new = self._append(state, new)
        record = CycleRecord(
            context_len=ctx,
            width=drafter.width,
            draft_forwards=drafter.forwards,
            draft_tokens_fed=drafter.tokens_fed,
            draft_step_times=drafter.step_times,
            verify_tokens_fed=verdict.tokens_fed,
            draft_tokens=tree.tokens,
            parents=tree.parents,
            depths=tree.depths,
            draft_probs=tree.probs,
            draft_entropies=tree.entropies,
            cum_logprobs=tree.cum_logprobs,
            verified=selected,
            target_probs=verdict.target_probs,
            accepted=verdict.accepted,
            bonus_token=verdict.final_token,
            new_tokens=new,
            draft_time=drafter.time,
            verify_time=verify_time,
        )
        state.records.append(record)
        return record

    def _append(self, state: DecodeState, new: list[int]) -> list[int]:
        """Append tokens, stopping at the first EOS or at ``max_len``."""
        for i, token in enumerate(new):
            if token in self.eos:
                state.stop_reason = "eos"
                new = new[: i + 1]
                break
        if len(state.tokens) + len(new) >= state.max_len:
            new = new[: state.max_len - len(state.tokens)]
            state.stop_reason = state.stop_reason or "length"
        state.tokens.extend(new)
        return new

    def cycle(self, state: DecodeState, depth: int, width: int = 1, n_verify: int | None = None) -> CycleRecord:
        """One full cycle: ``depth`` draft forwards of a width-``width`` tree, then verification.

        Depth is capped so drafts never run past ``max_len`` (a draft token there could never
        be kept); ``n_verify=0`` makes it a plain target step.
        """
        check_shape(depth, width, n_verify)
        drafter = self.begin_cycle(state, width)
        for _ in range(min(depth, state.remaining - 1)):
            drafter.step()
        return self.finish_cycle(state, drafter, n_verify)

    # -- whole generations ---------------------------------------------------------
    def generate(
        self,
        prompt_ids: Sequence[int],
        max_new_tokens: int,
        *,
        k: int | None = None,
        depth: int | None = None,
        width: int = 1,
        n_verify: int | None = None,
        seed: int | None = None,
    ) -> GenerationResult:
        """Speculative decoding with a fixed shape: a chain of ``k`` or a tree ``depth`` x ``width``."""
        depth = depth if depth is not None else k
        if depth is None:
            raise SpecGymError("give k (chain length) or depth (tree depth)")
        check_shape(depth, width, n_verify)
        state = self.start(prompt_ids, max_new_tokens, seed)
        while not state.done:
            self.cycle(state, depth, width, n_verify)
        return self.result(state)

    @staticmethod
    def result(state: DecodeState) -> GenerationResult:
        return GenerationResult(
            prompt_len=state.prompt_len,
            tokens=state.new_tokens,
            stop_reason=state.stop_reason or "length",
            prefill_time=state.prefill_time,
            decode_time=sum(r.time for r in state.records),
            records=state.records,
        )

    @torch.no_grad()
    def generate_target(
        self, prompt_ids: Sequence[int], max_new_tokens: int, *, seed: int | None = None
    ) -> GenerationResult:
        """Target-only autoregressive decoding: the reference output and the speed baseline."""
        ids = self._check_prompt(prompt_ids)
        device, target = self.pair.device, self.pair.target
        generator = None
        if not self.sampling.greedy:
            generator = torch.Generator(device=device)
            generator.manual_seed(0 if seed is None else seed)
        cache = DynamicCache(config=target.config)
        max_len = min(len(ids) + max_new_tokens, self.pair.max_context)
        tokens, feed, stop = list(ids), ids, "length"
        with Timer(device) as prefill:
            logits = forward_with_cache(target, cache, input_ids=torch.tensor([feed], device=device)).logits[0, -1]
        with Timer(device) as decode:
            while True:
                check_finite(logits, "target")
                if self.sampling.greedy:
                    token = int(logits.argmax())
                else:
                    token = sample(sampling_probs(logits, self.sampling), generator)
                tokens.append(token)
                if token in self.eos:
                    stop = "eos"
                    break
                if len(tokens) >= max_len:
                    break
                logits = forward_with_cache(target, cache, input_ids=torch.tensor([[token]], device=device)).logits[
                    0, -1
                ]
        return GenerationResult(
            prompt_len=len(ids),
            tokens=tokens[len(ids) :],
            stop_reason=stop,
            prefill_time=prefill.elapsed,
            decode_time=decode.elapsed,
        )
