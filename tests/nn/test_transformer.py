import math

import pytest
import torch
from torch import nn

from dhmd_graph.nn import masking, transformer
from dhmd_graph.nn.dropout import dropout_keep
from dhmd_graph.nn.masking import attention_blocks, attention_mask, length_mask
from dhmd_graph.nn.transformer import (
    StackedTransformer,
    masked_attention,
    position_encoding,
    scale_and_position,
)


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
    monkeypatch.setattr(masking, "BLOCK_ELEMENTS", 132)
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
    monkeypatch.setattr(masking, "BLOCK_ELEMENTS", 56)  # blocks of two queries
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
        keep = dropout_keep(torch.empty(4, *weights.shape[2:], dtype=torch.double), 0.4)
        expected_out.append(weights * keep.view(weights.shape) @ value[:, :, :block.keys])
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
        monkeypatch.setattr(masking, "BLOCK_ELEMENTS", 50)  # blocks of one or two queries
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
    assert transformer._length_groups([(46, 46), (500, 500), (498, 498)]) == [[1, 2], [0]]
    pairs = [(46, 500), (46, 498), (500, 46), (500, 498), (498, 46), (498, 500)]
    assert transformer._length_groups(pairs) == [[3, 5], [2, 4], [0, 1]]
    assert transformer._length_groups([(46,), (50,), (48,)]) == [[0, 1, 2]]  # MOSEI aligned


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


# The switches of the DMD reference mode, each against a plain re-derivation of the
# reference's formula (trains/subNets/transformers_encoder/ in mdswyz/DMD).


def fairseq_table(x: torch.Tensor) -> torch.Tensor:
    """The reference's positions, written out: step t of a sequence is at position t + 1
    unless its first input channel is exactly 0 (then position 0, an all-zero row); row p
    holds sin(p f_k) in channels k < C // 2 and cos(p f_k) in channels C // 2 + k, with
    f_k = exp(-k ln(10000) / (C // 2 - 1)), and a zero last channel when C is odd."""
    *batch, steps, channels = x.shape
    half = channels // 2
    out = torch.zeros(*batch, steps, channels, dtype=torch.double)
    for index in torch.cartesian_prod(*[torch.arange(n) for n in (*batch, steps)]).tolist():
        *b, t = index
        p = 0 if float(x[(*b, t, 0)]) == 0.0 else t + 1
        if p == 0:
            continue
        for k in range(half):
            angle = p * math.exp(-k * math.log(10000.0) / (half - 1))
            out[(*b, t, k)] = math.sin(angle)
            out[(*b, t, half + k)] = math.cos(angle)
    return out


@pytest.mark.parametrize("channels", [6, 7])
def test_fairseq_position_encoding_is_the_reference_table(channels):
    torch.manual_seed(0)
    x = torch.randn(2, 5, channels, dtype=torch.double)
    x[0, 3:] = 0.0  # padding
    x[1, 1, 0] = 0.0  # only the first channel decides: this step counts as padding too
    x[1, 2, 1:] = 0.0  # and this one does not
    expected = fairseq_table(x)
    torch.testing.assert_close(position_encoding(x, "fairseq"), expected)
    assert expected[0, 3:].eq(0).all() and expected[1, 1].eq(0).all()
    assert expected[1, 2].ne(0).any()
    torch.testing.assert_close(scale_and_position(x, "fairseq"),
                               math.sqrt(channels) * x + expected)
    # Ours encodes every step, padding or not, from position 0.
    ours = position_encoding(x, "interleaved")
    assert ours.shape == (5, channels) and not torch.allclose(ours.expand_as(x), expected)
    with pytest.raises(ValueError, match="at least 4 channels"):
        position_encoding(x[..., :3], "fairseq")
    with pytest.raises(ValueError, match="kind must be one of"):
        position_encoding(x, "learned")


def shifted_mask(query_steps: int, key_steps: int) -> torch.Tensor:
    """The reference's buffered_future_mask: -inf above the diagonal 1 + |T_k - T_q|."""
    ones = torch.ones(query_steps, key_steps)
    return ones.triu(1 + abs(key_steps - query_steps)).bool()  # True = blocked


@pytest.mark.parametrize(("query_steps", "key_steps"), [(5, 5), (3, 8), (8, 3), (6, 9)])
def test_shifted_causal_mask_is_the_references(monkeypatch, query_steps, key_steps):
    lengths_q = torch.tensor([query_steps] * 2)
    lengths_k = torch.tensor([key_steps] * 2)
    blocked = attention_mask(lengths_q, lengths_k, query_steps, key_steps, True,
                             alignment="shifted")
    assert torch.equal(blocked, shifted_mask(query_steps, key_steps).expand(2, -1, -1))
    relative = attention_mask(lengths_q, lengths_k, query_steps, key_steps, True)
    assert torch.equal(relative, blocked) == (query_steps == key_steps)
    # Blocked attention (blocks of one or two queries, each over the keys it may reach)
    # equals the dense attention under the reference's mask.
    torch.manual_seed(0)
    query = torch.randn(2, 2, query_steps, 4)
    key, value = torch.randn(2, 2, key_steps, 4), torch.randn(2, 2, key_steps, 4)
    expected = dense_attention(query, key, value, shifted_mask(query_steps, key_steps))
    monkeypatch.setattr(masking, "BLOCK_ELEMENTS", 2 * 2 * 2 * key_steps)
    blocks = attention_blocks(lengths_q, lengths_k, query_steps, key_steps, 2, True,
                              alignment="shifted")
    assert len(blocks) == (query_steps + 1) // 2
    torch.testing.assert_close(masked_attention(query, key, value, blocks), expected)
    with pytest.raises(ValueError, match="alignment must be one of"):
        attention_mask(lengths_q, lengths_k, 2, 2, True, alignment="left")


