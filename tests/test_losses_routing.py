"""The routing losses: the edge target from the teachers' errors and the label-aware
contrastive loss, against references written by hand; and the temporal statistics."""

import math

import pytest
import torch

from dhmd_graph.losses import (
    edge_target_loss,
    supervised_contrastive_loss,
    task_errors,
    task_loss,
)
from dhmd_graph.nn import DynamicGraphDistill, modality_graph, restrict_to_present
from dhmd_graph.nn.space import temporal_statistics


def _dense_kl(learned, errors, edge_index, batch, target, tau, by_student):
    """The loss, edge by edge, with Python sums over each group."""
    teacher, student = edge_index.tolist()
    groups = {}
    for k, (_t, s) in enumerate(zip(teacher, student, strict=True)):
        key = s if by_student else int(batch[s])
        groups.setdefault(key, []).append(k)
    total = 0.0
    for edges in groups.values():
        logits = [(-errors[teacher[k]] if target == "teacher_error"
                   else errors[student[k]] - errors[teacher[k]]) / tau for k in edges]
        norm = sum(math.exp(v) for v in logits)
        for k, v in zip(edges, logits, strict=True):
            q = math.exp(v) / norm
            total += q * (math.log(q + 1e-6) - math.log(float(learned[k]) + 1e-6))
    return total / (int(batch.max()) + 1)


@pytest.mark.parametrize("target", ["teacher_error", "error_gain"])
@pytest.mark.parametrize("normalize", ["graph", "target"])
def test_edge_target_matches_reference_and_vanishes_at_the_target(target, normalize):
    batch_size, num_modalities = 3, 3
    graph = modality_graph(num_modalities, batch_size)
    present = torch.ones(batch_size, num_modalities, dtype=torch.bool)
    present[2, 0] = False
    edge_index = restrict_to_present(graph.edge_index, present)
    torch.manual_seed(0)
    layer = DynamicGraphDistill(1, 4, 3, normalize=normalize).double()
    result = layer(torch.randn(9, 1, dtype=torch.double), torch.randn(9, 4, dtype=torch.double),
                   edge_index, graph.batch, return_parts=True)
    errors = torch.rand(9, dtype=torch.double) * 2
    group = graph.batch[edge_index[1]] if normalize == "graph" else edge_index[1]
    loss = edge_target_loss(result.edges.learned, errors, edge_index, group, batch_size,
                            graph.batch, target, temperature=0.7)
    expected = _dense_kl(result.edges.learned.detach(), errors.tolist(), edge_index, graph.batch,
                         target, 0.7, normalize == "target")
    assert loss.item() == pytest.approx(expected, abs=1e-9)
    assert loss.item() > 0
    # the scorer learns from it; the errors are detached
    errors.requires_grad_(True)
    loss = edge_target_loss(result.edges.learned, errors, edge_index, group, batch_size,
                            graph.batch, target, temperature=0.7)
    loss.backward()
    assert errors.grad is None and layer.lin_edge.weight.grad.abs().sum() > 0
    # E equal to the target gives zero
    from torch_geometric.utils import softmax
    teacher, student = edge_index
    logit = -errors[teacher] if target == "teacher_error" else errors[student] - errors[teacher]
    goal = softmax(logit.detach() / 0.7, group)
    zero = edge_target_loss(goal, errors, edge_index, group, batch_size, graph.batch, target,
                            temperature=0.7)
    assert abs(zero.item()) < 1e-9


def test_edge_target_prefers_the_better_teacher():
    """Among two learned distributions, the one giving the lower-error teacher more
    weight has the lower loss."""
    graph = modality_graph(2, batch_size=1)  # edges 0->1, 1->0
    errors = torch.tensor([0.1, 2.0])  # modality 0 is right
    group = graph.batch[graph.edge_index[1]]
    good = edge_target_loss(torch.tensor([0.9, 0.1]), errors, graph.edge_index, group, 1,
                            graph.batch)
    bad = edge_target_loss(torch.tensor([0.1, 0.9]), errors, graph.edge_index, group, 1,
                           graph.batch)
    assert good < bad
    with pytest.raises(ValueError, match="target"):
        edge_target_loss(torch.tensor([0.5, 0.5]), errors, graph.edge_index, group, 1,
                         graph.batch, "agreement")


