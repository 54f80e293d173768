"""PNG plots of a run: learning curves, DraftVerify throughput by policy, Arbitration accuracy vs speed.

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
