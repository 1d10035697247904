import math

import pytest
import torch

from dhmd_graph.losses import graph_distillation_loss, prior_regularization

# Graph distillation (GD-Unit) losses ##################################################

# Two samples of two modalities: nodes 0, 1 (sample 0) and 2, 3 (sample 1).
GD_VALUES = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])
GD_BATCH = torch.tensor([0, 0, 1, 1])
GD_EDGE_INDEX = torch.tensor([[0, 2, 3], [1, 3, 2]])  # 0->1 in sample 0; 2<->3 in sample 1
GD_EDGE_WEIGHT = torch.tensor([0.4, 1.0, 0.5])
INV_SQRT2 = 1 / math.sqrt(2)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("l1", (0.4 * 1.5 + 1.5 * 1.0) / 2),
        ("l2", (0.4 * 2.5 + 1.5 * 1.0) / 2),
        ("cosine", (0.4 * 1.0 + 1.5 * (1 - INV_SQRT2)) / 2),
        ("positive_cosine", (0.4 * 0.0 + 1.5 * INV_SQRT2) / 2),
    ],
)
def test_graph_distillation_loss_hand_computed(metric, expected):
    loss = graph_distillation_loss(GD_VALUES, GD_EDGE_INDEX, GD_EDGE_WEIGHT, GD_BATCH, metric)
    assert loss.shape == ()
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_graph_distillation_loss_keeps_each_samples_weight():
    # The same distances with the weights of the two samples swapped give another loss:
    # each edge is weighted by its own sample's weight, not by a batch average.
    values = torch.tensor([[0.0], [1.0], [0.0], [3.0]])
    edge_index = torch.tensor([[0, 2], [1, 3]])
    loss = graph_distillation_loss(values, edge_index, torch.tensor([0.9, 0.1]), GD_BATCH)
    swapped = graph_distillation_loss(values, edge_index, torch.tensor([0.1, 0.9]), GD_BATCH)
    assert math.isclose(loss.item(), (0.9 * 1 + 0.1 * 3) / 2, rel_tol=1e-6)
    assert math.isclose(swapped.item(), (0.1 * 1 + 0.9 * 3) / 2, rel_tol=1e-6)


def test_graph_distillation_loss_gradients_skip_the_teacher():
    values = GD_VALUES.clone().requires_grad_(True)
    weight = GD_EDGE_WEIGHT.clone().requires_grad_(True)
    graph_distillation_loss(values, GD_EDGE_INDEX, weight, GD_BATCH, "l2").backward()
    # Node 0 only teaches; node 1 only learns; nodes 2 and 3 do both.
    assert values.grad[0].abs().max() == 0
    assert bool((values.grad[1:].abs().sum(-1) > 0).all())
    # d loss / d w = distance / B.
    torch.testing.assert_close(weight.grad, torch.tensor([2.5, 1.0, 1.0]) / 2)


def test_graph_distillation_loss_is_invariant_to_edge_order():
    perm = torch.tensor([2, 0, 1])
    for metric in ("l1", "cosine"):
        loss = graph_distillation_loss(GD_VALUES, GD_EDGE_INDEX, GD_EDGE_WEIGHT, GD_BATCH, metric)
        permuted = graph_distillation_loss(
            GD_VALUES, GD_EDGE_INDEX[:, perm], GD_EDGE_WEIGHT[perm], GD_BATCH, metric
        )
        torch.testing.assert_close(permuted, loss)


def test_graph_distillation_loss_averages_over_all_graphs():
    # A third sample whose nodes are all absent has no edges but still counts.
    batch = torch.tensor([0, 0, 1, 1, 2, 2])
    values = torch.cat([GD_VALUES, torch.zeros(2, 2)])
    two = graph_distillation_loss(GD_VALUES, GD_EDGE_INDEX, GD_EDGE_WEIGHT, GD_BATCH)
    three = graph_distillation_loss(values, GD_EDGE_INDEX, GD_EDGE_WEIGHT, batch)
    explicit = graph_distillation_loss(
        GD_VALUES, GD_EDGE_INDEX, GD_EDGE_WEIGHT, GD_BATCH, num_graphs=3
    )
    torch.testing.assert_close(three, two * 2 / 3)
    torch.testing.assert_close(explicit, three)
    empty = graph_distillation_loss(
        GD_VALUES, GD_EDGE_INDEX[:, :0], GD_EDGE_WEIGHT[:0], GD_BATCH
    )
    assert empty.item() == 0