def reference_dmd_member(stacked, g, x, source=None):
    """Member g as the reference computes it, on sequences without padding: the fairseq
    table, the shifted causal mask, and (cross-modal) the query's LayerNorm applied to the
    key/value input as well."""
    heads = stacked.num_heads
    embed = lambda s: math.sqrt(s.shape[-1]) * s + fairseq_table(s).to(s.dtype)  # noqa: E731
    keys = x if source is None else source
    mask = shifted_mask(x.shape[1], keys.shape[1])  # (T, S), True = blocked
    x = embed(x)
    source = None if source is None else embed(source)
    for depth in range(len(stacked.layers)):
        layer = reference_layer(stacked, g, depth)
        h = layer.norm1(x)
        kv = h if source is None else layer.norm1(source)  # one LayerNorm for both
        x = x + layer.self_attn(h, kv, kv, attn_mask=mask, need_weights=False)[0]
        x = x + layer._ff_block(layer.norm2(x))
    assert heads == layer.self_attn.num_heads
    norm = stacked.norm
    return torch.nn.functional.layer_norm(x, x.shape[-1:], norm.weight[g], norm.bias[g])


def test_stacked_transformer_in_the_reference_mode_equals_the_reference():
    torch.manual_seed(0)
    options = {"causal_alignment": "shifted", "positional_encoding": "fairseq"}
    cross = _trained(StackedTransformer(3, 8, 2, 2, cross=True, shared_norm=True, **options))
    assert all(layer.norm_source is None for layer in cross.layers)  # one LayerNorm
    shapes = [(5, 9), (9, 5), (5, 5)]  # unequal lengths: the shifted mask matters
    targets = [torch.randn(2, t, 8) for t, _ in shapes]
    sources = [torch.randn(2, s, 8) for _, s in shapes]
    targets[0][:, 3:] = 0.0  # zero steps: the fairseq padding rule matters
    sources[1][1, 4:] = 0.0
    full = [torch.full((2,), x.shape[1]) for x in targets]
    full_sources = [torch.full((2,), x.shape[1]) for x in sources]
    self_attention = _trained(StackedTransformer(2, 8, 2, 2, **options))
    with torch.no_grad():
        out = cross(targets, full, sources, full_sources)
        for g in range(3):
            expected = reference_dmd_member(cross, g, targets[g], sources[g])
            torch.testing.assert_close(out[g], expected, atol=1e-5, rtol=1e-5)
        out = self_attention(targets[:2], full[:2])
        for g in range(2):
            expected = reference_dmd_member(self_attention, g, targets[g])
            torch.testing.assert_close(out[g], expected, atol=1e-5, rtol=1e-5)
        # Each switch matters: ours (separate LayerNorm, relative mask, interleaved
        # positions) gives another result with the same weights.
        for change in ({"causal_alignment": "relative"}, {"positional_encoding": "interleaved"}):
            other = StackedTransformer(3, 8, 2, 2, cross=True, shared_norm=True,
                                       **(options | change)).eval()
            other.load_state_dict(cross.state_dict())
            assert not torch.allclose(other(targets, full, sources, full_sources)[0],
                                      cross(targets, full, sources, full_sources)[0])
        separate = StackedTransformer(3, 8, 2, 2, cross=True, **options).eval()
        separate.load_state_dict(cross.state_dict(), strict=False)
        for layer in separate.layers:
            layer.norm_source.weight.fill_(1.0)
            layer.norm_source.bias.zero_()
        assert not torch.allclose(separate(targets, full, sources, full_sources)[0],
                                  cross(targets, full, sources, full_sources)[0])


def test_attention_dropout_per_sequence():
    torch.manual_seed(0)
    query, key, value = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 6, 5), torch.randn(3, 2, 6, 5)
    lengths_q, lengths_k = torch.tensor([4, 4, 4]), torch.tensor([6, 6, 6])
    (block,) = attention_blocks(lengths_q, lengths_k, 4, 6, 2, causal=True)
    rates = torch.tensor([0.0, 0.5, 0.9])  # one per sequence, as per source modality
    torch.manual_seed(1)
    out = masked_attention(query, key, value, [block], dropout=rates, training=True)
    torch.manual_seed(1)
    weights = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(5) + block.bias, dim=-1)
    # The same draws, laid out (N H, T_q, T_k) with one rate per row of weights.
    keep = dropout_keep(torch.empty(6, 4, 6), rates.repeat_interleave(2).view(6, 1, 1))
    keep = keep.view(3, 2, 4, 6)  # (N, H, T_q, T_k)
    torch.testing.assert_close(out, (weights * keep) @ value)
    torch.testing.assert_close(out[0], (weights @ value)[0])  # rate 0: no dropout
    assert not torch.allclose(out[2], (weights @ value)[2])


def test_stacked_transformer_attention_dropout_per_member():
    torch.manual_seed(0)
    encoder = StackedTransformer(2, 8, 2, 1, dropout=0.0, attention_dropout=[0.0, 0.6])
    assert encoder.attention_dropout == [0.0, 0.6]
    inputs, lengths = [torch.randn(2, 5, 8)] * 2, [torch.tensor([5, 3])] * 2
    with torch.no_grad():
        trained, evaluated = encoder(inputs, lengths), encoder.eval()(inputs, lengths)
    torch.testing.assert_close(trained[0], evaluated[0])  # member 0 keeps every weight
    assert not torch.allclose(trained[1], evaluated[1])
    with pytest.raises(ValueError, match="one per member"):
        StackedTransformer(2, 8, 2, 1, attention_dropout=[0.1, 0.2, 0.3])
