"""``lossless``: greedy SpD returns the target's greedy tokens, token for token, on this device, for
every static k and tree shape asked for (against target-only decoding of the same prompts).

Float32 unless ``--dtype`` says otherwise: in bfloat16 a block of tokens and one token at a time
reduce in different orders, so near-ties can break differently (``benchmark pair`` reports those
as divergences); in float32 any difference is an engine bug. Where outputs differ, the JSON names
the first differing position and the float32 target's logit gap there (benchmarks.common).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from envs.specdec import SpeculativeDecoder
from envs.specdec.cost import device_name
from envs.specdec.decoder import check_shape
from envs.tasks import load_prompts
from experiments import cli
from experiments.benchmarks.common import divergences
from experiments.cli import add_pair_args, add_prompt_args, pair_from_args

console = cli.console()


def tree_shape(text: str) -> tuple[int, int]:
    """An argparse type: ``WIDTHxDEPTH`` (``4x8``: the top 4 nodes per level, 8 levels)."""
    width, _, depth = text.partition("x")
    if not (width.isdigit() and depth.isdigit() and int(width) >= 1 and int(depth) >= 1):
        raise argparse.ArgumentTypeError(f"expected WIDTHxDEPTH such as 4x8, got {text!r}")
    return int(width), int(depth)


def add_parser(sub: argparse._SubParsersAction) -> None:
    lossless = sub.add_parser("lossless", help="greedy SpD == target greedy, token for token, per k and tree shape")
    add_pair_args(lossless)
    add_prompt_args(lossless, n=4, max_new=64)
    lossless.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8], help="chain draft lengths")
    lossless.add_argument(
        "--trees",
        type=tree_shape,
        nargs="+",
        default=[(2, 4), (4, 8)],
        help="tree shapes WIDTHxDEPTH (default: 2x4 4x8)",
    )
    lossless.add_argument("--out", help="write the results JSON here")
    lossless.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict:
    args.dtype = args.dtype or "float32"
    pair = pair_from_args(args)
    dec = SpeculativeDecoder(pair)
    prompts = [pair.encode(p) for p in load_prompts(args.prompts, args.n_prompts)]
    n = args.max_new_tokens
    shapes = {f"k{k}": {"k": k} for k in args.ks}
    shapes |= {f"tree_w{w}_d{d}": {"width": w, "depth": d} for w, d in args.trees}
    for shape in shapes.values():  # before any decoding
        check_shape(shape.get("k") or shape["depth"], shape.get("width", 1))
    outputs = {"target": [dec.generate_target(ids, n).tokens for ids in prompts]}
    for name, shape in shapes.items():
        outputs[name] = [dec.generate(ids, n, **shape).tokens for ids in prompts]
    by_shape = {
        name: {
            "identical": outputs[name] == outputs["target"],
            "differing_prompts": [
                i for i, (a, b) in enumerate(zip(outputs[name], outputs["target"], strict=True)) if a != b
            ],
        }
        for name in shapes
    }
    result = {
        "benchmark": "lossless",
        "pair": pair.name,
        "pair_info": pair.describe(),
        "device": device_name(pair.device),
        "dtype": pair.dtype_name,
        "prompts": args.prompts or "held-out reasoning-gym mix",
        "n_prompts": len(prompts),
        "max_new_tokens": n,
        "generated_tokens": sum(len(o) for o in outputs["target"]),
        "shapes": by_shape,
        "identical_outputs": all(row["identical"] for row in by_shape.values()),
        "divergences": divergences(pair, prompts, outputs, reference="target"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    same = sum(row["identical"] for row in by_shape.values())
    console.print(
        f"lossless ({pair.name}, {result['dtype']}, {result['device']}): {same}/{len(shapes)} shapes give the "
        f"target's greedy tokens on all {len(prompts)} prompts x {n} tokens"
    )
    return result
