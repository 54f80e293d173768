"""Warm start by behaviour cloning: an Arbitration policy first imitates the lookahead oracle.

Before PPO, the policy network is fitted by cross-entropy to the oracle's choice (keep the
draft's token exactly where that branch, continued by the target, scores better) at every node of
the training items' branch record. Written here because SB3 has no behaviour cloning; the
``imitation`` package does, but for one supervised loop over a fixed table it would add a
dependency and its own rollout machinery.
"""

from __future__ import annotations

import numpy as np
import torch
from sb3_contrib import MaskablePPO

from agents.arbiters import oracle_labels
from envs.specdec.branches import BranchTree


def clone_oracle(model: MaskablePPO, tree: BranchTree, epochs: int, batch_size: int = 256, seed: int = 0) -> dict:
    """Fit ``model``'s policy to the oracle's choices on ``tree``; the fit's figures."""
    nodes, labels = oracle_labels(tree)
    obs = torch.as_tensor(tree.node_obs[nodes], device=model.device)
    actions = torch.as_tensor(labels.astype(np.int64), device=model.device)
    optimizer = torch.optim.Adam(
        model.policy.parameters(), lr=model.learning_rate if isinstance(model.learning_rate, float) else 3e-4
    )
    gen = torch.Generator().manual_seed(seed)
    model.policy.set_training_mode(True)
    for _ in range(epochs):
        for idx in torch.randperm(len(nodes), generator=gen).split(batch_size):
            _, log_prob, _ = model.policy.evaluate_actions(obs[idx], actions[idx])
            loss = -log_prob.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.policy.set_training_mode(False)
    with torch.no_grad():
        predicted = model.policy.get_distribution(obs).distribution.probs.argmax(-1)
    return {
        "bc_nodes": len(nodes),
        "bc_epochs": epochs,
        "bc_oracle_keeps_draft": float(labels.mean()),
        "bc_train_agreement": float((predicted == actions).float().mean()),
    }
