"""SpecGym/Arbitration: keep the draft's or the target's token at a mismatch (CoSpec); see :class:`ArbitrationEnv`."""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.base import PickleByConfig, discrete_action
from envs.pairs import shared_pair
from envs.specdec.arbitrate import N_FEATURES, ArbitrationSession, Mismatch
from envs.specdec.decoder import MAX_DEPTH, SpeculativeDecoder
from envs.specdec.errors import SpecGymError
from envs.tasks.math import ANSWER_MARK, MathItem, load_items, prompt_text, score
from envs.tasks.splits import SPLITS, split_seed

KEEP_TARGET, KEEP_DRAFT = 0, 1
COUNT_SCALE = 32.0
DEFAULT_ITEMS = 500


@lru_cache(maxsize=16)
def _items(task: str, n: int, split: str) -> tuple[MathItem, ...]:
    return tuple(load_items(task, n, split_seed(split)))


@lru_cache(maxsize=4)
def token_classes(pair_name: str, device: str, dtype: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per token id: class flags (digit, operator, answer marker, newline, space) and digit-ness."""
    pair = shared_pair(pair_name, device, dtype)
    tok, vocab = pair.tokenizer, pair.vocab_size
    flags = np.zeros((vocab, 5), dtype=np.float32)
    if tok is None:
        return flags, flags[:, 0].astype(bool)
    for i in range(min(vocab, len(tok))):
        s = tok.decode([i])
        core = s.strip()
        flags[i] = (
            bool(core) and core.isdigit(),
            bool(core) and all(c in "+-*/=x×÷" for c in core),
            "#" in s,
            "\n" in s,
            bool(s) and s.isspace() and "\n" not in s,
        )
    return flags, flags[:, 0].astype(bool)


def features(
    m: Mismatch, session: ArbitrationSession, k: int, max_new: int, classes: np.ndarray, text: str, log_vocab: float
) -> np.ndarray:
    """The observation at mismatch ``m`` (layout in :class:`ArbitrationEnv`'s docstring)."""
    gap = np.log(max(m.p_target_of_draft, 1e-30)) - np.log(max(m.p_target_of_target, 1e-30))
    earlier = session.mismatches - 1
    digits = len(text) - len(text.rstrip("0123456789"))
    head = [
        m.p_draft_of_draft,
        m.p_draft_of_target,
        m.p_target_of_draft,
        m.p_target_of_target,
        m.draft_entropy / log_vocab,
        m.target_entropy / log_vocab,
        m.draft_margin,
        m.target_margin,
        1.0 + float(np.clip(gap / 20.0, -1.0, 0.0)),
        m.index / k,
        m.block / k,
        min(len(session.new_tokens) / max_new, 1.0),
        min(session.mismatches / COUNT_SCALE, 1.0),
        min(session.draft_kept / COUNT_SCALE, 1.0),
        session.draft_kept / earlier if earlier > 0 else 0.0,
    ]
    tail = [float(ANSWER_MARK in text), min(digits / 8.0, 1.0)]
    obs = np.concatenate([head, classes[m.draft_token], classes[m.target_token], tail]).astype(np.float32)
    return np.clip(obs, 0.0, 1.0)


class ArbitrationEnv(PickleByConfig, gym.Env):
    """SpecGym/Arbitration-v0: keep the draft's or the target's token where they disagree (CoSpec, 2026).

    ## Description

    Speculative decoding treats the target as the only authority: a drafted token the target
    would not have chosen is thrown away. CoSpec ("Beyond the Target: From Imitation to
    Collaboration in Speculative Decoding") learns, at each draft/target mismatch, whether keeping
    the draft's token leads to a correct final answer. One episode decodes one task item (a math
    question) with greedy chain SpD of ``k`` drafted tokens per cycle; the env drafts and verifies
    by itself and stops for the agent only at mismatches. Keeping the draft's token goes on
    verifying the rest of the drafted block against the target logits already computed for it
    (``envs.specdec.arbitrate``), so it can lengthen the accepted run; keeping the target's token
    ends the cycle as in standard SpD. Always keeping the target's token is exactly the target's
    greedy output.

    ## Action Space

    ``Discrete(2)``: 0 = keep the target's token, 1 = keep the draft's token. Both are always
    valid; ``action_masks()`` says so, for tooling built on sb3-contrib's MaskablePPO. Any other
    action raises ``SpecGymError``.

    ## Observation Space

    ``Box(0, 1, (27,), float32)``; probabilities at temperature 1:

    | index | feature |
    |---|---|
    | 0 | draft P(draft token) |
    | 1 | draft P(target token) |
    | 2 | target P(draft token) |
    | 3 | target P(target token) |
    | 4, 5 | draft entropy, target entropy (/ ln vocabulary) |
    | 6, 7 | draft top-2 margin, target top-2 margin (top-1 minus top-2 probability) |
    | 8 | target log-prob gap log P(draft token) - log P(target token), / 20, clipped to [-1, 0], plus 1 |
    | 9 | position in the drafted block / k |
    | 10 | tokens drafted this cycle / k |
    | 11 | tokens generated / ``max_new_tokens`` (position in the answer) |
    | 12, 13 | mismatches so far, draft tokens kept so far (each / 32, capped at 1) |
    | 14 | share of earlier mismatches where the draft's token was kept (0 before any) |
    | 15 .. 19 | draft token class: digit, operator (``+ - * / = x``), answer marker (``#``), newline, space |
    | 20 .. 24 | target token class, same flags |
    | 25 | the answer line (``####``) has begun |
    | 26 | digits generated since the last non-digit / 8, capped at 1 (position inside a number) |

    Hidden-state features are not offered: LTD found they did not help its policies, and they tie a
    saved policy to one model's width.

    ## Rewards

    At the episode's end, the task scorer's value of the finished generation in [0, 1]
    (reasoning-gym's ``score_answer`` on the text after ``####``, or numeric equality for a
    GSM8K-format JSONL task). With ``speed_weight`` w > 0, each step also earns
    ``w * (drafted tokens accepted since the last step) / max_new_tokens`` (at most w over an
    episode): a bonus for accepted draft tokens, matches or kept. The last step's can be slightly
    negative: where EOS or ``max_new_tokens`` cuts the final block, it takes back draft tokens an
    earlier step counted, so that the episode's sum is always w x the accepted draft tokens of the
    output / ``max_new_tokens``. ``info`` carries both parts
    separately: ``speed_reward`` every step, and at the end ``correctness`` (the scorer's value;
    reasoning-gym gives partial credit to near misses), ``correct`` (full marks), ``episode_speed_reward``,
    ``mismatches``, ``draft_kept``, ``mean_accepted_length``, ``tokens_generated``, ``text``.

    ## Starting State

    An item is drawn uniformly with the env's RNG (or ``reset(options={"item_index": i})``); the
    models prefill its prompt and the env decodes up to the first mismatch. Items whose whole
    generation has no mismatch need no decision: the env decodes them and draws again
    (``info["skipped_items"]``), and an explicit ``item_index`` without a mismatch is an error.

    ## Episode End

    One episode is one item decoded to the end: it terminates at EOS or after ``max_new_tokens``
    (or the context window); it is never truncated.

    ## Arguments

    All JSON-serialisable, so ``env.spec.to_json()`` works:

    - ``pair``: registered pair name (``gsm``; ``tiny-random`` for smoke tests).
    - ``task``: a reasoning-gym task name (``chain_sum``, ...) or a GSM8K-format ``.jsonl`` path.
    - ``n_items`` (default 500), ``split``: ``train`` (default; seeds from ``TRAIN_SEED``) |
      ``heldout`` (``HELDOUT_SEED``; evaluation).
    - ``k``: drafted tokens per cycle (default 4); ``max_new_tokens`` (default 64).
    - ``speed_weight``: weight of the speed term, a number >= 0 (default 0).
    - ``device`` (``auto``, ``cpu``, ``cuda[:N]``), ``dtype``: for the models (default: per device).
    - ``seed``: seed of the first ``reset()`` called without one.

    Pickling keeps the configuration, not an episode in progress: call ``reset()`` after unpickling.

    ## Registered Configurations

    - ``SpecGym/Arbitration-v0``: the defaults above (``gsm`` pair, ``chain_sum``).
    - ``SpecGym/Arbitration-Speed-v0``: the same with ``speed_weight=0.5``.
    - ``SpecGym/Arbitration-Tiny-v0``: ``tiny-random`` pair, 8 items, 24 tokens (smoke tests; its
      random models never answer correctly).

    ## Version History

    - v0: the initial version: CoSpec's keep-draft / keep-target choice at each mismatch of greedy
      chain SpD with ``k`` drafted tokens per cycle, rewarded by the task scorer's correctness (plus
      an optional speed term), with the 27-feature observation above.

    A change to a default behaviour (the observation layout, the reward, a default argument, ...)
    gets a new id version (``-v1``); the ``-v0`` ids keep their meaning.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        pair: str = "gsm",
        task: str = "chain_sum",
        n_items: int = DEFAULT_ITEMS,
        split: str = "train",
        k: int = 4,
        max_new_tokens: int = 64,
        speed_weight: float = 0.0,
        device: str = "auto",
        dtype: str | None = None,
        seed: int | None = None,
    ):
        self._kwargs = {key: v for key, v in locals().items() if key not in ("self", "__class__")}
        if split not in SPLITS:
            raise SpecGymError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if not (isinstance(k, int) and 1 <= k <= MAX_DEPTH):
            raise SpecGymError(f"k (drafted tokens per cycle) must be an integer in 1..{MAX_DEPTH}, got {k!r}")
        if not (isinstance(n_items, int) and n_items >= 1):
            raise SpecGymError(f"n_items must be an integer >= 1, got {n_items!r}")
        if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
            raise SpecGymError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        if not (
            isinstance(speed_weight, numbers.Real)
            and not isinstance(speed_weight, bool)
            and 0 <= speed_weight < math.inf
        ):
            raise SpecGymError(
                f"speed_weight must be a number >= 0 (the speed term's weight; 0 turns it off), got {speed_weight!r}"
            )
        self.k, self.max_new_tokens, self.speed_weight = k, max_new_tokens, float(speed_weight)
        self.pair = shared_pair(pair, device, dtype)
        self.decoder = SpeculativeDecoder(self.pair)
        self.items = _items(task, n_items, split)
        self.prompt_ids = [self.pair.encode(prompt_text(x.question), chat=False) for x in self.items]
        self.classes, self.is_digit = token_classes(pair, device, dtype)
        self.observation_space = spaces.Box(0.0, 1.0, (N_FEATURES,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._seed, self._seeded = seed, False
        self.session: ArbitrationSession | None = None
        # greedy decoding without a decision is fixed: an item once decoded without a mismatch
        # never has one, so later draws skip it without decoding it again
        self._decision_free: set[int] = set()

    def new_session(self, index: int) -> ArbitrationSession:
        """A fresh arbitrated decoding of item ``index`` (also used by evaluation and the oracle)."""
        return ArbitrationSession(self.decoder, self.prompt_ids[index], self.max_new_tokens, self.k)

    def text(self, session: ArbitrationSession) -> str:
        return self.pair.tokenizer.decode(session.new_tokens, skip_special_tokens=True) if self.pair.tokenizer else ""

    def observe(self, session: ArbitrationSession, m: Mismatch) -> np.ndarray:
        log_vocab = float(np.log(self.pair.vocab_size))
        return features(m, session, self.k, self.max_new_tokens, self.classes, self.text(session), log_vocab)

    def correctness(self, index: int, session: ArbitrationSession) -> float:
        return score(self.items[index], self.text(session))

    # -- Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and not self._seeded:
            seed = self._seed
        super().reset(seed=seed)
        self._seeded = True
        options = options or {}
        index = options.get("item_index")
        n = len(self.items)
        if index is not None and not (isinstance(index, int | np.integer) and 0 <= index < n):
            raise SpecGymError(f"item_index must be an integer in 0..{n - 1}, got {index!r}")
        skipped, mismatch = 0, None
        while mismatch is None:
            if skipped >= n:
                raise SpecGymError(f"no mismatch in {n} draws: this pair's draft agrees with its target everywhere")
            i = int(index) if index is not None else int(self.np_random.integers(n))
            if i in self._decision_free and index is None:
                skipped += 1
                continue
            session = self.new_session(i)
            mismatch = session.advance()
            if mismatch is None:
                self._decision_free.add(i)
            if mismatch is None and index is not None:
                raise SpecGymError(f"item {i} decodes without a single mismatch: there is no decision to make")
            skipped += mismatch is None
        self.session, self.index, self._accepted = session, i, session.accepted
        self._speed_total = 0.0
        obs = self.observe(session, mismatch)
        return obs, {"item_index": i, "skipped_items": skipped, "tokens_generated": len(session.new_tokens)}

    def step(self, action):
        session = self.session
        if session is None or session.pending is None:
            raise SpecGymError("call reset() before step() (the episode has ended or never started)")
        keep = discrete_action(action, self.action_space, "0 = keep the target's token, 1 = keep the draft's")
        session.decide(keep == KEEP_DRAFT)
        mismatch = session.advance()
        # every drafted token now in the output: matches since the last step plus a kept one
        accepted = session.accepted + (session.cycle.pos if session.cycle is not None else 0)
        speed = self.speed_weight * (accepted - self._accepted) / self.max_new_tokens
        self._accepted, self._speed_total = accepted, self._speed_total + speed
        info = {
            "speed_reward": speed,
            "item_index": self.index,
            "tokens_generated": len(session.new_tokens),
            "mismatches": session.mismatches,
            "draft_kept": session.draft_kept,
        }
        if mismatch is not None:
            return self.observe(session, mismatch), float(speed), False, False, info
        correct = self.correctness(self.index, session)
        info.update(
            correctness=correct,
            correct=correct >= 1.0,
            episode_speed_reward=self._speed_total,
            mean_accepted_length=session.mean_accepted_length,
            text=self.text(session),
        )
        self.session = None
        return np.zeros(N_FEATURES, dtype=np.float32), float(correct + speed), True, False, info

    def action_masks(self) -> np.ndarray:
        """Both choices are valid at every mismatch."""
        return np.ones(2, dtype=bool)
