"""``pair``: how good a draft is for its target: acceptance by draft length, the best static k,
and its speedup over target-only decoding, all measured in one interleaved run (greedy)."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
from rich.table import Table

from envs.pairs import pair_spec
from envs.specdec import SpeculativeDecoder
from envs.specdec.cost import device_name
from envs.specdec.pair import ModelPair
from envs.specdec.records import mean_accepted_length
from envs.tasks import load_prompts
from experiments import cli
from experiments.benchmarks.common import divergences, pool_interleaved, spread, top2_gaps
from experiments.cli import add_pair_args, add_prompt_args, pair_args, pair_from_args
from experiments.workers import Pool, add_worker_args, check_workers, open_pool

console = cli.console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    pair = sub.add_parser("pair", help="acceptance by k, best static k and its speedup over target-only")
    pair.add_argument("name", nargs="?", default=None, help="registered pair name (or use --target/--draft)")
    add_pair_args(pair)
    add_prompt_args(pair, n=20, max_new=96)
    pair.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 8])
    pair.add_argument("--repeats", type=int, default=1, help="interleaved repetitions (default: 1)")
    pair.add_argument(
        "--task",
        help="a math task (reasoning-gym name or GSM8K .jsonl): prompts are its held-out items and the JSON "
        "adds each model's accuracy (default: the task a task pair was trained on, e.g. gsm's chain_sum)",
    )
    pair.add_argument("--n-items", type=int, default=300, help="held-out task items for the accuracies")
    pair.add_argument("--out", help="write the results JSON here")
    add_worker_args(pair)
    pair.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    check_workers(args.workers, args.ray_address, args.device)
    settings = pair_args(argparse.Namespace(**{**vars(args), "pair": args.name or args.pair}))
    with open_pool(
        functools.partial(pair_from_args, settings),
        workers=args.workers,
        address=args.ray_address,
        threads=args.threads,
        device=args.device,
    ) as pool:
        return measure(pool, args)


def encode(pair: ModelPair, texts: list[str], chat: bool = True) -> list[list[int]]:
    return [pair.encode(text, chat=chat) for text in texts]


def pair_methods(pair: ModelPair, *, ks: list[int], n: int) -> dict[str, Callable[[list[int]], Any]]:
    """Target-only and SpD at each k on ``pair``; SpD also returns its cycles' (accepted, verified, new)."""
    dec = SpeculativeDecoder(pair)

    def spd(k: int) -> Callable[[list[int]], Any]:
        def go(ids: list[int]) -> tuple[list[int], list[tuple[int, int, int]]]:
            out = dec.generate(ids, n, k=k)
            return out.tokens, [(r.accepted_len, len(r.verified), len(r.new_tokens)) for r in out.records]

        return go

    return {"target_ar": lambda ids: dec.generate_target(ids, n).tokens} | {f"k{k}": spd(k) for k in ks}


