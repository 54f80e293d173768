"""Train the draft of the default pair by distillation from its target, on CPU, in minutes.

Speculative decoding accepts a draft token when it equals the target's greedy token, so the
draft is trained on exactly what it will be asked to predict: the target's own greedy answers
to chat prompts. The recipe:

1. Prompts: reasoning-gym problems (several generators, seeded) and instruction-style prompts
   from a small template generator, wrapped in the target's chat template. Held-out prompts
   come from seeds far away from every training seed (reasoning-gym derives item ``i`` from
   ``seed + i``, so nearby seeds give the same problems) and are de-duplicated against training.
2. Corpus: the target answers every prompt greedily (batched, left padding, in bfloat16 where the
   CPU has it natively); we keep the answer tokens and the target's top-k log-probabilities at
   each answer position.
3. Draft: a narrow, shallow ``LlamaForCausalLM`` with the target's vocabulary. Its tied
   embedding starts as the target's embedding projected onto its top principal directions
   (SVD), so the output layer already "speaks" the target's token geometry. At inference its
   output layer scores only a shortlist (``shortlist.py``): the tokens the target ranked top-4
   anywhere in its training answers.
4. Training: cross-entropy on the target's greedy tokens plus soft cross-entropy on its top-k
   distribution at answer positions, and a light next-token loss on the prompt text; softmax
   over the corpus vocabulary only and bf16 autocast (2-3x faster on CPU); AdamW, warm-up then
   cosine decay; checkpoints every few minutes and on interrupt, so a stopped run resumes.
5. Evaluation on held-out prompts: mean accepted length of greedy chain speculative decoding
   for k = 1..8, computed exactly from one teacher-forced draft pass over the target's answer
   (when the draft's first token matches, its next proposal is made from the true prefix), and
   the draft/target per-token forward time.

Everything lives in a build directory beside ``out_dir`` (``<out_dir>-build``): the corpus, the
held-out set and the training checkpoint, so rebuilding never regenerates the corpus.

Measured on the 2-core build CPU (seed 0): with 640 prompts (55k answer tokens, 600 steps) the
draft was data-limited (top-1 agreement 0.42 held-out against 0.79 on its training answers);
with 2634 prompts (219k answer tokens, 1000 steps, about 45 minutes in all) held-out agreement is
0.50 and the mean accepted length at k=4 1.87 (was 1.64). Its main misses are digits and names
the target copies from the prompt, and open-ended instruction answers.
"""

from envs.pairs.distill.build import build_draft, is_complete

__all__ = ["build_draft", "is_complete"]
