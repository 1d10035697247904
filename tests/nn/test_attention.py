import math

import pytest
import torch
from torch import nn

from dhmd_graph.nn import attention
from dhmd_graph.nn.attention import (
    MaskedPooling,
    StackedTransformer,
    attention_blocks,
    attention_mask,
    inverted_dropout,
    length_mask,
    masked_attention,
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


def test_inverted_dropout():
    x = torch.ones(200_000)
    assert inverted_dropout(x, 0.3, training=False) is x
    assert inverted_dropout(x, 0.0, training=True) is x
    torch.manual_seed(0)
    out = inverted_dropout(x, 0.3, training=True)
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1 / 0.7]))
    assert abs(float((out == 0).float().mean()) - 0.3) < 0.005
    x = torch.randn(50, 40, requires_grad=True)
    out = inverted_dropout(x, 0.5, training=True)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() * 2.0)


def dense_attention(query, key, value, blocked):
    """The attention of the definition: (N, H, T_q, D) with a (N, 1, T_q, T_k) mask."""
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    return torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1) @ value


@pytest.mark.parametrize("causal", [True, False])
def test_blocked_attention_equals_dense_attention(monkeypatch, causal):
    torch.manual_seed(0)
    query_lengths, key_lengths = torch.tensor([9, 7, 9]), torch.tensor([4, 11, 11])
    query, key, value = torch.randn(3, 2, 9, 4), torch.randn(3, 2, 11, 4), torch.randn(3, 2, 11, 4)
    blocked = attention_mask(query_lengths, key_lengths, 9, 11, causal).unsqueeze(1)
    expected = dense_attention(query, key, value, blocked)
    (whole,) = attention_blocks(query_lengths, key_lengths, 9, 11, 2, causal)
    assert torch.equal(whole.bias == float("-inf"), blocked) and (whole.bias[~blocked] == 0).all()
    torch.testing.assert_close(masked_attention(query, key, value, [whole]), expected)
    # Blocks of 2 query steps (2 * 3 samples * 2 heads * 11 keys = 132 weights).
    monkeypatch.setattr(attention, "BLOCK_ELEMENTS", 132)
    blocks = attention_blocks(query_lengths, key_lengths, 9, 11, 2, causal)
    assert [(b.start, b.stop) for b in blocks] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]
    if causal:  # a block covers the keys its last query sees in any sample (j*L_q <= i*L_k)
        assert [b.keys for b in blocks] == [2, 5, 8, 11, 11]
    else:
        assert all(b.keys == 11 for b in blocks)
    torch.testing.assert_close(masked_attention(query, key, value, blocks), expected)


def test_blocked_attention_gradient(monkeypatch):
    torch.manual_seed(0)
    query_lengths, key_lengths = torch.tensor([5, 3]), torch.tensor([7, 7])
    inputs = [torch.randn(2, 2, t, 3, dtype=torch.double, requires_grad=True) for t in (5, 7, 7)]
    monkeypatch.setattr(attention, "BLOCK_ELEMENTS", 56)  # blocks of two queries
    blocks = attention_blocks(query_lengths, key_lengths, 5, 7, 2, causal=True)
    assert len(blocks) == 3
    assert torch.autograd.gradcheck(lambda q, k, v: masked_attention(q, k, v, blocks), inputs)
    # With dropout: the gradient of the definition under the same keep masks.
    grad = torch.randn(2, 2, 5, 3, dtype=torch.double)
    torch.manual_seed(1)
    out = masked_attention(*inputs, blocks, dropout=0.4, training=True)
    found = torch.autograd.grad(out, inputs, grad)
    torch.manual_seed(1)
    query, key, value = inputs
    expected_out = []
    for block in blocks:
        scores = query[:, :, block.start:block.stop] @ key[:, :, :block.keys].transpose(-1, -2)
        scores = scores / math.sqrt(3)
        weights = torch.softmax(scores + block.bias, dim=-1)
        keep = (torch.rand(4, *weights.shape[2:], dtype=torch.double) >= 0.4).view(weights.shape)
        expected_out.append(weights * keep / 0.6 @ value[:, :, :block.keys])
    expected_out = torch.cat(expected_out, dim=2)
    torch.testing.assert_close(out, expected_out)
    for a, b in zip(found, torch.autograd.grad(expected_out, inputs, grad), strict=True):
        torch.testing.assert_close(a, b)