def _supcon_by_hand(z, labels, present, tau, tol, cross_modal):
    batch_size, num_modalities, _ = z.shape
    nodes = [(b, m) for b in range(batch_size) for m in range(num_modalities) if present[b, m]]
    unit = {n: z[n[0], n[1]] / z[n[0], n[1]].norm() for n in nodes}
    losses = []
    for a in nodes:
        candidates = [k for k in nodes if k != a and (cross_modal or k[1] == a[1])]
        positives = [k for k in candidates if abs(labels[k[0]] - labels[a[0]]) <= tol]
        if not positives:
            continue
        norm = sum(math.exp(float(unit[a] @ unit[k]) / tau) for k in candidates)
        losses.append(-sum(float(unit[a] @ unit[p]) / tau - math.log(norm)
                           for p in positives) / len(positives))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("cross_modal", [True, False])
@pytest.mark.parametrize("missing", [False, True])
def test_supervised_contrastive_matches_hand_computation(cross_modal, missing):
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(5, 3, 4, generator=generator, dtype=torch.double)
    labels = torch.tensor([0.0, 0.3, 2.0, -1.0, 2.4], dtype=torch.double)
    present = torch.ones(5, 3, dtype=torch.bool)
    if missing:
        present[1, 0] = present[3, 2] = False
    loss = supervised_contrastive_loss(z, labels, present if missing else None, 0.2, 0.5,
                                       cross_modal)
    expected = _supcon_by_hand(z, labels.tolist(), present, 0.2, 0.5, cross_modal)
    assert loss.item() == pytest.approx(expected, abs=1e-9)


def test_supervised_contrastive_edge_cases_and_direction():
    z = torch.randn(4, 2, 3, requires_grad=True)
    far = torch.tensor([0.0, 1.0, 2.0, 3.0])
    # no positive at all within a modality: zero, finite gradient
    loss = supervised_contrastive_loss(z, far, temperature=0.1, tolerance=0.5,
                                       cross_modal=False)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    # one present vector only: no candidates, zero
    present = torch.zeros(4, 2, dtype=torch.bool)
    present[0, 0] = True
    assert supervised_contrastive_loss(z, far, present).item() == 0.0
    # vectors aligned with their label group score lower than shuffled ones
    labels = torch.tensor([0.0, 0.0, 3.0, 3.0])
    direction = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                              [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    aligned = direction.unsqueeze(1).expand(4, 2, 3)
    shuffled = direction[[0, 2, 1, 3]].unsqueeze(1).expand(4, 2, 3)
    assert supervised_contrastive_loss(aligned, labels) < supervised_contrastive_loss(
        shuffled, labels)
    with pytest.raises(ValueError, match="temperature"):
        supervised_contrastive_loss(z, labels, temperature=0.0)


@pytest.mark.parametrize("task, shape, labels", [
    ("regression", (4, 3), torch.tensor([0.5, -1.0, 2.0, 0.0])),
    ("binary", (4, 3), torch.tensor([0, 1, 1, 0])),
    ("multiclass", (4, 3, 5), torch.tensor([0, 4, 2, 1])),
])
def test_task_errors_are_task_loss_before_reduction(task, shape, labels):
    prediction = torch.randn(*shape)
    errors = task_errors(prediction, labels, task)
    assert errors.shape == (4, 3)
    present = torch.rand(4, 3) > 0.3
    torch.testing.assert_close(task_loss(prediction, labels, present, task),
                               (errors * present).sum() / 4)
    if task == "regression":
        torch.testing.assert_close(errors, (prediction - labels[:, None]).abs())


def test_temporal_statistics_by_hand():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, generator=generator, dtype=torch.double)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    stats = temporal_statistics(x, mask)
    assert stats.shape == (2, 9)
    for b, steps in enumerate((5, 3)):
        valid = x[b, :steps]
        mean = valid.mean(0)
        std = valid.std(0, unbiased=False)
        diff = (valid[1:] - valid[:-1]).pow(2).mean(0).sqrt()
        torch.testing.assert_close(stats[b], torch.cat([mean, std, diff]), atol=1e-7, rtol=0)
    # padding does not count
    padded = x.clone()
    padded[1, 3:] = 100.0
    torch.testing.assert_close(temporal_statistics(padded, mask), stats)
    # white noise differs step to step much more than a slow drift of the same size
    white = torch.randn(1, 400, 1, generator=generator)
    drift = torch.cumsum(torch.randn(1, 400, 1, generator=generator), 1)
    drift = (drift - drift.mean()) / drift.std()
    full = torch.ones(1, 400, dtype=torch.bool)
    assert temporal_statistics(white, full)[0, 2] > 5 * temporal_statistics(drift, full)[0, 2]
    # one valid step: zero spread, finite gradient
    one = torch.randn(1, 4, 2, requires_grad=True)
    out = temporal_statistics(one, torch.tensor([[True, False, False, False]]))
    out.sum().backward()
    assert out[0, 2:].abs().max() < 1e-6 and torch.isfinite(one.grad).all()
