"""The ``smollm2-math`` pair: SmolLM2-135M-Instruct with a LoRA adapter, and the bundled SmolLM2
draft, both fine-tuned on GSM8K-format worked solutions of reasoning-gym arithmetic.

Arbitration needs a real pretrained pair whose final answers can be checked, whose target is
right on some but not all items (40-75%) and whose draft is right on some items the target gets
wrong. Untuned, SmolLM2-135M-Instruct solves 15% of 2-3-term chain sums few-shot and the draft
none, so the recipe fine-tunes both, on CPU:

1. Data (``data.py``): reasoning-gym ``chain_sum`` (3-4 terms of 1-2 digits, the ``gsm`` pair's task) items from seeds
   far from every split, questions of the splits' first items removed; the worked solution
   (``a op b = c`` per line, then ``#### N``) is the assistant's turn after the question as the
   user's turn of the chat template.
2. Target (``train.py``): a LoRA adapter (peft) on every projection; answer-token cross-entropy.
3. Draft: the bundled draft, every weight but its tied embedding (its shortlist head reads the
   embedding), the loss's softmax over the shortlist the head scores at run time.
4. Both through the project's resumable loop (``envs.pairs.training``), checkpoints in ``build/``;
   the trained weights alone (adapter, draft layers: small enough to ship) go to ``weights/``,
   and the pair is assembled from them and the two base models (``weights.py``).
5. Accuracy of each model alone on validation and held-out items, into README.md and recipe.json.
"""

from envs.pairs.smollm2_math.build import PAIR, build_math_pair, is_complete

__all__ = ["PAIR", "build_math_pair", "is_complete"]
