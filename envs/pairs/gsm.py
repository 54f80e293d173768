"""The ``gsm`` pair: a byte-level target and draft trained from scratch on math word problems.

Arbitration needs a pair whose final answers can be checked, whose target is right more often
than its draft, and whose draft is still right on some items the target gets wrong (those
disagreements are what an arbiter learns from). No pretrained math model reaches the machine,
and SmolLM2-135M-Instruct solves only ~1-2% of GSM8K, so the recipe trains both models itself,
on CPU, from reasoning-gym problems with GSM8K-style worked solutions ending ``#### N``:

1. Data: ``chain_sum`` problems (3-4 terms of 1-2 digits; ``envs.tasks.math``) with a
   left-to-right solution, ``a op b = c`` per line. Items come from seeds
   ``TRAIN_SEED_BASE + i``; every question that also appears among the first ``N_EXCLUDED``
   held-out items (``HELDOUT_SEED``) or the environments' training items (``TRAIN_SEED``) is
   dropped, so the held-out figures are on unseen questions.
2. Models: Llama with the byte tokenizer of ``tiny-random`` (digits are single tokens); the
   target is deeper and wider and trains longer than the draft.
3. Training: next-token cross-entropy on solution tokens (the question is context only),
   bf16 autocast; AdamW, warm-up then cosine decay; checkpoints every minute and on interrupt (resumable).
4. Evaluation on held-out items: greedy accuracy of each model alone, the share of items only
   the draft gets right, mean accepted length of greedy SpD at k=4, and per-token forward times.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from envs.pairs.timing import forward_latency_ms
from envs.pairs.training import resumable_training
from envs.specdec.errors import SpecGymError
from envs.specdec.files import staged_dir, write_text_atomic

TASK = "chain_sum"
TRAIN_SEED_BASE = 200_000
N_EXCLUDED = 5_000
N_EVAL = 400


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int


@dataclass(frozen=True)
class MathPairConfig:
    task: str = TASK
    target: ModelShape = ModelShape(layers=4, hidden=128, heads=4)
    draft: ModelShape = ModelShape(layers=2, hidden=128, heads=4)
    target_steps: int = 1500
    draft_steps: int = 1200
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.05
    max_positions: int = 256
    checkpoint_seconds: float = 60.0
    eval_items: int = N_EVAL


def make_model(shape: ModelShape, vocab: int, eos: int, max_positions: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.hidden,
        intermediate_size=4 * shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        eos_token_id=eos,
        pad_token_id=eos,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    return model


def training_questions(cfg: MathPairConfig) -> list[tuple[str, str]]:
    """(prompt, solution) pairs for training, held-out and env-training questions removed."""
    from envs.tasks.math import generator_items, prompt_text
    from envs.tasks.splits import HELDOUT_SEED, TRAIN_SEED

    excluded = {x.question for seed in (HELDOUT_SEED, TRAIN_SEED) for x in generator_items(cfg.task, N_EXCLUDED, seed)}
    n = cfg.target_steps * cfg.batch_size
    items = generator_items(cfg.task, n, TRAIN_SEED_BASE)
    return [(prompt_text(x.question), x.solution) for x in items if x.question not in excluded]


def collate(rows: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and labels (-100 on prompt and padding)."""
    width = max(len(p) + len(s) for p, s in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for r, (p, s) in enumerate(rows):
        seq = p + s
        ids[r, : len(seq)] = torch.tensor(seq)
        labels[r, len(p) : len(seq)] = torch.tensor(s)
    return ids, labels


def train_model(
    model, rows, cfg: MathPairConfig, steps: int, seed: int, ckpt: Path, pad: int, desc: str, progress: bool
) -> float:
    """Train for ``steps`` batches (resuming from ``ckpt``); returns training seconds."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def schedule(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        # the batch depends on the step only: the same data order after a resume
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        pick = torch.randint(len(rows), (cfg.batch_size,), generator=gen).tolist()
        ids, labels = collate([rows[i] for i in pick], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # ~2x faster on CPU
            logits = model(input_ids=ids).logits[:, :-1].float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)), {}

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    return resumable_training(
        model,
        opt,
        sched,
        loss_at,
        steps=steps,
        ckpt=ckpt,
        checkpoint_seconds=cfg.checkpoint_seconds,
        desc=desc,
        progress=progress,
    )


def task_accuracy(pair, items, max_new_tokens: int = 128, progress: bool = True, chat: bool = False) -> dict:
    """Greedy accuracy of the target alone and the draft alone on ``items`` (prompts through the
    chat template when ``chat``), and how often only one of them is right (the disagreements
    Arbitration learns from)."""
    from tqdm.auto import tqdm

    from envs.specdec.decoder import SpeculativeDecoder
    from envs.specdec.pair import ModelPair
    from envs.tasks.math import is_correct, prompt_text

    draft_alone = ModelPair(target=pair.draft, draft=pair.draft, tokenizer=pair.tokenizer, name="draft-alone")
    decoders = {"target": SpeculativeDecoder(pair), "draft": SpeculativeDecoder(draft_alone)}
    right: dict[str, list[float]] = {"target": [], "draft": []}
    for item in tqdm(items, desc="held-out accuracy", unit="item", disable=not progress):
        ids = pair.encode(prompt_text(item.question), chat=chat)
        for who, dec in decoders.items():
            text = pair.tokenizer.decode(dec.generate_target(ids, max_new_tokens).tokens, skip_special_tokens=True)
            right[who].append(float(is_correct(item, text)))
    both = list(zip(right["target"], right["draft"], strict=True))
    return {
        "n_items": len(items),
        "target_accuracy": statistics.fmean(right["target"]),
        "draft_accuracy": statistics.fmean(right["draft"]),
        "draft_right_target_wrong": statistics.fmean(float(d > t) for t, d in both),
        "target_right_draft_wrong": statistics.fmean(float(t > d) for t, d in both),
    }


def evaluate(target_dir: Path, draft_dir: Path, task: str, n: int, progress: bool = True) -> dict:
    """Held-out task accuracy (:func:`task_accuracy`) and mean accepted length at k=4."""
    from envs.specdec.decoder import SpeculativeDecoder
    from envs.specdec.pair import ModelPair
    from envs.tasks.math import load_items, prompt_text
    from envs.tasks.splits import HELDOUT_SEED

    pair = ModelPair.load(str(target_dir), str(draft_dir), device="cpu", dtype="float32", name="gsm")
    items = load_items(task, n, HELDOUT_SEED)
    dec = SpeculativeDecoder(pair)
    accepted = [
        dec.generate(pair.encode(prompt_text(x.question), chat=False), 128, k=4).mean_accepted_length for x in items
    ]
    return task_accuracy(pair, items, 128, progress) | {"mean_accepted_length_k4": statistics.fmean(accepted)}


def model_card(recipe: dict) -> str:
    q, t, c, n = recipe["quality"], recipe["timing"], recipe["config"], recipe["params"]
    quality = " | ".join(
        f"{q[key]:.3f}"
        for key in ("target_accuracy", "draft_accuracy", "draft_right_target_wrong", "target_right_draft_wrong")
    )
    models = "\n".join(
        f"| {role} | {c[role]['layers']} x {c[role]['hidden']} | {n[role] / 1e6:.2f}M | {c[role + '_steps']} |"
        for role in ("target", "draft")
    )
    return f"""# SpecGym `gsm` pair: byte-level math target and draft

Two Llama models trained from scratch by `{recipe["command"]}` (seed {recipe["seed"]}) on
reasoning-gym `{c["task"]}` problems with GSM8K-style worked solutions ending `#### N`; the
full recipe is in `recipe.json`. Byte-level tokenizer (vocabulary 257).

| model | layers x width | parameters | training steps |
|---|---|---|---|
{models}

## Quality on {q["n_items"]} held-out items (greedy, questions no training item used)

Accuracy is the share of items with full marks from reasoning-gym's scorer.

| target acc. | draft acc. | draft right, target wrong | target right, draft wrong | accepted length (k=4) |
|---|---|---|---|---|
| {quality} | {q["mean_accepted_length_k4"]:.2f} |

## Speed

One-token forward at context {t["context"]} on the build CPU ({t["threads"]} thread, median):
target {t["target_ms"]:.2f} ms, draft {t["draft_ms"]:.2f} ms (ratio {t["ratio"]:.2f}). Wall time:
target training {recipe["wall_seconds"]["target"]:.0f} s, draft training {recipe["wall_seconds"]["draft"]:.0f} s.
"""


def is_complete(path: Path) -> bool:
    try:
        return json.loads((path / "recipe.json").read_text()).get("complete") is True
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def build_math_pair(pair_dir: Path, *, seed: int = 0, progress: bool = True, config: MathPairConfig | None = None):
    """Train (or resume) the pair into ``pair_dir/{target,draft}``; returns the two paths."""
    from envs.pairs.tiny import EOS, byte_tokenizer

    pair_dir = Path(pair_dir)
    target_dir, draft_dir = pair_dir / "target", pair_dir / "draft"
    if is_complete(pair_dir):
        return target_dir, draft_dir
    cfg = config or MathPairConfig()
    build = pair_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    tok = byte_tokenizer()
    eos = tok.convert_tokens_to_ids(EOS)
    data = training_questions(cfg)
    rows = [(tok.encode(p), tok.encode(s) + [eos]) for p, s in data]
    if max(len(p) + len(s) for p, s in rows) > cfg.max_positions:
        raise SpecGymError("a training item exceeds max_positions; raise it in MathPairConfig")
    walls, params = {}, {}
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for role, shape, steps, out, offset in (
        ("target", cfg.target, cfg.target_steps, target_dir, 0),
        ("draft", cfg.draft, cfg.draft_steps, draft_dir, 1),
    ):
        torch.manual_seed(seed * 10 + offset)
        model = make_model(shape, len(tok), eos, cfg.max_positions)
        params[role] = sum(p.numel() for p in model.parameters())
        ckpt = build / f"{role}-seed{seed}-steps{steps}.pt"
        walls[role] = train_model(model, rows, cfg, steps, seed * 10 + offset, ckpt, eos, f"training {role}", progress)
        with staged_dir(out) as staging:  # an interrupted save leaves no half-written model folder
            model.to(torch.float16).save_pretrained(staging)
            tok.save_pretrained(staging)
    quality = evaluate(target_dir, draft_dir, cfg.task, cfg.eval_items, progress)
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    target_fp32 = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32).eval()
    draft_fp32 = AutoModelForCausalLM.from_pretrained(draft_dir, dtype=torch.float32).eval()
    t_ms, d_ms = (forward_latency_ms(m, context=100, repeats=30, warmup=0) for m in (target_fp32, draft_fp32))
    recipe = {
        "command": f"python -m experiments.build_pair gsm --seed {seed}",
        "seed": seed,
        "config": asdict(cfg),
        "data": {
            "task": cfg.task,
            "train_seed_base": TRAIN_SEED_BASE,
            "n_train_items": len(rows),
            "excluded": f"questions among the first {N_EXCLUDED} held-out and env-training items",
        },
        "params": params,
        "quality": quality,
        "quality_note": "accuracy = share of items with full marks from reasoning-gym's scorer",
        "timing": {"target_ms": t_ms, "draft_ms": d_ms, "ratio": d_ms / t_ms, "threads": 1, "context": 100},
        "wall_seconds": walls,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }
    write_text_atomic(pair_dir / "README.md", model_card(recipe))
    # the completion marker, written last and whole: until it is in place the build counts as unfinished
    write_text_atomic(pair_dir / "recipe.json", json.dumps(recipe, indent=2) + "\n")
    if progress:
        print(
            f"gsm pair saved to {pair_dir}: target accuracy {quality['target_accuracy']:.3f}, draft "
            f"{quality['draft_accuracy']:.3f}, draft-right-target-wrong {quality['draft_right_target_wrong']:.3f}"
        )
    return target_dir, draft_dir