def reference_layer(stacked: StackedTransformer, g: int, depth: int) -> nn.Module:
    """Member g's layer `depth` as torch.nn modules with the stacked weights copied in."""
    layer = stacked.layers[depth]
    channels, heads = stacked.channels, stacked.num_heads
    reference = nn.TransformerEncoderLayer(channels, heads, 4 * channels, 0.0,
                                           batch_first=True, norm_first=True)
    with torch.no_grad():
        attention_module = reference.self_attn
        attention_module.in_proj_weight.copy_(layer.in_projection.weight[g])
        attention_module.in_proj_bias.copy_(layer.in_projection.bias[g])
        attention_module.out_proj.weight.copy_(layer.out_projection.weight[g])
        attention_module.out_proj.bias.copy_(layer.out_projection.bias[g])
        for mine, theirs in ((layer.norm_attention, reference.norm1),
                             (layer.norm_feedforward, reference.norm2)):
            theirs.weight.copy_(mine.weight[g])
            theirs.bias.copy_(mine.bias[g])
        for mine, theirs in ((layer.feedforward_in, reference.linear1),
                             (layer.feedforward_out, reference.linear2)):
            theirs.weight.copy_(mine.weight[g])
            theirs.bias.copy_(mine.bias[g])
        if layer.norm_source is not None:
            reference.norm_source = nn.LayerNorm(channels)
            reference.norm_source.weight.copy_(layer.norm_source.weight[g])
            reference.norm_source.bias.copy_(layer.norm_source.bias[g])
    return reference.eval()


def reference_member(stacked, g, x, lengths, source=None, source_lengths=None):
    """What member g computes alone: the pre-LN layers of torch.nn, one after another."""
    heads = stacked.num_heads
    x = scale_and_position(x)
    if source is None:
        mask = attention_mask(lengths, lengths, x.shape[1], x.shape[1], stacked.causal)
    else:
        source = scale_and_position(source)
        mask = attention_mask(lengths, source_lengths, x.shape[1], source.shape[1], stacked.causal)
    mask = mask.repeat_interleave(heads, dim=0)  # (B*H, T, S), True = blocked
    for depth in range(len(stacked.layers)):
        layer = reference_layer(stacked, g, depth)
        if source is None:
            x = layer(x, src_mask=mask)
        else:  # the cross-modal block: the source has its own LayerNorm
            s = layer.norm_source(source)
            x = x + layer.self_attn(layer.norm1(x), s, s, attn_mask=mask, need_weights=False)[0]
            x = x + layer._ff_block(layer.norm2(x))
    norm = stacked.norm
    return torch.nn.functional.layer_norm(x, x.shape[-1:], norm.weight[g], norm.bias[g])


def _trained(stacked: StackedTransformer) -> StackedTransformer:
    """Distinct LayerNorm weights per member, so a mixed-up member would show."""
    with torch.no_grad():
        for name, parameter in stacked.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return stacked.eval()


@pytest.mark.parametrize("causal", [True, False])
def test_stacked_self_attention_equals_each_member_alone(causal):
    torch.manual_seed(0)
    stacked = _trained(StackedTransformer(3, 8, 2, 2, causal=causal))
    # Members of 6, 5 and 2 steps: the first two run together, padded, the last alone.
    inputs = [torch.randn(2, 6, 8), torch.randn(2, 5, 8), torch.randn(2, 2, 8)]
    lengths = [torch.tensor([6, 3]), torch.tensor([5, 5]), torch.tensor([1, 2])]
    with torch.no_grad():
        outputs = stacked(inputs, lengths)
        for g, (x, length, out) in enumerate(zip(inputs, lengths, outputs, strict=True)):
            assert out.shape == x.shape
            expected = reference_member(stacked, g, x, length)
            valid = length_mask(length, x.shape[1])
            torch.testing.assert_close(out[valid], expected[valid], atol=1e-5, rtol=1e-5)