def measure(pool: Pool, args: argparse.Namespace) -> dict:
    """The benchmark on the pool's workers (this process without --workers)."""
    pair = pool.call(describe)
    spec = pair_spec(pair["name"])
    task = args.task or (spec.task if spec else None)
    items = []
    if task:
        from envs.tasks.math import load_items, prompt_text
        from envs.tasks.splits import HELDOUT_SEED

        items = load_items(task, max(args.n_items, args.n_prompts), HELDOUT_SEED)
        texts = [prompt_text(x.question) for x in items[: args.n_prompts]]
        prompts = pool.call(functools.partial(encode, texts=texts, chat=bool(spec and spec.chat)))
    else:
        prompts = pool.call(functools.partial(encode, texts=load_prompts(args.prompts, args.n_prompts)))
    n = args.max_new_tokens
    make = functools.partial(pair_methods, ks=args.ks, n=n)
    rates, outputs, runs = pool_interleaved(pool, make, prompts, args.repeats)
    cycles = {k: [c for _, run in runs for c in run[f"k{k}"][2]] for k in args.ks}  # (accepted, verified, new)
    by_k = {}
    for k in args.ks:
        acc = np.array(cycles[k])
        by_k[str(k)] = {
            "tokens_per_s": spread(rates[f"k{k}"]),
            "speedup": float(np.mean(rates[f"k{k}"]) / np.mean(rates["target_ar"])),
            "mean_accepted_length": mean_accepted_length(int(acc[:, 2].sum()), len(acc)),
            "acceptance_rate": float(acc[:, 0].sum() / max(acc[:, 1].sum(), 1)),
        }
    best = max(args.ks, key=lambda k: by_k[str(k)]["speedup"])
    ref_k = 4 if 4 in args.ks else args.ks[0]
    result = {
        "benchmark": "pair",
        "pair": pair["name"],
        "pair_info": pair["info"],
        "device": pair["device"],
        "dtype": pair["dtype"],
        "prompts": f"held-out {task} items" if task else args.prompts or "held-out reasoning-gym mix",
        "n_prompts": len(prompts),
        "max_new_tokens": n,
        "repeats": args.repeats,
        "generated_tokens": sum(len(o) for o in outputs["target_ar"]),
        "identical_outputs": all(outputs[f"k{k}"] == outputs["target_ar"] for k in args.ks),
        "divergences": pool.call(
            functools.partial(divergences, prompts=prompts, outputs=outputs, reference="target_ar")
        ),
        "float32_top2_gap": pool.call(functools.partial(top2_gaps, prompts=prompts, outputs=outputs["target_ar"])),
        "mean_accepted_length": by_k[str(ref_k)]["mean_accepted_length"],
        "mean_accepted_length_k": ref_k,
        "acceptance_rate": by_k[str(ref_k)]["acceptance_rate"],
        "best_static_k": best,
        "speedup_best_static_k": by_k[str(best)]["speedup"],
        "target_ar_tokens_per_s": spread(rates["target_ar"]),
        "by_k": by_k,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if task:
        from envs.pairs.gsm import task_accuracy

        accuracy = functools.partial(
            task_accuracy,
            items=items[: args.n_items],
            max_new_tokens=args.max_new_tokens,
            chat=bool(spec and spec.chat),
        )
        result |= {"task": task, **pool.call(accuracy)}
        console.print(
            f"{task}: target {result['target_accuracy']:.1%}, draft {result['draft_accuracy']:.1%}, "
            f"draft right & target wrong {result['draft_right_target_wrong']:.1%} of {result['n_items']} items"
        )
    table = Table(title=f"pair benchmark: {pair['name']}, {len(prompts)} prompts, {result['device']}")
    for col in ("k", "tokens/s", "speedup vs target-only", "mean accepted length", "acceptance rate"):
        table.add_column(col)
    table.add_row("target-only", f"{np.mean(rates['target_ar']):.1f}", "1.00x", "-", "-")
    for k in args.ks:
        row = by_k[str(k)]
        table.add_row(
            str(k),
            f"{row['tokens_per_s']['mean']:.1f}",
            f"{row['speedup']:.2f}x",
            f"{row['mean_accepted_length']:.2f}",
            f"{row['acceptance_rate']:.1%}",
        )
    console.print(table)
    console.print(
        f"best static k = {best}: {result['speedup_best_static_k']:.2f}x target-only; "
        f"identical outputs: {result['identical_outputs']}"
    )
    if result["divergences"]:
        gaps = [d["float32_logit_gap"] for d in result["divergences"]]
        console.print(
            f"{len(gaps)} (k, prompt) outputs differ from target-only ({pair['dtype']}); at the first "
            f"difference the float32 target's logits of the two tokens differ by at most {max(gaps):.3f}; over "
            f"all target tokens the top-2 gap has median {result['float32_top2_gap']['p50']:.2f}, 5th percentile "
            f"{result['float32_top2_gap']['p5']:.2f}"
        )
    return result


def describe(pair: ModelPair) -> dict[str, Any]:
    """What the results JSON says of the pair (read where it is loaded: a worker, with --workers)."""
    return {"name": pair.name, "info": pair.describe(), "device": device_name(pair.device), "dtype": pair.dtype_name}
