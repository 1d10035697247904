import math

import pytest
import torch

from dhmd_graph.nn.attention import (
    CrossModalTransformer,
    MaskedPooling,
    SelfAttentionEncoder,
    attention_mask,
    length_mask,
    masked_mean,
    scale_and_position,
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
    blocked = attention_mask(lengths, lengths, 4, 4, num_heads=3, causal=True)
    assert blocked.shape == (6, 4, 4)
    allowed = ~blocked[::3]  # one head per sample
    assert torch.equal(allowed[0], torch.ones(4, 4, dtype=torch.bool).tril())
    assert allowed[1, :, 2:].sum() == 0  # padded keys
    assert torch.equal(allowed[1, :2, :2], torch.ones(2, 2, dtype=torch.bool).tril())
    assert torch.equal(blocked[0], blocked[2])  # the same for every head


def test_attention_mask_causal_in_relative_time():
    blocked = attention_mask(torch.tensor([2]), torch.tensor([6]), 2, 8, num_heads=1, causal=True)
    allowed = ~blocked[0]
    # query 0 of 2 sees key 0 of 6; query 1 (half-way) sees keys 0..3 (j * 2 <= 1 * 6).
    assert allowed[0].nonzero().flatten().tolist() == [0]
    assert allowed[1].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert allowed[:, 0].all()  # key 0 always visible: no fully-masked row
    unmasked = ~attention_mask(torch.tensor([2]), torch.tensor([6]), 2, 8, 1, causal=False)[0]
    assert unmasked.sum(1).tolist() == [6, 6]


def test_scale_and_position():
    x = torch.zeros(1, 3, 4)
    encoding = scale_and_position(x)[0]
    torch.testing.assert_close(encoding[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(encoding[2, :2], torch.tensor([math.sin(2.0), math.cos(2.0)]))
    torch.testing.assert_close(encoding[1, 2:], torch.tensor([math.sin(0.01), math.cos(0.01)]))
    ones = scale_and_position(torch.ones(1, 3, 4))
    torch.testing.assert_close(ones - scale_and_position(x), torch.full((1, 3, 4), 2.0))
    assert scale_and_position(torch.zeros(1, 2, 5)).shape == (1, 2, 5)  # odd width


def _encoder(causal: bool) -> SelfAttentionEncoder:
    torch.manual_seed(0)
    return SelfAttentionEncoder(8, 2, 2, dropout=0.1, attention_dropout=0.1, causal=causal).eval()


@pytest.mark.parametrize("causal", [True, False])
def test_self_attention_valid_steps_ignore_padding(causal):
    encoder = _encoder(causal)
    x = torch.randn(2, 5, 8)
    lengths = torch.tensor([5, 2])
    out = encoder(x, lengths)
    longer = torch.cat([x, torch.randn(2, 3, 8) * 50], dim=1)
    longer[1, 2:] = torch.randn(6, 8) * 50
    changed = encoder(longer, lengths)
    torch.testing.assert_close(changed[0, :5], out[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(changed[1, :2], out[1, :2], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(encoder(x, torch.tensor([1, 1]))).all()


def test_self_attention_causal_step_ignores_the_future():
    encoder = _encoder(causal=True)
    x = torch.randn(1, 6, 8)
    lengths = torch.tensor([6])
    future = x.clone()
    future[0, 3:] = torch.randn(3, 8)
    out, changed = encoder(x, lengths), encoder(future, lengths)
    torch.testing.assert_close(out[0, :3], changed[0, :3])
    assert not torch.allclose(out[0, 3:], changed[0, 3:])
    assert "causal=True" in repr(encoder)


def test_self_attention_training_mode_backward():
    encoder = SelfAttentionEncoder(8, 2, 1, embed_dropout=0.2)
    x = torch.randn(3, 4, 8, requires_grad=True)
    encoder(x, torch.tensor([4, 2, 1])).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert encoder.encoder.layers[0].self_attn.dropout == 0.1


def test_cross_modal_transformer():
    torch.manual_seed(0)
    transformer = CrossModalTransformer(8, 2, 2, causal=True).eval()
    target, source = torch.randn(2, 3, 8), torch.randn(2, 7, 8)
    target_lengths, source_lengths = torch.tensor([3, 2]), torch.tensor([7, 4])
    out = transformer(target, source, target_lengths, source_lengths)
    assert out.shape == (2, 3, 8)
    # Padding of either input changes no valid output.
    padded_source = torch.cat([source, torch.randn(2, 4, 8) * 50], dim=1)
    padded_source[1, 4:] = torch.randn(7, 8) * 50
    padded_target = torch.cat([target, torch.randn(2, 2, 8) * 50], dim=1)
    padded_target[1, 2:] = torch.randn(3, 8) * 50
    changed = transformer(padded_target, padded_source, target_lengths, source_lengths)
    torch.testing.assert_close(changed[0, :3], out[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(changed[1, :2], out[1, :2], atol=1e-5, rtol=1e-5)
    # Causal in relative time: query 0 of 3 sees source steps j with 3 j <= 0 only.
    late = source.clone()
    late[0, 1:] = torch.randn(6, 8)
    moved = transformer(target, late, target_lengths, source_lengths)
    torch.testing.assert_close(moved[0, 0], out[0, 0])
    assert not torch.allclose(moved[0, 2], out[0, 2])
    assert repr(transformer) == "CrossModalTransformer(8, heads=2, layers=2, causal=True)"
