import pytest
import torch

from dhmd_graph.nn.masking import (
    CAUSAL_ALIGNMENTS,
    POOLINGS,
    MaskedPooling,
    attention_mask,
    length_mask,
    masked_mean,
)


def test_length_mask_and_masked_mean():
    lengths = torch.tensor([3, 1, 0])
    mask = length_mask(lengths, 4)
    assert mask.tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]
    x = torch.arange(24.0).view(3, 4, 2)
    mean = masked_mean(x, mask)
    torch.testing.assert_close(mean[0], x[0, :3].mean(0))
    torch.testing.assert_close(mean[1], x[1, 0])
    assert mean[2].eq(0).all()  # no valid step: zeros, not NaN


@pytest.mark.parametrize("mode", ["mean", "attention"])
def test_pooling_ignores_padded_steps(mode):
    torch.manual_seed(0)
    pool = MaskedPooling(5, mode)
    x = torch.randn(2, 6, 5)
    mask = length_mask(torch.tensor([4, 1]), 6)
    changed = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x) * 1e3)
    torch.testing.assert_close(pool(x, mask), pool(changed, mask))
    torch.testing.assert_close(pool(x, mask)[1], x[1, 0])  # one valid step
    assert repr(pool) == f"MaskedPooling(5, mode='{mode}')"


def test_pooling_rejects_unknown_mode():
    with pytest.raises(ValueError, match="MaskedPooling"):
        MaskedPooling(3, "sum")


def test_attention_mask_equal_lengths_is_lower_triangular_within_length():
    lengths = torch.tensor([4, 2])
    blocked = attention_mask(lengths, lengths, 4, 4, causal=True)
    assert blocked.shape == (2, 4, 4)
    allowed = ~blocked
    assert torch.equal(allowed[0], torch.ones(4, 4, dtype=torch.bool).tril())
    assert allowed[1, :, 2:].sum() == 0  # padded keys
    assert torch.equal(allowed[1, :2, :2], torch.ones(2, 2, dtype=torch.bool).tril())
    # Any leading shape, and a block of queries is a slice of the full mask.
    stacked = attention_mask(lengths.view(2, 1), lengths.view(2, 1), 4, 4, causal=True)
    assert torch.equal(stacked[:, 0], blocked)
    assert torch.equal(attention_mask(lengths, lengths, 2, 3, True, query_offset=1),
                       blocked[:, 1:3, :3])


def test_attention_mask_causal_in_relative_time():
    blocked = attention_mask(torch.tensor([2]), torch.tensor([6]), 2, 8, causal=True)
    allowed = ~blocked[0]
    # query 0 of 2 sees key 0 of 6; query 1 (half-way) sees keys 0..3 (j * 2 <= 1 * 6).
    assert allowed[0].nonzero().flatten().tolist() == [0]
    assert allowed[1].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert allowed[:, 0].all()  # key 0 always visible: no fully-masked row
    unmasked = ~attention_mask(torch.tensor([2]), torch.tensor([6]), 2, 8, causal=False)[0]
    assert unmasked.sum(1).tolist() == [6, 6]


def test_last_step_readout():
    x = torch.randn(3, 5, 2)
    mask = length_mask(torch.tensor([5, 2, 1]), 5)
    pooled = MaskedPooling(2, "last")(x, mask)
    torch.testing.assert_close(pooled, torch.stack([x[0, 4], x[1, 1], x[2, 0]]))
    # Where every step is valid (no length masks, as in the reference) it is h[-1].
    torch.testing.assert_close(MaskedPooling(2, "last")(x, torch.ones(3, 5, dtype=torch.bool)),
                               x[:, -1])


def test_choice_lists_are_their_literals():
    assert POOLINGS == ("mean", "attention", "last")
    assert CAUSAL_ALIGNMENTS == ("relative", "shifted")
    for mode in POOLINGS:  # every listed value is implemented
        x, mask = torch.randn(2, 3, 4), length_mask(torch.tensor([3, 1]), 3)
        assert MaskedPooling(4, mode)(x, mask).shape == (2, 4)
    lengths = torch.tensor([3, 2])
    for alignment in CAUSAL_ALIGNMENTS:
        assert attention_mask(lengths, lengths, 3, 3, True, alignment=alignment).shape == (2, 3, 3)
