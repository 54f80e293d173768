"""The shortlist draft head: same logits on the list, probability 0 off it, saved beside a draft."""

from __future__ import annotations

import pytest
import torch

from envs.pairs.tiny import tiny_random_pair
from envs.specdec import SpeculativeDecoder, shortlist
from envs.specdec.errors import SpecGymError


def test_head_scores_only_the_shortlist() -> None:
    pair = tiny_random_pair(0, dtype=torch.float64, eos=False)
    ids = torch.tensor([3, 7, 40, 41, 200])
    x = torch.tensor([[5, 9, 11, 3]])
    full = pair.draft(input_ids=x).logits
    shortlist.apply(pair.draft, ids)
    short = pair.draft(input_ids=x).logits
    assert short.shape == full.shape
    torch.testing.assert_close(short[..., ids], full[..., ids])
    off = torch.ones(full.shape[-1], dtype=torch.bool)
    off[ids] = False
    assert (short[..., off] == shortlist.OFF_LIST_LOGIT).all()
    assert torch.isfinite(short.log_softmax(-1)).all()  # entropies and log-probs stay finite
    assert pair.draft.get_output_embeddings().weight.shape[0] == pair.vocab_size  # the pair still checks


def test_draft_proposes_only_listed_tokens_and_output_is_the_targets() -> None:
    pair = tiny_random_pair(1, dtype=torch.float64, eos=False)
    dec = SpeculativeDecoder(pair)
    reference = dec.generate_target([1, 2, 3], 40).tokens
    listed = set(range(0, pair.vocab_size, 3))
    shortlist.apply(pair.draft, torch.tensor(sorted(listed)))
    out = dec.generate([1, 2, 3], 40, k=4)
    assert out.tokens == reference
    assert all(set(r.draft_tokens) <= listed for r in out.records)


def test_saved_shortlist_is_applied_on_load(tmp_path) -> None:
    pair = tiny_random_pair(0, dtype=torch.float64, eos=False)
    shortlist.save(torch.tensor([5, 1, 3]), tmp_path, "test")
    shortlist.maybe_apply(pair.draft, tmp_path)
    head = pair.draft.get_output_embeddings()
    assert isinstance(head, shortlist.ShortlistHead) and head.ids.tolist() == [1, 3, 5]
    shortlist.maybe_apply(pair.draft, tmp_path)  # applying twice wraps the original head, not the wrapper
    assert isinstance(pair.draft.get_output_embeddings().full, torch.nn.Linear)


def test_shortlist_adds_no_parameters() -> None:
    pair = tiny_random_pair(0, dtype=torch.float64, eos=False)
    before = sum(p.numel() for p in pair.draft.parameters())
    shortlist.apply(pair.draft, torch.arange(10))
    assert sum(p.numel() for p in pair.draft.parameters()) == before
    pair.draft.to(torch.float32)  # the copied rows follow the model's dtype
    assert pair.draft.get_output_embeddings().rows.dtype == torch.float32


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"ids": [1, 2', r"not valid JSON; truncated\?"),
        ("[1, 2]", r"its 'ids' are not a non-empty list of token ids in 0\.\.256"),
        ('{"ids": [1, 999]}', r"its 'ids' are not a non-empty list"),
        ('{"ids": []}', r"its 'ids' are not a non-empty list"),
    ],
)
def test_a_corrupt_shortlist_names_the_file_and_the_fix(tmp_path, text, why) -> None:
    pair = tiny_random_pair(0, dtype=torch.float64, eos=False)
    (tmp_path / shortlist.FILENAME).write_text(text)
    with pytest.raises(SpecGymError, match=rf"^model directory '.*' has a corrupt '.*/shortlist.json' \({why}"):
        shortlist.maybe_apply(pair.draft, tmp_path)
    assert not isinstance(pair.draft.get_output_embeddings(), shortlist.ShortlistHead)  # left as it was
