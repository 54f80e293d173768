"""PNG plots of a run: learning curves, DraftVerify throughput by policy (and by category) and action
histograms, Arbitration accuracy vs speed.

Each function reads files a run already wrote (SB3 ``evaluations.npz``, the evaluation JSON) and
returns the PNG path, so the same figures can be rebuilt from any run directory.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(run_dir: Path, out: Path) -> Path | None:
    """Mean evaluation return against timesteps, one line per trained stage."""
    files = sorted((Path(run_dir) / "eval").glob("*/evaluations.npz"))
    if not files:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for f in files:
        data = np.load(f)
        returns = data["results"]
        mean, std = returns.mean(axis=1), returns.std(axis=1)
        ax.plot(data["timesteps"], mean, marker="o", label=f.parent.name)
        ax.fill_between(data["timesteps"], mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("evaluation return (mean ± sd over episodes)")
    ax.set_title(f"learning curves: {Path(run_dir).name.split('__')[0]}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def draft_verify_policies(result: dict, out: Path) -> Path:
    """Tokens/s (cost model) of static k against k, with learned, oracle and dynamic baselines as lines."""
    pol = result["policies"]
    ks = sorted(int(n.removeprefix("static_k")) for n in pol if n.startswith("static_k"))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [pol[f"static_k{k}"]["tokens_per_s"] for k in ks], marker="o", color="black", label="static k")
    styles = {"learned": ("tab:red", "-"), "oracle": ("tab:green", "--"), "target_only": ("gray", ":")}
    for name, row in pol.items():
        if name.startswith("static_k"):
            continue
        color, line = styles.get(name, (None, "-."))
        width = 2 if name == "learned" else 1
        ax.axhline(row["tokens_per_s"], color=color, linestyle=line, label=name, linewidth=width)
    ax.set_xlabel("static draft length k")
    ax.set_ylabel("tokens/s under the cost model")
    ax.set_title(f"DraftVerify, {result['pair']}, {result['n_prompts']} held-out prompts")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def action_histograms(result: dict, out: Path) -> Path:
    """Share of cycles at each draft depth and each verification size: the learned policy beside
    the best rule, the best static k and the oracle (one bar: a policy collapsed to a constant)."""
    pol = result["policies"]
    names = [n for n in ("learned", result["best_rule"], f"static_k{result['best_static_k']}", "oracle") if n in pol]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, action, label in zip(axes, ("depth", "verify_size"), ("draft depth", "nodes verified"), strict=True):
        values = sorted({int(v) for n in names for v in pol[n]["actions"][action]})
        x = np.arange(len(values))
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            counts = pol[name]["actions"][action]
            total = sum(counts.values()) or 1
            ax.bar(x + j * width, [counts.get(str(v), 0) / total for v in values], width, label=name)
        ax.set_xticks(x + 0.4 - width / 2, [str(v) for v in values], fontsize=7)
        ax.set_xlabel(f"{label} per cycle")
        ax.set_ylabel("share of cycles")
        ax.grid(alpha=0.3, axis="y")
    share = result["learned_departure_from_best_rule"]["all"]
    note = f"; learned departs from {result['best_rule']} in {share:.0%} of decisions" if share is not None else ""
    fig.suptitle(f"DraftVerify actions, {result['pair']}, {result['n_prompts']} prompts{note}", fontsize=9)
    axes[0].legend(fontsize=7)
    return _save(fig, out)


def per_category(result: dict, out: Path) -> Path:
    """Tokens/s by category (cost model): learned, the best static k, the best rule and the oracle."""
    cats = result["per_category"]
    names = ["learned", f"static_k{result['best_static_k']}", result["best_rule"], "oracle", "target_only"]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(cats)), 4))
    x = np.arange(len(cats))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        ax.bar(x + j * width, [cats[c][name]["tokens_per_s"] for c in cats], width, label=name)
    labels = [f"{c}\n(n={result['categories'][c]['n_prompts']})" for c in cats]
    ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=7)
    ax.set_ylabel("tokens/s under the cost model")
    ax.set_title(f"DraftVerify by category, {result['pair']}, {result['n_prompts']} prompts")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, out)


def evaluation_plots(result: dict, out: Path) -> list[Path]:
    """The DraftVerify evaluation's figures beside its JSON ``out``: ``<stem>_actions.png`` and,
    with categories, ``<stem>_categories.png``."""
    out = Path(out)
    pngs = [action_histograms(result, out.with_name(f"{out.stem}_actions.png"))]
    if "per_category" in result:
        pngs.append(per_category(result, out.with_name(f"{out.stem}_categories.png")))
    return pngs


def arbitration_tradeoff(result: dict, out: Path) -> Path:
    """Accuracy (95% CI) against mean accepted length, one point per policy."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in result["policies"].items():
        lo, hi = row["accuracy_ci95"]
        acc = row["accuracy"]
        ax.errorbar(
            row["mean_accepted_length"],
            acc,
            yerr=[[acc - lo], [hi - acc]],
            fmt="o",
            capsize=3,
            label=f"{name} (n={row['n_items']})" if name == "oracle" else name,
        )
    ax.set_xlabel("mean accepted length (tokens per target forward)")
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_title(f"Arbitration, {result['pair']}, {result['task']}, {result['n_items']} held-out items")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def transfer_matrix(result: dict, out: Path) -> Path:
    """Fraction of the oracle by test profile (unseen ones marked) and policy: the transfer benchmark."""
    names = ("randomized", "specialist", "best_static", "best_rule")
    profiles = list(result["policies"])
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(profiles)), 4))
    width = 0.8 / len(names)
    x = np.arange(len(profiles))
    for i, name in enumerate(names):
        rows = [result["policies"][p][name] for p in profiles]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, [r["fraction_of_oracle"] for r in rows], width, label=name)
    labels = [p + ("\n(unseen)" if result["profiles"][p]["unseen"] else "") for p in profiles]
    ax.set_xticks(x, labels, fontsize=7)
    lows = [result["policies"][p][n]["fraction_of_oracle"] for p in profiles for n in names]
    ax.set_ylim(max(0.0, min(lows) - 0.1), 1.0)
    ax.set_ylabel("fraction of the oracle (held-out, cost model)")
    ax.set_title(f"DraftVerify transfer: {result['pair']}, randomised under {result['family']!r}")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
