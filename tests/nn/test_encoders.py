import pytest
import torch

from dhmd_graph.nn.dropout import dropout_keep
from dhmd_graph.nn.encoders import Decoupling, FlattenHead, ResidualHead, TemporalProjection


def test_projection_is_a_valid_convolution():
    torch.manual_seed(0)
    projection = TemporalProjection(4, 6, kernel_size=3)
    x = torch.randn(2, 7, 4)
    lengths = torch.tensor([7, 5])
    out, out_lengths = projection(x, lengths)
    assert out.shape == (2, 5, 6)
    assert out_lengths.tolist() == [5, 3]
    weight = projection.conv.weight  # (d, d_in, k)
    manual = sum(x[0, t : t + 5] @ weight[:, :, t].t() for t in range(3))
    torch.testing.assert_close(out[0], manual)
    assert projection.conv.bias is None


def test_projection_ignores_padding_and_short_sequences():
    torch.manual_seed(0)
    projection = TemporalProjection(3, 5, kernel_size=4)
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 4, 2])  # the last is shorter than the kernel
    out, out_lengths = projection(x, lengths)
    assert out_lengths.tolist() == [3, 1, 1]
    changed = x.clone()
    changed[1, 4:] = 100.0
    changed[2, 2:] = -100.0
    torch.testing.assert_close(projection(changed, lengths)[0], out)
    # A batch shorter than the kernel is padded to one output step.
    short, short_lengths = projection(x[2:, :2], lengths[2:])
    assert short.shape == (1, 1, 5) and short_lengths.tolist() == [1]
    torch.testing.assert_close(short[0, 0], out[2, 0])


def test_projection_of_token_ids():
    torch.manual_seed(0)
    projection = TemporalProjection(None, 5, kernel_size=2, vocab_size=10, embedding_dim=3)
    ids = torch.tensor([[3, 4, 5, 0], [7, 1, 0, 0]])
    out, out_lengths = projection(ids, torch.tensor([3, 2]))
    assert out.shape == (2, 3, 5) and out_lengths.tolist() == [2, 1]
    embedded = projection.embedding(ids[:1, :3])
    expected, _ = TemporalProjection(3, 5, kernel_size=2).requires_grad_(False), None
    expected.conv.weight.copy_(projection.conv.weight)
    torch.testing.assert_close(out[:1, :2], expected(embedded, torch.tensor([3]))[0])
    assert repr(projection) == "TemporalProjection(tokens, 5, kernel_size=2)"
    with pytest.raises(ValueError, match="vocab_size"):
        TemporalProjection(None, 5)


def test_decoupling():
    torch.manual_seed(0)
    decoupling = Decoupling(2, 4)
    projected = [torch.randn(2, 3, 4), torch.randn(2, 5, 4)]
    lengths = [torch.tensor([3, 2]), torch.tensor([5, 5])]
    out = decoupling(projected, lengths)
    shared = decoupling.shared.weight
    for m in range(2):
        torch.testing.assert_close(out.shared[m], projected[m] @ shared.t())  # one E_c
        torch.testing.assert_close(out.private[m], decoupling.private[m](projected[m]))
        torch.testing.assert_close(
            out.reconstructed[m],
            decoupling.decoders[m](torch.cat([out.private[m], out.shared[m]], dim=-1)))
        torch.testing.assert_close(out.private_recoded[m],
                                   decoupling.private[m](out.reconstructed[m]))
    assert out.projected is projected and out.lengths is lengths
    assert not torch.allclose(decoupling.private[0].weight, decoupling.private[1].weight)
    assert repr(decoupling) == "Decoupling(2, 4)"


def test_residual_head():
    head = ResidualHead(6, out_channels=2, dropout=0.5).eval()
    x = torch.randn(4, 6)
    h, y = head(x)
    assert h.shape == (4, 6) and y.shape == (4, 2)
    torch.nn.init.zeros_(head.back.weight)
    torch.nn.init.zeros_(head.back.bias)
    h, y = head(x)
    torch.testing.assert_close(h, x)
    torch.testing.assert_close(y, head.out(x))
    assert repr(head) == "ResidualHead(6, 2)"


def test_projection_input_dropout():
    # The reference drops its text features before the projection (dmd.py:154).
    torch.manual_seed(0)
    projection = TemporalProjection(4, 6, kernel_size=2, dropout=0.5)
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 5, 5])
    torch.manual_seed(1)
    out, _ = projection(x, lengths)
    torch.manual_seed(1)
    dropped = x * dropout_keep(x, 0.5)  # kept with probability 1/2, scaled by 2
    expected = torch.nn.functional.conv1d(dropped.transpose(1, 2), projection.conv.weight)
    torch.testing.assert_close(out, expected.transpose(1, 2))
    assert not torch.allclose(out, projection.eval()(x, lengths)[0])
    torch.testing.assert_close(projection(x, lengths)[0], torch.nn.functional.conv1d(
        x.transpose(1, 2), projection.conv.weight).transpose(1, 2))  # eval: no dropout


