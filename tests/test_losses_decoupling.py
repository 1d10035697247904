import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from dhmd_graph.losses import (
    dictionary_usage_loss,
    margin_loss,
    orthogonality_loss,
    self_regression_loss,
    task_loss,
)


def test_task_loss():
    labels = torch.tensor([1.0, -1.0])
    assert task_loss(torch.tensor([0.5, 0.0]), labels) == 0.75
    per_modality = torch.tensor([[1.0, 3.0], [0.0, -1.0]])  # errors [[0, 2], [1, 0]]
    assert task_loss(per_modality, labels) == 1.5  # summed over modalities, / B
    present = torch.tensor([[True, False], [True, True]])
    assert task_loss(per_modality, labels, present) == 0.5


def test_self_regression_loss_is_a_masked_mse_summed_over_modalities():
    a = [torch.randn(2, 4, 3), torch.randn(2, 2, 3)]
    b = [torch.randn(2, 4, 3), torch.randn(2, 2, 3)]
    full = [torch.tensor([4, 4]), torch.tensor([2, 2])]
    expected = F.mse_loss(a[0], b[0]) + F.mse_loss(a[1], b[1])
    torch.testing.assert_close(self_regression_loss(a, b, full), expected)
    short = [torch.tensor([4, 1]), torch.tensor([2, 2])]
    first = torch.cat([a[0][0], a[0][1, :1]]), torch.cat([b[0][0], b[0][1, :1]])
    torch.testing.assert_close(self_regression_loss(a, b, short),
                               F.mse_loss(*first) + F.mse_loss(a[1], b[1]))
    present = torch.tensor([[True, False], [True, False]])
    torch.testing.assert_close(self_regression_loss(a, b, full, present), F.mse_loss(a[0], b[0]))


def test_orthogonality_loss():
    s = torch.randn(2, 3, 4)
    lengths = [torch.tensor([3, 2])]
    torch.testing.assert_close(orthogonality_loss([s], [2 * s], lengths), torch.tensor(1.0))
    assert orthogonality_loss([s], [-s], lengths) == 0
    c = torch.where(torch.arange(3).view(1, 3, 1) < 2, -s, s)  # aligned only at a padded step
    c[0, 2] = -s[0, 2]
    assert orthogonality_loss([s], [c], lengths) == 0
    # Per time step, not over flattened sequences.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    y = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert orthogonality_loss([x], [y], [torch.tensor([2])]) == 0


def _brute_force_margin(embeddings, labels, scale):
    vectors = embeddings.flatten(0, 1)
    label = labels.repeat_interleave(embeddings.shape[1])
    cos = lambda i, j: F.cosine_similarity(vectors[i], vectors[j], dim=0)  # noqa: E731
    losses = []
    for i, j, k in itertools.product(range(len(label)), repeat=3):
        if i != j and label[i] == label[j] and label[i] != label[k]:
            hinge = scale * (label[i] - label[k]).abs() - cos(i, j) + cos(i, k)
            losses.append(hinge.clamp_min(0))
    return torch.stack(losses).mean()


def test_margin_loss_matches_brute_force():
    torch.manual_seed(0)
    embeddings = torch.randn(3, 2, 4)
    labels = torch.tensor([1.0, -0.5, 1.0])
    torch.testing.assert_close(margin_loss(embeddings, labels, scale=0.15),
                               _brute_force_margin(embeddings, labels, 0.15))
    present = torch.tensor([[True, True], [True, False], [False, True]])
    kept = torch.tensor([0, 1, 2, 5])
    expected = _brute_force_margin(embeddings.flatten(0, 1)[kept].unsqueeze(1),
                                   labels.repeat_interleave(2)[kept], 0.15)
    torch.testing.assert_close(margin_loss(embeddings, labels, present), expected)


def test_margin_loss_without_triplets_is_zero():
    embeddings = torch.randn(2, 1, 3, requires_grad=True)
    loss = margin_loss(embeddings, torch.tensor([0.0, 1.0]))  # no positive pair
    assert loss == 0
    loss.backward()


def test_dictionary_usage_loss():
    uniform = torch.full((2, 3, 4), 0.25)
    torch.testing.assert_close(dictionary_usage_loss(uniform), torch.tensor(0.0), atol=1e-5,
                               rtol=0)
    collapsed = torch.zeros(2, 3, 4)
    collapsed[..., 1] = 1.0
    torch.testing.assert_close(dictionary_usage_loss(collapsed), torch.tensor(math.log(4)),
                               atol=1e-4, rtol=0)
    spread = torch.eye(4).view(2, 2, 4)  # each peaked, together uniform
    torch.testing.assert_close(dictionary_usage_loss(spread), torch.tensor(0.0), atol=1e-4,
                               rtol=0)
    present = torch.tensor([[True, False], [False, False]])
    torch.testing.assert_close(dictionary_usage_loss(spread, present),
                               torch.tensor(math.log(4)), atol=1e-4, rtol=0)


def _reference_hinge(embeddings, labels, scale):
    """The reference's HingeLoss (trains/singleTask/HingeLoss.py), written out: for each
    anchor with both a positive and a negative, the mean hinge over its (positive,
    negative) pairs; then the mean over those anchors."""
    vectors = embeddings.flatten(0, 1)
    label = labels.repeat_interleave(embeddings.shape[1])
    cos = lambda i, j: F.cosine_similarity(vectors[i], vectors[j], dim=0)  # noqa: E731
    per_anchor = []
    for i in range(len(label)):
        positives = [j for j in range(len(label)) if j != i and label[j] == label[i]]
        negatives = [k for k in range(len(label)) if label[k] != label[i]]
        if positives and negatives:
            hinges = [(scale * (label[i] - label[k]).abs() - cos(i, j) + cos(i, k)).clamp_min(0)
                      for j in positives for k in negatives]
            per_anchor.append(torch.stack(hinges).mean())
    return torch.stack(per_anchor).mean()


def test_margin_loss_anchor_averaging_is_the_references():
    torch.manual_seed(0)
    embeddings = torch.randn(4, 3, 5, dtype=torch.double)
    labels = torch.tensor([1.0, -0.5, 1.0, 1.0], dtype=torch.double)  # anchors of unequal counts
    anchor = margin_loss(embeddings, labels, scale=0.15, reduction="anchor")
    torch.testing.assert_close(anchor, _reference_hinge(embeddings, labels, 0.15))
    triplet = margin_loss(embeddings, labels, scale=0.15)
    assert not torch.allclose(anchor, triplet)  # the averaging matters here
    present = torch.tensor([[True] * 3, [True, False, True], [False, True, True], [True] * 3])
    kept = present.flatten().nonzero().flatten()
    expected = _reference_hinge(embeddings.flatten(0, 1)[kept].unsqueeze(1),
                                labels.repeat_interleave(3)[kept], 0.15)
    torch.testing.assert_close(margin_loss(embeddings, labels, present, reduction="anchor"),
                               expected)
    assert margin_loss(embeddings[:1, :1], labels[:1], reduction="anchor") == 0  # no triplet
    with pytest.raises(ValueError, match="reduction must be"):
        margin_loss(embeddings, labels, reduction="mean")
