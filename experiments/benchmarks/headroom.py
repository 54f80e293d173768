"""``headroom``: how much of the DraftVerify oracle's lead a causal policy can take, and why.

    python -m experiments.benchmark headroom --pair NAME [--width W] [--policy RUN_DIR] --out FILE.json

On a held-out trace, under the cost model (replay, no models run), for the draft as profiled
and as if it were ``--draft-speedups`` times faster:

- ``oracle``: hindsight on both the depth and the verified nodes (the env's upper bound);
- ``oracle_depth``: hindsight on the depth only, verifying every drafted node, so the gap
  between the two is what picking the verified nodes in hindsight is worth (it is an upper
  bound for every rule verifying everything it drafts);
- ``best_static``: the best static k on the held-out trace itself;
- ``confidence_tuned`` / ``specdec++_tuned``: the known dynamic rules with their threshold
  tuned on the *train* trace (a grid of 0.05 steps), scored on the held-out one; and
  ``confidence_expected_tuned`` / ``specdec++_expected_tuned``: the same with the ``expected``
  size rule choosing the verified nodes (the best rule pairs we know);
- ``learned`` (with ``--policy``, as profiled only: the policy observes the cost model), and
  the learned pair with one role given hindsight, which splits the oracle's lead between the
  roles: ``learned_depth_hindsight_size`` (the oracle picks the verified nodes of whatever the
  learned depth policy drafts) and ``hindsight_depth_learned_size`` (the oracle's depths,
  the learned size policy).

Each with ``tokens_per_s`` and ``fraction_of_oracle``. ``by_prompt`` (the profiled draft) splits
the held-out score by prompt: the best static k's accepted length there, the oracle's, and each
causal policy's fraction of the oracle, with ``correlation`` (Pearson, over prompts) of those
fractions with the static accepted length: whether the oracle's lead shrinks on prompts where the
draft does better (a hint, not a test, of what a better draft would do); and
``confidence_expected_per_prompt_hindsight``, the tuned rule pair with its threshold picked per
prompt in hindsight, a bound on what adapting the operating point to each prompt is worth. Also how well the draft's own
confidence predicts acceptance: the AUC of the best first-level node's draft prob for
"the target's greedy token is that node" (0.5: no signal, 1: a perfect predictor), the
information every causal rule here (and the learned policy's probability features) acts on;
and ``auc_fitted``, the held-out AUC of a logistic regression fitted on the train trace over
everything the draft side knows there (``FEATURES``), to tell whether a better use of the
draft's outputs would predict acceptance better than its top probability alone. With
``--target-features`` (loads the pair's target), ``auc_fitted_target``: the same fit with what
the target side knows for free at a cycle's start, from the verification that ended the last one
(``TARGET_FEATURES``: its distribution at the newest verified position, and the first
``TARGET_COMPONENTS`` principal components, fitted on the train trace, of its last hidden state
there, the input EAGLE-style drafts and Medusa heads predict from), so whether a policy shown the
target's side would do better than one shown the draft's.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

import numpy as np
from rich.table import Table

from envs.partners import make_policy
from envs.specdec.cost import ScaledDraftCost, make_cost_model
from envs.specdec.errors import SpecGymError
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import Composite, Policy, rollout, tokens_per_s
from envs.specdec.trace import Trace
from experiments import cli

console = cli.console()
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
RULES = ("confidence", "specdec++")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("headroom", help="oracle gap of DraftVerify policies (replay under the cost model)")
    p.add_argument("--pair", default="smollm2-135m")
    p.add_argument("--traces", help="held-out trace .npz (default: the pair's, recorded on first use)")
    p.add_argument("--train-traces", help="trace the rule thresholds are tuned on (default: the pair's train one)")
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--max-depth", type=int, default=8)
    p.add_argument("--cost-model", default="auto", help="auto (as train's) | analytic | profile .json")
    p.add_argument("--policy", help="a DraftVerify run directory to score beside the baselines")
    p.add_argument("--draft-speedups", default="2,4", help="what-if draft speedups, comma-separated")
    p.add_argument(
        "--target-features",
        action="store_true",
        help="also fit the first-token predictor with the target's side (loads the pair)",
    )
    p.add_argument("--tag", help="a label for this pair's variant in the results (e.g. 'draft 500 steps')")
    p.add_argument("--out", help="write the results JSON here")
    p.set_defaults(run=run)


FEATURES = (
    "first-level top prob (log)",
    "first-level second prob (log)",
    "first-level entropy",
    "second-level best prob (log)",
    "second-level entropy",
    "hit at the previous position",
    "hit two positions back",
    "position in the output",
)


def first_token(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Per output position: ([n, len(FEATURES)] features, [n] hits: the best first-level node is
    the target's token). The previous positions' hits are what a decoder learns by verifying
    (a little more: it verifies only some positions' first proposals)."""
    feats, hits = [], []
    level = min(1, trace.max_depth - 1)  # the second level (the first again in a depth-1 trace)
    for i in range(trace.n_prompts):
        pt = trace.prompt(i)
        n = len(pt.output)
        rows = np.arange(n)
        best = pt.cum_logprobs[:, 0, :].argmax(axis=1)
        hit = (pt.tokens[rows, 0, best] == np.asarray(pt.output)).astype(float)
        top = np.sort(pt.probs[:, 0, :], axis=1)[:, ::-1]
        second = top[:, 1] if top.shape[1] > 1 else np.zeros(n)
        best2 = pt.cum_logprobs[:, level, :].argmax(axis=1)
        past = np.concatenate([[-1.0, -1.0], hit])  # -1: no such position
        feats.append(
            np.stack(
                [
                    np.log(top[:, 0]),
                    np.log(np.maximum(second, 1e-12)),
                    pt.entropies[rows, 0, best],
                    np.log(pt.probs[rows, level, best2]),
                    pt.entropies[rows, level, best2],
                    past[1 : n + 1],
                    past[:n],
                    rows / int(trace.meta["max_new_tokens"]),
                ],
                axis=1,
            )
        )
        hits.append(hit.astype(bool))
    return np.concatenate(feats), np.concatenate(hits)