def test_graph_distillation_loss_rejects_unknown_metric():
    with pytest.raises(ValueError, match="graph_distillation_loss.*'js'"):
        graph_distillation_loss(GD_VALUES, GD_EDGE_INDEX, GD_EDGE_WEIGHT, GD_BATCH, "js")


def test_prior_regularization_matches_dense_reference():
    num_graphs, num_modalities = 3, 3
    generator = torch.Generator().manual_seed(0)
    # Sample 2 lacks modality 1, so it has only the edges 0 <-> 2.
    pairs = [(t, s) for t in range(3) for s in range(3) if t != s]
    edges = [(b, t, s) for b in range(num_graphs) for t, s in pairs if b != 2 or 1 not in (t, s)]
    edge_index = torch.tensor(
        [[b * num_modalities + t for b, t, _ in edges], [b * num_modalities + s for b, _, s in edges]]
    )
    batch = torch.arange(num_graphs).repeat_interleave(num_modalities)
    modality = torch.arange(num_modalities).repeat(num_graphs)
    learned = torch.rand(len(edges), generator=generator, requires_grad=True)
    prior = torch.rand(len(edges), generator=generator)

    loss = prior_regularization(learned, prior, edge_index, batch, num_graphs, modality)

    dense = torch.zeros(num_graphs, num_modalities, num_modalities)  # [b, teacher, student]
    index = tuple(torch.tensor(column) for column in zip(*edges, strict=True))
    dense = dense.index_put(index, learned - prior)
    expected = dense.mean(dim=0).pow(2).sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert learned.grad.abs().sum() > 0


def test_prior_regularization_vanishes_at_the_prior():
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    prior = torch.tensor([0.3, 0.7, 0.3, 0.7])
    modality = torch.tensor([0, 1, 0, 1])
    loss = prior_regularization(prior, prior, edge_index, GD_BATCH, 2, modality)
    assert loss.item() == 0
    # Batch-mean deviations cancel: +0.1 in one sample and -0.1 in the other.
    learned = prior + torch.tensor([0.1, -0.1, -0.1, 0.1])
    assert prior_regularization(learned, prior, edge_index, GD_BATCH, 2, modality).item() == 0


def test_graph_distillation_loss_batch_means_is_the_references():
    # The reference's min_cosine (trains/singleTask/misc.py:63-71): per edge type k,
    # (mean_b w_bk) * (mean_b max(0, cos)), summed over the edge types.
    torch.manual_seed(0)
    batch_size, num_modalities = 4, 3
    values = torch.randn(batch_size * num_modalities, 5, dtype=torch.double)
    modality = torch.arange(num_modalities).repeat(batch_size)
    batch = torch.arange(batch_size).repeat_interleave(num_modalities)
    pairs = [(t, s) for t in range(3) for s in range(3) if t != s]
    edge_index = torch.tensor([[b * 3 + t for b in range(batch_size) for t, _ in pairs],
                               [b * 3 + s for b in range(batch_size) for _, s in pairs]])
    weight = torch.rand(edge_index.shape[1], dtype=torch.double)
    loss = graph_distillation_loss(values, edge_index, weight, batch, "positive_cosine",
                                   reduction="batch_means", modality=modality)
    v = values.view(batch_size, num_modalities, 5)
    w = weight.view(batch_size, len(pairs))
    expected = sum(
        w[:, k].mean() * torch.nn.functional.cosine_similarity(v[:, s], v[:, t], dim=-1)
        .clamp_min(0).mean() for k, (t, s) in enumerate(pairs))
    torch.testing.assert_close(loss, expected)
    per_sample = graph_distillation_loss(values, edge_index, weight, batch, "positive_cosine")
    assert not torch.allclose(loss, per_sample)  # the reduction matters
    with pytest.raises(ValueError, match="needs the modality"):
        graph_distillation_loss(values, edge_index, weight, batch, reduction="batch_means")
    with pytest.raises(ValueError, match="reduction must be"):
        graph_distillation_loss(values, edge_index, weight, batch, reduction="sum")