def test_flatten_head_is_the_references():
    # dmd.py:191-211: flatten c time-major, r = ReLU(proj1(.)) (in place, so repr_*_homo
    # is after the ReLU), h = proj2(dropout(r)) + flat, logit = out_layer(h).
    torch.manual_seed(0)
    head = FlattenHead(4, 3, dropout=0.5, name="homogeneous head of 'text'").eval()
    x = torch.randn(2, 4, 3)
    r, y = head(x)
    flat = torch.stack([torch.cat([x[b, t] for t in range(4)]) for b in range(2)])  # (B, T C)
    expected_r = torch.relu(flat @ head.hidden.weight.t() + head.hidden.bias)
    h = expected_r @ head.back.weight.t() + head.back.bias + flat
    torch.testing.assert_close(r, expected_r)
    torch.testing.assert_close(y, h @ head.out.weight.t() + head.out.bias)
    assert r.shape == (2, 3) and y.shape == (2, 1)
    assert sum(p.numel() for p in head.parameters()) == (12 * 3 + 3) + (3 * 12 + 12) + (12 + 1)
    with pytest.raises(ValueError, match=r"homogeneous head of 'text'.*4 steps, found 5.*"
                                         r"sequence_length"):
        head(torch.randn(2, 5, 3))
    assert repr(head) == "FlattenHead(steps=4, 3, 1)"


@pytest.mark.parametrize("steps", [1, 3])
def test_a_kernel_longer_than_the_input_is_a_kernel_of_its_first_taps(steps):
    torch.manual_seed(0)
    long = TemporalProjection(4, 6, kernel_size=5)
    short = TemporalProjection(4, 6, kernel_size=steps)
    with torch.no_grad():
        short.conv.weight.copy_(long.conv.weight[:, :, :steps])
    x = torch.randn(3, steps, 4)
    lengths = torch.full((3,), steps)
    out, out_lengths = long(x, lengths)
    torch.testing.assert_close(out, short(x, lengths)[0])
    assert out.shape == (3, 1, 6) and out_lengths.tolist() == [1, 1, 1]
    if steps == 1:  # one vector: a linear map by the first tap
        torch.testing.assert_close(out[:, 0], x[:, 0] @ long.conv.weight[:, :, 0].t())


def test_bag_of_words_is_sublinear_tfidf_times_the_embedding():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    torch.manual_seed(0)
    projection = TemporalProjection(None, 8, 1, vocab_size=12, embedding_dim=5,
                                    bag_of_words=True)
    ids = torch.tensor([[3, 3, 5, 9, 0], [1, 2, 2, 2, 7], [4, 4, 0, 0, 0]])
    lengths = torch.tensor([3, 5, 1])  # id 9 of the first sample and the second 4 are padding
    idf = torch.rand(12) + 1
    projection.set_idf(idf)
    counts = torch.zeros(3, 12, dtype=torch.float64)
    for row, (sample, length) in enumerate(zip(ids.tolist(), lengths.tolist(), strict=True)):
        for token in sample[:length]:
            counts[row, token] += 1
    reference = sklearn_text.TfidfTransformer(sublinear_tf=True).fit(counts.numpy())
    reference.idf_ = idf.double().numpy()
    expected = torch.from_numpy(reference.transform(counts.numpy()).toarray()).float()
    torch.testing.assert_close(projection.tfidf(ids, lengths), expected)
    out, out_lengths = projection(ids, lengths)
    assert out.shape == (3, 1, 8) and out_lengths.tolist() == [1, 1, 1]
    conv = projection.conv.weight[:, :, 0]  # (8, 5)
    torch.testing.assert_close(out[:, 0], expected @ projection.embedding.weight @ conv.T)
    assert "bag of words" in repr(projection)


def test_bag_of_words_needs_token_ids_and_a_vocabulary_of_idf():
    with pytest.raises(ValueError, match="bag_of_words needs token-id input"):
        TemporalProjection(6, 8, bag_of_words=True)
    projection = TemporalProjection(None, 8, vocab_size=12, embedding_dim=5, bag_of_words=True)
    with pytest.raises(ValueError, match="expected \\(12,\\) values"):
        projection.set_idf(torch.ones(11))
    with pytest.raises(ValueError, match="reads sequences"):
        TemporalProjection(None, 8, vocab_size=12).set_idf(torch.ones(12))
    assert "idf" in projection.state_dict()  # saved with the weights


def test_bag_of_words_embedding_starts_as_a_linear_map_of_the_vocabulary():
    projection = TemporalProjection(None, 8, vocab_size=400, embedding_dim=5, bag_of_words=True)
    weight = projection.embedding.weight
    assert weight.abs().max() <= 400 ** -0.5 and weight[0].abs().max() == 0
    assert TemporalProjection(None, 8, vocab_size=400, embedding_dim=5).embedding.weight.std() > 0.5