TARGET_FEATURES = ("target top prob (log)", "target second prob (log)", "target entropy")
TARGET_COMPONENTS = 8


def target_side(trace: Trace, target) -> np.ndarray:
    """Per output position ``i`` (as :func:`first_token`): the target's ``TARGET_FEATURES`` and its
    last hidden state at the newest position it has computed when the draft proposes
    ``output[i]``, the one that predicted ``output[i - 1]`` (the prompt's second-last token for
    ``i = 0``), by teacher forcing: [n, 3 + hidden size]."""
    import torch

    from envs.specdec.sampling import entropy, log_probs

    short = [i for i in range(trace.n_prompts) if len(trace.prompt(i).prompt) < 2]
    if short:
        raise SpecGymError(f"prompts {short} of the trace have under 2 tokens; target features need 2 or more")
    rows = []
    for i in range(trace.n_prompts):
        pt = trace.prompt(i)
        p, n = len(pt.prompt), len(pt.output)
        ids = torch.tensor([[*pt.prompt.tolist(), *pt.output[: n - 1].tolist()]], device=target.device)
        with torch.no_grad():
            out = target(input_ids=ids, output_hidden_states=True)
        at = slice(p - 2, p - 2 + n)
        lp = log_probs(out.logits[0, at])
        top = lp.topk(2, dim=-1).values
        stats = torch.stack([top[:, 0], top[:, 1], entropy(lp)], dim=1)
        rows.append(torch.cat([stats, out.hidden_states[-1][0, at].float()], dim=1).double().cpu().numpy())
    return np.concatenate(rows)


def acceptance_auc(
    trace: Trace, train: Trace | None = None, target_sides: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, float]:
    """AUC of the best first-level node's draft prob for "that node is the target's next token";
    with ``train``, also ``auc_fitted``, and with ``target_sides`` (:func:`target_side` of the
    train and the held-out trace) ``auc_fitted_target`` (see the module docstring)."""
    x, y = first_token(trace)
    # x[:, 0] is the log of the top prob: the same ranking, so the same AUC
    out = {"auc": auc(x[:, 0], y), "hit_rate": float(y.mean()), "n": int(len(y))}
    if train is not None:
        x_train, y_train = first_token(train)
        out["auc_fitted"] = auc(logistic_scores(x_train, y_train, x), y)
        if target_sides is not None:
            n = len(TARGET_FEATURES)
            (s_train, h_train), (s, h) = ((t[:, :n], t[:, n:]) for t in target_sides)
            # principal components by SVD: a few thousand rows, and no scikit-learn among the dependencies
            mean = h_train.mean(axis=0)
            basis = np.linalg.svd(h_train - mean, full_matrices=False)[2][:TARGET_COMPONENTS].T
            fit = np.hstack([x_train, s_train, (h_train - mean) @ basis])
            out["auc_fitted_target"] = auc(logistic_scores(fit, y_train, np.hstack([x, s, (h - mean) @ basis])), y)
    return out