def test_stacked_cross_modal_equals_each_pair_alone(monkeypatch):
    torch.manual_seed(0)
    stacked = _trained(StackedTransformer(4, 8, 2, 2, cross=True))
    shapes = [(3, 7), (3, 6), (7, 3), (6, 6)]  # (target steps, source steps) per pair
    targets = [torch.randn(2, t, 8) for t, _ in shapes]
    sources = [torch.randn(2, s, 8) for _, s in shapes]
    target_lengths = [torch.tensor([t, max(t - 2, 1)]) for t, _ in shapes]
    source_lengths = [torch.tensor([s - 1, s]) for _, s in shapes]
    with torch.no_grad():
        outputs = stacked(targets, target_lengths, sources, source_lengths)
        monkeypatch.setattr(attention, "BLOCK_ELEMENTS", 50)  # blocks of one or two queries
        blocked = stacked(targets, target_lengths, sources, source_lengths)
        for g in range(4):
            expected = reference_member(stacked, g, targets[g], target_lengths[g], sources[g],
                                        source_lengths[g])
            valid = length_mask(target_lengths[g], shapes[g][0])
            torch.testing.assert_close(outputs[g][valid], expected[valid], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(blocked[g][valid], expected[valid], atol=1e-5, rtol=1e-5)
    assert repr(stacked) == "StackedTransformer(4, 8, heads=2, layers=2, cross=True, causal=True)"
    with pytest.raises(ValueError, match="sources"):
        stacked(targets, target_lengths)


def test_length_groups():
    # MOSEI unaligned: text 46, audio 500, vision 498 steps.
    assert attention._length_groups([(46, 46), (500, 500), (498, 498)]) == [[1, 2], [0]]
    pairs = [(46, 500), (46, 498), (500, 46), (500, 498), (498, 46), (498, 500)]
    assert attention._length_groups(pairs) == [[3, 5], [2, 4], [0, 1]]
    assert attention._length_groups([(46,), (50,), (48,)]) == [[0, 1, 2]]  # MOSEI aligned


@pytest.mark.parametrize("causal", [True, False])
def test_self_attention_valid_steps_ignore_padding(causal):
    torch.manual_seed(0)
    encoder = StackedTransformer(1, 8, 2, 2, causal=causal).eval()
    x = torch.randn(2, 5, 8)
    lengths = [torch.tensor([5, 2])]
    (out,) = encoder([x], lengths)
    longer = torch.cat([x, torch.randn(2, 3, 8) * 50], dim=1)
    longer[1, 2:] = torch.randn(6, 8) * 50
    (changed,) = encoder([longer], lengths)
    torch.testing.assert_close(changed[0, :5], out[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(changed[1, :2], out[1, :2], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(encoder([x], [torch.tensor([1, 1])])[0]).all()


def test_self_attention_causal_step_ignores_the_future():
    torch.manual_seed(0)
    encoder = StackedTransformer(1, 8, 2, 2).eval()
    x = torch.randn(1, 6, 8)
    lengths = [torch.tensor([6])]
    future = x.clone()
    future[0, 3:] = torch.randn(3, 8)
    (out,), (changed,) = encoder([x], lengths), encoder([future], lengths)
    torch.testing.assert_close(out[0, :3], changed[0, :3])
    assert not torch.allclose(out[0, 3:], changed[0, 3:])


def test_cross_modal_causal_in_relative_time():
    torch.manual_seed(0)
    transformer = StackedTransformer(1, 8, 2, 2, cross=True).eval()
    target, source = torch.randn(2, 3, 8), torch.randn(2, 7, 8)
    lengths, source_lengths = [torch.tensor([3, 2])], [torch.tensor([7, 4])]
    (out,) = transformer([target], lengths, [source], source_lengths)
    # Query 0 of 3 sees source steps j with 3 j <= 0 only.
    late = source.clone()
    late[0, 1:] = torch.randn(6, 8)
    (moved,) = transformer([target], lengths, [late], source_lengths)
    torch.testing.assert_close(moved[0, 0], out[0, 0])
    assert not torch.allclose(moved[0, 2], out[0, 2])


def test_stacked_training_mode_backward_reaches_every_member():
    torch.manual_seed(0)
    encoder = StackedTransformer(3, 8, 2, 1, embed_dropout=0.2)
    inputs = [torch.randn(3, t, 8, requires_grad=True) for t in (4, 4, 9)]
    lengths = [torch.tensor([4, 2, 1]), torch.tensor([4, 4, 4]), torch.tensor([9, 1, 5])]
    sum(out.sum() for out in encoder(inputs, lengths)).backward()
    assert all(torch.isfinite(x.grad).all() for x in inputs)
    for name, parameter in encoder.named_parameters():
        assert (parameter.grad.flatten(1).abs().sum(1) > 0).all(), name  # every member
    torch.manual_seed(1)
    first = encoder(inputs, lengths)
    torch.manual_seed(1)
    torch.testing.assert_close(encoder(inputs, lengths), first)  # same seed, same dropout
