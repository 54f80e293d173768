"""SpecGym/Arbitration: keep the draft's or the target's token at a mismatch (CoSpec); see :class:`ArbitrationEnv`."""

from __future__ import annotations

import math
import numbers
from functools import cached_property, lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.arbitration.features import features, token_classes
from envs.base import PickleByConfig, discrete_action
from envs.pairs import pair_version, shared_pair
from envs.pairs.registry import task_chat
from envs.pairs.replay_assets import BUNDLED_NAME, require_bundled_branches
from envs.specdec.arbitrate import N_FEATURES, ArbitrationSession, Mismatch
from envs.specdec.branches import (
    KEEP_DRAFT,
    KEEP_TARGET,
    LEAF,
    MISMATCH_INTS,
    UNRECORDED,
    BranchTree,
    items_digest,
    record_item,
)
from envs.specdec.decoder import MAX_DEPTH, SpeculativeDecoder
from envs.specdec.errors import SpecGymError
from envs.specdec.pair import ModelPair
from envs.specdec.records import mean_accepted_length
from envs.tasks.math import MathItem, load_items, prompt_text, score
from envs.tasks.splits import SPLITS, split_seed

__all__ = ["KEEP_DRAFT", "KEEP_TARGET", "N_FEATURES", "ArbitrationEnv"]
DEFAULT_ITEMS = 500
BACKENDS = ("live", "replay")
UNRECORDED_CHOICES = ("decode", "error")
REWARDS = ("correctness", "counterfactual")
GRAFT_NODES = 64  # node budget of a branch decoded on demand during replay