def logistic_scores(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """Logits for ``x_new`` of an L2-regularised logistic regression fitted on (x, y) by L-BFGS
    (torch: the project's dependencies have no scikit-learn for a few thousand rows)."""
    import torch

    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    xt, yt = torch.tensor((x - mu) / sd), torch.tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        z = xt @ w[:-1] + w[-1]
        value = torch.nn.functional.binary_cross_entropy_with_logits(z, yt) + 1e-4 * (w[:-1] ** 2).sum()
        value.backward()
        return value

    opt.step(loss)
    with torch.no_grad():
        return (torch.tensor((x_new - mu) / sd) @ w[:-1] + w[-1]).numpy()


def auc(scores: np.ndarray, hits: np.ndarray) -> float:
    """P(a hit outscores a miss), ties counted half (Mann-Whitney U / (n_hit * n_miss)); nan
    without both hits and misses."""
    hits = np.asarray(hits, bool)
    pos, neg = np.asarray(scores)[hits], np.sort(np.asarray(scores)[~hits])
    if not len(pos) or not len(neg):
        return float("nan")
    below, upto = np.searchsorted(neg, pos, side="left"), np.searchsorted(neg, pos, side="right")
    return float((below + 0.5 * (upto - below)).sum() / (len(pos) * len(neg)))


def tune_rule(rule: str, train: TraceReplay, heldout: TraceReplay, size: str = "") -> dict[str, float]:
    """``rule``'s threshold tuned on ``train``, scored on ``heldout``; ``size``: e.g. ``"+expected"``."""
    scores = [tokens_per_s(make_policy(f"{rule}-{t:g}{size}"), train) for t in THRESHOLDS]
    t = float(THRESHOLDS[int(np.argmax(scores))])
    return {
        "threshold": t,
        "train_tokens_per_s": max(scores),
        "tokens_per_s": tokens_per_s(make_policy(f"{rule}-{t:g}{size}"), heldout),
    }


def _row(heldout: TraceReplay, train: TraceReplay, oracle: Policy, learned: Composite | None) -> dict:
    """One draft speedup's row; ``oracle``: the hindsight policy of ``heldout`` (its plans are kept)."""
    statics = {k: tokens_per_s(make_policy(f"static-{k}"), heldout) for k in range(1, heldout.max_depth + 1)}
    k = max(statics, key=statics.get)
    row = {
        "oracle": {"tokens_per_s": tokens_per_s(oracle, heldout)},
        "oracle_depth": {"tokens_per_s": tokens_per_s(make_policy("oracle-depth", source=heldout), heldout)},
        "best_static": {"k": k, "tokens_per_s": statics[k]},
    }
    row |= {f"{rule}_tuned": tune_rule(rule, train, heldout) for rule in RULES}
    row |= {f"{rule}_expected_tuned": tune_rule(rule, train, heldout, "+expected") for rule in RULES}
    if learned is not None:
        row["learned"] = {"tokens_per_s": tokens_per_s(learned, heldout)}
        for name, pair in (
            ("learned_depth_hindsight_size", Composite(learned.depth, oracle)),
            ("hindsight_depth_learned_size", Composite(oracle, learned.size)),
        ):
            row[name] = {"tokens_per_s": tokens_per_s(pair, heldout)}
    for entry in row.values():
        entry["fraction_of_oracle"] = entry["tokens_per_s"] / row["oracle"]["tokens_per_s"]
    return row


def by_prompt(heldout: TraceReplay, row: dict, oracle: Policy, learned: Composite | None) -> dict:
    """``by_prompt`` of the module docstring, for the policies of ``row`` (a speedup-1 row; ``oracle``
    as :func:`_row`'s)."""
    k, t = row["best_static"]["k"], row["confidence_expected_tuned"]["threshold"]
    causal: dict[str, Policy] = {"confidence_expected_tuned": make_policy(f"confidence-{t:g}+expected")}
    if learned is not None:
        causal["learned"] = learned
    static = make_policy(f"static-{k}")
    prompts = []
    for i in range(heldout.n_prompts):
        best, base = rollout(oracle, heldout, i), rollout(static, heldout, i)
        entry = {
            "prompt": i,
            "tokens": best.tokens,
            "static_accepted_length": base.mean_accepted_length,
            "oracle_accepted_length": best.mean_accepted_length,
            "oracle_tokens_per_s": best.tokens_per_s,
        }
        for name, policy in causal.items():
            entry[f"{name}_fraction"] = rollout(policy, heldout, i).tokens_per_s / best.tokens_per_s
        prompts.append(entry)
    x = np.array([p["static_accepted_length"] for p in prompts])
    corr = {name: float(np.corrcoef(x, [p[f"{name}_fraction"] for p in prompts])[0, 1]) for name in causal}
    # the same rule pair with its threshold picked per prompt in hindsight: what adapting the
    # operating point to each prompt could be worth at most
    seconds = [
        [rollout(make_policy(f"confidence-{u:g}+expected"), heldout, i).time for u in THRESHOLDS]
        for i in range(heldout.n_prompts)
    ]
    rate = sum(p["tokens"] for p in prompts) / float(np.min(seconds, axis=1).sum())
    oracle_rate = row["oracle"]["tokens_per_s"]
    per_prompt = {"tokens_per_s": rate, "fraction_of_oracle": rate / oracle_rate}
    return {
        "static_k": k,
        "correlation": corr,
        "confidence_expected_per_prompt_hindsight": per_prompt,
        "prompts": prompts,
    }


def run(args: argparse.Namespace) -> dict:
    from experiments.artifacts import default_cost_model, default_traces
    from experiments.runs import check_trace_pair, cost_features, learned_policy, note_other_pair, run_env_kwargs

    traces = args.traces or str(default_traces(args.pair, "heldout", args.width, args.max_depth))
    train_traces = args.train_traces or str(default_traces(args.pair, "train", args.width, args.max_depth))
    cost_model = default_cost_model(args.pair, "auto") if args.cost_model == "auto" else args.cost_model
    base = make_cost_model(cost_model)
    speedups = [1.0] + [float(x) for x in args.draft_speedups.split(",") if x.strip()]
    learned = learned_policy(args.policy, None) if args.policy else None
    if args.policy:
        note_other_pair(args.policy, run_env_kwargs(args.policy).get("pair"), args.pair)
    features = cost_features(learned, args.max_depth, args.width) if learned is not None else "ratios"
    trace, train = Trace.load(traces), Trace.load(train_traces)  # read once, replayed per speedup
    sides = None
    if args.target_features:
        from envs.pairs import load_pair

        for path, t in ((traces, trace), (train_traces, train)):
            check_trace_pair(path, t.meta, args.pair)  # the target must be the one the trace ran
        target = load_pair(args.pair, dtype=trace.meta.get("pair_info", {}).get("dtype")).target
        sides = (target_side(train, target), target_side(trace, target))
    rows, profiled = [], None
    for s in speedups:
        cost = base if s == 1.0 else ScaledDraftCost(base, 1.0 / s)
        heldout, train_replay = (
            TraceReplay(t, cost=cost, width=args.width, max_depth=args.max_depth, cost_features=features)
            for t in (trace, train)
        )
        oracle = make_policy("oracle", source=heldout)  # one per replay: its plans serve every row below
        rows.append({"draft_speedup": s, **_row(heldout, train_replay, oracle, learned if s == 1.0 else None)})
        if s == 1.0:
            profiled = (heldout, oracle)
    info = trace.meta.get("pair_info", {})
    result = {
        "benchmark": "headroom",
        "pair": args.pair,
        "tag": args.tag,
        "device": info.get("device"),
        "dtype": info.get("dtype"),
        "cost_model": cost_model,
        "traces": traces,
        "train_traces": train_traces,
        "n_prompts": trace.n_prompts,
        "width": args.width,
        "max_depth": args.max_depth,
        "policy": args.policy,
        "first_token_acceptance": acceptance_auc(trace, train, sides),
        "rows": rows,
        "by_prompt": by_prompt(profiled[0], rows[0], profiled[1], learned),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    table = Table(title=f"DraftVerify headroom: {args.pair}, width {args.width}, {trace.n_prompts} held-out prompts")
    names = list(rows[0])[1:]
    table.add_column("draft speedup")
    for name in names:
        table.add_column(name)
    for row in rows:
        cells = [
            f"{row[n]['tokens_per_s']:.1f} ({row[n]['fraction_of_oracle']:.0%})" if n in row else "" for n in names
        ]
        table.add_row(f"{row['draft_speedup']:g}x", *cells)
    console.print(table)
    auc = result["first_token_acceptance"]
    console.print(
        f"first draft token: hit rate {auc['hit_rate']:.2f}, AUC of its draft prob {auc['auc']:.3f}, "
        f"of a logistic fit on every draft-side feature {auc['auc_fitted']:.3f}"
    )
    if "auc_fitted_target" in auc:
        console.print(f"the same fit with the target's side too: {auc['auc_fitted_target']:.3f}")
    corr = ", ".join(f"{k} {v:+.2f}" for k, v in result["by_prompt"]["correlation"].items())
    console.print(f"over prompts, correlation of the fraction of the oracle with the static accepted length: {corr}")
    hind = result["by_prompt"]["confidence_expected_per_prompt_hindsight"]
    console.print(
        f"confidence+expected, threshold per prompt in hindsight: {hind['tokens_per_s']:.1f} tok/s "
        f"({hind['fraction_of_oracle']:.1%} of the oracle)"
    )
    return result
