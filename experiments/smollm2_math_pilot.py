"""Pilot of the ``smollm2-math`` recipe on this CPU: is 40-75% target accuracy reachable in its budget?

    python -m experiments.smollm2_math_pilot --threads 1 --items 40 --steps 150 --out docs/results/F.json

Measures (a) the untuned target's and draft's accuracy on held-out items, few-shot (3 worked
training solutions as earlier chat turns) and zero-shot, through the chat template; (b) the time of
one training step of each model at the recipe's batch size (median and range over repeats);
(c) a short fine-tuning run of each (the recipe's loop, ``--steps`` steps, its learning-rate
schedule compressed to them) and both models' zero-shot accuracy after it. Uses the converted
SmolLM2 target in the data directory; writes nothing there (checkpoints go to a temp folder).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from envs.pairs.build import BUNDLED, data_dir
from envs.pairs.gsm import collate, task_accuracy
from envs.pairs.smollm2_math.config import BASE_PAIR, MathRecipeConfig
from envs.pairs.smollm2_math.data import answer_loss, chat_rows, training_items
from envs.pairs.smollm2_math.train import freeze_embedding, train_stage, with_lora
from envs.pairs.smollm2_math.weights import plain_model
from envs.specdec import shortlist
from envs.specdec.decoder import SpeculativeDecoder
from envs.specdec.pair import ModelPair, load_tokenizer
from envs.tasks.math import generator_items, is_correct, prompt_text
from envs.tasks.splits import split_seed
from experiments.cli import CommandParser, run_main


def few_shot_accuracy(pair: ModelPair, shots, items, max_new: int) -> dict:
    """Greedy accuracy of each model alone with ``shots`` as earlier (user, assistant) chat turns."""
    turns = []
    for x in shots:
        turns += [{"role": "user", "content": prompt_text(x.question)}, {"role": "assistant", "content": x.solution}]
    alone = {
        "target": pair,
        "draft": ModelPair(target=pair.draft, draft=pair.draft, tokenizer=pair.tokenizer, name="draft-alone"),
    }
    right: dict[str, list[float]] = {"target": [], "draft": []}
    for item in items:
        messages = turns + [{"role": "user", "content": prompt_text(item.question)}]
        ids = pair.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        for who, p in alone.items():
            out = SpeculativeDecoder(p).generate_target(ids, max_new).tokens
            right[who].append(float(is_correct(item, pair.tokenizer.decode(out, skip_special_tokens=True))))
    return {f"{who}_accuracy": statistics.fmean(v) for who, v in right.items()} | {"n_items": len(items)}


def step_seconds(model, rows, cfg: MathRecipeConfig, pad: int, vocab, repeats: int) -> dict:
    """Seconds of one forward + backward + AdamW step at the recipe's batch size (one warm-up)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
    times = []
    for step in range(repeats + 1):
        ids, labels = collate(rows[step * cfg.batch_size : (step + 1) * cfg.batch_size], pad)
        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = answer_loss(lm, ids, labels, vocab)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    t = times[1:]
    return {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "repeats": len(t)}


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m experiments.smollm2_math_pilot", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--items", type=int, default=40, help="held-out items per accuracy figure")
    parser.add_argument("--steps", type=int, default=150, help="steps of the short target run")
    parser.add_argument("--draft-steps", type=int, default=300, help="steps of the short draft run")
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base_target, base_draft = data_dir() / "pairs" / BASE_PAIR / "target", BUNDLED / "smollm2-135m-draft"
    cfg = replace(MathRecipeConfig(), target_steps=args.steps, draft_steps=args.draft_steps)
    tok = load_tokenizer(str(base_target), "target")
    items = training_items(cfg)
    rows = chat_rows(tok, items)
    pad = tok.convert_tokens_to_ids("<|im_end|>")
    heldout = generator_items(cfg.task, args.items, split_seed("heldout"))
    result: dict = {"config": asdict(cfg), "threads": args.threads, "device": "cpu (AMD EPYC, 2 cores shared)"}
    result["rows"] = {"n": len(rows), "mean_tokens": statistics.fmean(len(p) + len(s) for p, s in rows)}

    def save() -> None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2), flush=True)

    pair = ModelPair.load(str(base_target), str(base_draft), device="cpu", dtype="fast", name="untuned")
    began = time.monotonic()
    result["untuned_few_shot"] = few_shot_accuracy(pair, items[:3], heldout, cfg.max_new_tokens)
    result["untuned_zero_shot"] = task_accuracy(pair, heldout, cfg.max_new_tokens, False, chat=True)
    result["untuned_eval_seconds"] = time.monotonic() - began
    result["dtype"] = pair.dtype_name
    save()
    del pair

    vocab = shortlist.read(base_draft / shortlist.FILENAME, 49152)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        target = with_lora(plain_model(base_target), cfg)
        result["target_step"] = step_seconds(target, rows, cfg, pad, None, args.repeats)
        save()
        target = with_lora(plain_model(base_target), cfg)
        result["target_train_seconds"] = train_stage(
            target, rows, cfg, steps=cfg.target_steps, lr=cfg.target_lr, seed=0,
            ckpt=Path(tmp) / "t.pt", pad=pad, desc="target LoRA", progress=True,
        )  # fmt: skip
        merged = target.merge_and_unload().eval()
        draft = plain_model(base_draft)
        freeze_embedding(draft)
        result["draft_step"] = step_seconds(draft, rows, cfg, pad, vocab, args.repeats)
        draft = plain_model(base_draft)
        freeze_embedding(draft)
        result["draft_train_seconds"] = train_stage(
            draft, rows, cfg, steps=cfg.draft_steps, lr=cfg.draft_lr, seed=1,
            ckpt=Path(tmp) / "d.pt", pad=pad, desc="draft", progress=True,
        )  # fmt: skip
        shortlist.apply(draft.eval(), vocab)
        dtype = torch.bfloat16 if result["dtype"] == "bfloat16" else torch.float32
        tuned = ModelPair(target=merged.to(dtype), draft=draft.to(dtype), tokenizer=tok, name="pilot")
        began = time.monotonic()
        for split in ("validation", "heldout"):
            pool = heldout if split == "heldout" else generator_items(cfg.task, args.items, split_seed(split))
            result[f"tuned_{split}"] = task_accuracy(tuned, pool, cfg.max_new_tokens, False, chat=True)
            save()
        result["tuned_eval_seconds"] = time.monotonic() - began
    save()
    return 0


if __name__ == "__main__":
    run_main(main)