def load_branches(path: str | Path) -> BranchTree:
    """A branch record, read once per process and file version (envs of one process share it
    read-only; an env that decodes a missing branch grafts it into a copy of its own)."""
    p = Path(path)
    stat = p.stat() if p.is_file() else None
    return _load_branches(str(p), stat and (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _load_branches(path: str, version: tuple[int, int] | None) -> BranchTree:
    return BranchTree.load(path)


@lru_cache(maxsize=16)
def _items(task: str, n: int, split: str) -> tuple[MathItem, ...]:
    return tuple(load_items(task, n, split_seed(split)))


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

    With ``reward="counterfactual"`` (replay only) each step instead earns its choice's outcome
    when the target decides every later mismatch, minus the outcome of keeping the target's token
    there (both read from the branch record): dense, zero for a choice that changes nothing, and
    summing over an episode to the final score minus the target-only score, so the best policy
    is the same as under ``correctness`` (a potential-based shaping).

    ## Replay

    With greedy decoding an item's whole generation is fixed by its choices, so every branch can
    be recorded once (``python -m experiments.record_traces --env arbitration``; see
    ``envs.specdec.branches``) and ``backend="replay"`` serves observations, rewards and ``info``
    from the record at numpy speed, equal to live decoding's for the same actions (a test checks
    it). A branch the record lacks is decoded live on demand and grafted into the record in
    memory (``unrecorded="decode"``; ``env.decoded_steps`` of ``env.replay_steps`` counts them), or
    refused (``unrecorded="error"``). A record holds one machine's decoding: bfloat16 kernels differ
    between CPUs, so on another machine the pair can decode an item's path differently (a near-tie
    flips). Where it does before an unrecorded branch, that branch is served as keeping the target's
    token, ``action_masks()`` hides it from then on, and ``env.unreproduced_steps`` counts it (the
    bundled ``smollm2-math`` records: at most 4 of their 1,500 items have unrecorded branches).

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

    - ``pair``: registered pair name (``gsm``; ``smollm2-math``; ``tiny-random`` for smoke tests).
    - ``task``: a reasoning-gym task name (``chain_sum``, ...) or a GSM8K-format ``.jsonl`` path.
    - ``n_items`` (default 500), ``split``: ``train`` (default; seeds from ``TRAIN_SEED``) |
      ``heldout`` (``HELDOUT_SEED``; evaluation) | ``validation`` (``VALIDATION_SEED``; tuning).
    - ``k``: drafted tokens per cycle (default 4); ``max_new_tokens`` (default 64).
    - ``speed_weight``: weight of the speed term, a number >= 0 (default 0).
    - ``backend``: ``live`` (default; decodes with the pair) | ``replay`` (serves a branch record).
    - ``traces``: the branch record ``.npz`` (replay); it must hold this pair, task, split, k and
      ``max_new_tokens``, and at least ``n_items`` items. ``"bundled"``: the pair's record shipped
      with the repository for these settings (``smollm2-math``: ``chain_sum``, k 4, 64 tokens; 500
      train items, 1,000 held-out; ``envs/pairs/assets/smollm2-math-arbitration``).
    - ``unrecorded``: ``decode`` (default) | ``error``: what replay does with a branch not recorded.
    - ``reward``: ``correctness`` (default) | ``counterfactual`` (replay; see Rewards).
    - ``device`` (``auto``, ``cpu``, ``cuda[:N]``), ``dtype``: for the models (default: per device).
    - ``seed``: seed of the first ``reset()`` called without one.

    Pickling keeps the configuration, not an episode in progress: call ``reset()`` after unpickling.

    ## Registered Configurations

    - ``SpecGym/Arbitration-v0``: the defaults above (``gsm`` pair, ``chain_sum``).
    - ``SpecGym/Arbitration-Speed-v0``: the same with ``speed_weight=0.5``.
    - ``SpecGym/Arbitration-Tiny-v0``: ``tiny-random`` pair, 8 items, 24 tokens (smoke tests; its
      random models never answer correctly).
    - ``SpecGym/Arbitration-SmolLM2-Math-v0``: the real pretrained pair ``smollm2-math``
      (SmolLM2-135M-Instruct with a LoRA adapter, and its fine-tuned distilled draft; both through
      the chat template) on replay of its bundled branch records (``traces="bundled"``): ``gym.make``
      loads no model (a branch the record lacks is decoded on demand, which loads the pair).

    ## Version History

    - v0: the initial version: CoSpec's keep-draft / keep-target choice at each mismatch of greedy
      chain SpD with ``k`` drafted tokens per cycle, rewarded by the task scorer's correctness (plus
      an optional speed term), with the 27-feature observation above. Later additions that leave
      the defaults as they were: ``backend="replay"`` with ``traces``, ``unrecorded`` and
      ``reward="counterfactual"``; the ``validation`` split; ``traces="bundled"`` and the
      ``SpecGym/Arbitration-SmolLM2-Math-v0`` id (a new pair, not a changed default).

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
        backend: str = "live",
        traces: str | None = None,
        unrecorded: str = "decode",
        reward: str = "correctness",
        device: str = "auto",
        dtype: str | None = None,
        seed: int | None = None,
    ):
        self._kwargs = {key: v for key, v in locals().items() if key not in ("self", "__class__")}
        for name, value, allowed in (
            ("split", split, SPLITS),
            ("backend", backend, BACKENDS),
            ("unrecorded", unrecorded, UNRECORDED_CHOICES),
            ("reward", reward, REWARDS),
        ):
            if value not in allowed:
                raise SpecGymError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
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
        if reward == "counterfactual" and backend != "replay":
            raise SpecGymError(
                "reward='counterfactual' reads the branch record's outcomes: it needs backend='replay' and traces=FILE"
            )
        self.k, self.max_new_tokens, self.speed_weight = k, max_new_tokens, float(speed_weight)
        self.reward_kind = reward
        self.pair_name, self.task, self.split, self.backend = pair, task, split, backend
        self.items = _items(task, n_items, split)
        self.tree: BranchTree | None = None
        self._own_tree = False
        if backend == "live":
            self.pair  # noqa: B018 (load the models now, so a bad pair fails at construction)
        else:
            self.tree = self._load_tree(traces)
        self.observation_space = spaces.Box(0.0, 1.0, (N_FEATURES,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._seed, self._seeded = seed, False
        self.session: ArbitrationSession | None = None
        self._node: int | None = None  # replay: the node the episode stands at
        # greedy decoding without a decision is fixed: an item once decoded without a mismatch
        # never has one, so later draws skip it without decoding it again
        self._decision_free: set[int] = set()
        # replay: steps served, those decoded on demand, and those this machine could not decode
        self.replay_steps = self.decoded_steps = self.unreproduced_steps = 0
        self._unreproducible: set[int] = set()  # nodes whose keep-draft choice that is (decode_branch)

    # -- the models (replay loads them only to decode a branch the record lacks) -----------------
    @cached_property
    def pair(self) -> ModelPair:
        kw = self._kwargs
        return shared_pair(self.pair_name, kw["device"], kw["dtype"])

    @cached_property
    def decoder(self) -> SpeculativeDecoder:
        return SpeculativeDecoder(self.pair)

    @cached_property
    def prompt_ids(self) -> list[list[int]]:
        chat = task_chat(self.pair_name)  # as the pair was fine-tuned (smollm2-math: chat template)
        return [self.pair.encode(prompt_text(x.question), chat=chat) for x in self.items]

    @cached_property
    def classes(self) -> np.ndarray:
        kw = self._kwargs
        return token_classes(self.pair_name, kw["device"], kw["dtype"])[0]

    def _load_tree(self, traces: str | None) -> BranchTree:
        record = (
            f"python -m experiments.record_traces --env arbitration --pair {self.pair_name} --task {self.task} "
            f"--split {self.split} --n-items {len(self.items)} --out FILE.npz"
        )
        if traces is None:
            raise SpecGymError(f"backend='replay' needs traces=FILE.npz, a branch record; record one with {record}")
        if traces == BUNDLED_NAME:
            traces = str(
                require_bundled_branches(
                    self.pair_name, self.task, self.split, self.k, self.max_new_tokens, len(self.items)
                )
            )
        tree = load_branches(str(traces))
        meta, n = tree.meta, len(self.items)
        want = {
            "pair": self.pair_name,
            "task": self.task,
            "split": self.split,
            "k": self.k,
            "max_new_tokens": self.max_new_tokens,
            "n_features": N_FEATURES,
        }
        for key, value in want.items():
            if meta.get(key) != value:
                raise SpecGymError(
                    f"branch record {traces!r} was made with {key}={meta.get(key)!r}, this env has {value!r}; "
                    f"pass {key}={meta.get(key)!r} or record one with {record}"
                )
        version = pair_version(self.pair_name)
        if meta.get("pair_version") != version:
            raise SpecGymError(
                f"branch record {traces!r} was made with another build of {self.pair_name} (pair_version "
                f"{meta.get('pair_version')!r}, the one loaded now is {version!r}); record it again with {record}"
            )
        if tree.n_items < n:
            raise SpecGymError(
                f"branch record {traces!r} holds {tree.n_items} items; pass n_items <= that or record more"
            )
        recorded = _items(self.task, tree.n_items, self.split)
        if meta.get("items_digest") != items_digest([x.question for x in recorded]):
            raise SpecGymError(
                f"branch record {traces!r} holds other items than task {self.task!r} now generates "
                f"(another reasoning-gym version or task file?); record it again with {record}"
            )
        return tree

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

    def record_item(self, index: int, max_nodes: int = 4096, max_drafts: int | None = None):
        """Item ``index``'s decision tree (:func:`envs.specdec.branches.record_item`), decoded live."""
        return self._record_from(self.new_session(index), index, max_nodes, max_drafts)

    def _record_from(self, session: ArbitrationSession, index: int, max_nodes: int, max_drafts: int | None):
        def finish(s: ArbitrationSession) -> tuple[float, str]:
            return self.correctness(index, s), self.text(s)

        return record_item(
            session, self.observe, finish, n_features=N_FEATURES, max_nodes=max_nodes, max_drafts=max_drafts
        )

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
        skipped, found = 0, False
        while not found:
            # draws repeat: give up only once every item is known to have no mismatch, not after n draws
            if len(self._decision_free) >= n:
                raise SpecGymError(f"no mismatch in any of the {n} items: this pair's draft agrees with its target")
            i = int(index) if index is not None else int(self.np_random.integers(n))
            if i in self._decision_free and index is None:
                skipped += 1
                continue
            found = self._start(i)
            if not found:
                self._decision_free.add(i)
                if index is not None:
                    raise SpecGymError(f"item {i} decodes without a single mismatch: there is no decision to make")
                skipped += 1
        self.index, self._speed_total, self._path = i, 0.0, []
        obs, generated = self._stop_now()
        return obs, {"item_index": i, "skipped_items": skipped, "tokens_generated": generated}

    def _start(self, i: int) -> bool:
        """Begin item ``i`` up to its first mismatch; False when it has none."""
        if self.tree is None:
            session = self.new_session(i)
            self._mismatch = session.advance()
            self.session, self._accepted = session, session.accepted
            return self._mismatch is not None
        root = int(self.tree.item_root[i])
        self._node, self._accepted = root, int(self.tree.item_root_accepted[i])
        return root >= 0

    def _stop_now(self) -> tuple[np.ndarray, int]:
        """The observation and tokens generated where the episode stands (a mismatch)."""
        if self.tree is None:
            return self.observe(self.session, self._mismatch), len(self.session.new_tokens)
        return self.tree.node_obs[self._node].copy(), int(self.tree.node_generated[self._node])

    def step(self, action):
        if self.session is None and self._node is None:
            raise SpecGymError("call reset() before step() (the episode has ended or never started)")
        keep = discrete_action(action, self.action_space, "0 = keep the target's token, 1 = keep the draft's")
        node = self._node
        end = self._live_step(keep) if self.tree is None else self._replay_step(keep)
        if self.tree is not None:
            keep = self._path[-1]  # the choice served (see serve_choice)
        # counterfactual: this choice's outcome under target continuation minus keeping the target's
        # token; the sum over an episode is the final score minus the target-only score
        shaped = 0.0
        if self.reward_kind == "counterfactual":
            follow = self.tree.follow[node]
            shaped = float(follow[keep] - follow[KEEP_TARGET])
        accepted, generated, mismatches, kept = self._progress
        speed = self.speed_weight * (accepted - self._accepted) / self.max_new_tokens
        self._accepted, self._speed_total = accepted, self._speed_total + speed
        info = {
            "speed_reward": speed,
            "item_index": self.index,
            "tokens_generated": generated,
            "mismatches": mismatches,
            "draft_kept": kept,
        }
        if end is None:
            return self._stop_now()[0], float(speed + shaped), False, False, info
        correct, text, mal = end
        info.update(
            correctness=correct,
            correct=correct >= 1.0,
            episode_speed_reward=self._speed_total,
            mean_accepted_length=mal,
            text=text,
        )
        self.session = self._node = None
        final = shaped if self.reward_kind == "counterfactual" else correct
        return np.zeros(N_FEATURES, dtype=np.float32), float(final + speed), True, False, info

    def _live_step(self, keep: int) -> tuple[float, str, float] | None:
        session = self.session
        session.decide(keep == KEEP_DRAFT)
        self._mismatch = session.advance()
        # every drafted token now in the output: matches since the last step plus a kept one
        accepted = session.accepted + (session.cycle.pos if session.cycle is not None else 0)
        self._progress = (accepted, len(session.new_tokens), session.mismatches, session.draft_kept)
        if self._mismatch is not None:
            return None
        return self.correctness(self.index, session), self.text(session), session.mean_accepted_length

    def _replay_step(self, keep: int) -> tuple[float, str, float] | None:
        node = self._node
        self.replay_steps += 1
        keep, code = self.serve_choice(self.index, self._path, node, keep)
        tree = self.tree  # the env's own copy where a branch was grafted
        self._path.append(keep)
        if code >= 0:
            self._node = code
            self._progress = (
                int(tree.node_accepted[code]),
                int(tree.node_generated[code]),
                len(self._path) + 1,
                int(tree.node_kept[code]),
            )
            return None
        leaf = LEAF - code
        tokens = int(tree.leaf_tokens[leaf])
        mismatches, kept = int(tree.leaf_mismatches[leaf]), int(tree.leaf_kept[leaf])
        self._progress = (int(tree.leaf_accepted[leaf]), tokens, mismatches, kept)
        return float(tree.leaf_score[leaf]), tree.text(leaf), mean_accepted_length(tokens, int(tree.leaf_cycles[leaf]))

    def serve_choice(self, index: int, path: list[int], node: int, keep: int) -> tuple[int, int]:
        """Replay: the choice served for ``keep`` at ``node`` of item ``index`` (reached by ``path``)
        and its child code: the record's; else decoded on demand (:meth:`decode_branch`); else,
        where this machine's decoding of the pair departs from the record before ``node``, keeping
        the target's token (always recorded), counted in ``unreproduced_steps``."""
        code = int(self.tree.node_child[node, keep])
        if code == UNRECORDED and node not in self._unreproducible:  # one found before is not decoded again
            code = self.decode_branch(index, path, node, keep)
        if code == UNRECORDED:  # this machine decodes the path apart from the record
            self.unreproduced_steps += 1
            keep, code = KEEP_TARGET, int(self.tree.node_child[node, KEEP_TARGET])
        return keep, code

    def decode_branch(self, index: int, path: list[int], node: int, keep: int) -> int:
        """Decode choice ``keep`` at ``node`` (reached from item ``index``'s root by the choices
        ``path``), which the record lacks, and graft it into the record in memory; its child code.
        With ``unrecorded='error'``, refuse instead.

        The pair decodes the path again first, and each mismatch on it must be the recorded one:
        bfloat16 kernels differ between CPUs, so on another machine than the recording's the
        decoding can depart from the record at a near-tie. Then nothing consistent can be grafted:
        UNRECORDED is returned and the node is remembered (:meth:`action_masks` hides the choice)."""
        if self._kwargs["unrecorded"] == "error":
            raise SpecGymError(
                f"item {index}: choice {keep} after {len(path)} decisions is not in the branch record "
                f"{self._kwargs['traces']!r}; record it with a larger --max-nodes / --max-drafts, or pass "
                "unrecorded='decode' to decode it on demand"
            )
        session, at = self.new_session(index), int(self.tree.item_root[index])
        for choice in [*path, keep]:
            if not self._same_mismatch(session, session.advance(), at):
                self._unreproducible.add(node)
                return UNRECORDED
            session.decide(choice == KEEP_DRAFT)
            at = int(self.tree.node_child[at, choice])
        self.decoded_steps += 1
        sub = self._record_from(session, index, GRAFT_NODES, None)
        if not self._own_tree:  # the shared record stays as recorded; this env's grows
            self.tree, self._own_tree = self.tree.copy(), True
        return self.tree.graft(node, keep, sub)

    def reproduces_target_path(self, index: int) -> dict[str, bool]:
        """Replay: whether the pair, decoding item ``index`` live keeping the target's token at
        every mismatch, meets the record's keep-target path: ``path`` (every mismatch the recorded
        one, and no other), ``text`` (the same output) and ``correct`` (the same verdict). A record
        is one machine's decoding: bfloat16 kernels differ between CPUs (``benchmark records``)."""
        tree, code = self.tree, int(self.tree.item_root[index])
        recorded = code
        while recorded >= 0:
            recorded = int(tree.node_child[recorded, KEEP_TARGET])
        leaf = LEAF - recorded
        session, path = self.new_session(index), True
        while (m := session.advance()) is not None:
            path = path and self._same_mismatch(session, m, code)
            code = int(tree.node_child[code, KEEP_TARGET]) if code >= 0 else code
            session.decide(False)
        return {
            "path": path and code == recorded,
            "text": self.text(session) == tree.text(leaf),
            "correct": bool((self.correctness(index, session) >= 1.0) == (tree.leaf_score[leaf] >= 1.0)),
        }

    def _same_mismatch(self, session: ArbitrationSession, m: Mismatch | None, node: int) -> bool:
        """Whether a live mismatch is the one the record holds at ``node``: at the same output
        position, with the same block, position in it and tokens."""
        if m is None or node < 0 or len(session.new_tokens) != int(self.tree.node_generated[node]):
            return False
        return [getattr(m, a) for a in MISMATCH_INTS] == self.tree.node_mismatch_ints[node].tolist()

    def action_masks(self) -> np.ndarray:
        """Both choices are valid at every mismatch, but for keeping the draft's token in replay
        where this machine cannot decode it consistently with the record (:meth:`decode_branch`)."""
        return np.array([True, self._node not in self._unreproducible])
