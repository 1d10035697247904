import math
import warnings

import pytest
import torch
from torch_geometric.utils import scatter

from dhmd_graph.losses import graph_distillation_loss
from dhmd_graph.nn import DynamicGraphDistill, modality_graph, restrict_to_present

LOGIT_CHANNELS, REPR_CHANNELS, HIDDEN_CHANNELS = 1, 4, 3


def make_layer(num_modalities=3, *, prior=False, seed=0, **kwargs):
    torch.manual_seed(seed)
    prior_logits = torch.randn(num_modalities, num_modalities) if prior else None
    layer = DynamicGraphDistill(
        LOGIT_CHANNELS, REPR_CHANNELS, HIDDEN_CHANNELS, prior=prior_logits, **kwargs
    )
    return layer.double()


def make_nodes(batch_size, num_modalities, seed=1):
    generator = torch.Generator().manual_seed(seed)
    num_nodes = batch_size * num_modalities
    logits = torch.randn(num_nodes, LOGIT_CHANNELS, generator=generator, dtype=torch.double)
    reprs = torch.randn(num_nodes, REPR_CHANNELS, generator=generator, dtype=torch.double)
    return logits, reprs


# A dense reference of SPEC §4, written per sample with (B, M, M) matrices -------------


def to_dense(edge_index, value, batch_size, num_modalities):
    """``(B, M, M)`` indexed ``[sample, teacher, student]``; zero where there is no edge."""
    teacher, student = edge_index
    dense = value.new_zeros(batch_size, num_modalities, num_modalities)
    return dense.index_put(
        (teacher // num_modalities, teacher % num_modalities, student % num_modalities), value
    )


def masked_softmax(score, adjacency, normalize):
    score = score.masked_fill(~adjacency, float("-inf"))
    if normalize == "graph":  # over every edge of the sample
        weight = score.flatten(1).softmax(dim=-1).view_as(score)
    else:  # over the teachers of each student
        weight = score.softmax(dim=1)
    return weight.nan_to_num(0.0)  # a sample or student without edges


def dense_gd_unit(layer, logits, reprs, adjacency):
    """Returns out (B, M, C+F), learned E (B, M, M) and prior p (B, M, M)."""
    batch_size, num_modalities, _ = adjacency.shape
    y = logits.view(batch_size, num_modalities, -1)
    r = reprs.view(batch_size, num_modalities, -1)
    h = torch.cat(
        [
            y @ layer.lin_logit.weight.T + layer.lin_logit.bias,
            r @ layer.lin_repr.weight.T + layer.lin_repr.bias,
        ],
        dim=-1,
    )  # (B, M, 2g)
    w_student, w_teacher = layer.lin_edge.weight.view(-1).chunk(2)
    score = (h @ w_teacher).unsqueeze(2) + (h @ w_student).unsqueeze(1)  # (B, i, j)
    learned = masked_softmax(score / layer.temperature, adjacency, layer.normalize)
    if layer.prior is None:
        prior = torch.zeros_like(learned)
    else:
        prior_logits = layer.prior.expand_as(score) / layer.prior_temperature
        prior = masked_softmax(prior_logits, adjacency, layer.normalize)
    out = torch.einsum("bij,bic->bjc", learned + prior, torch.cat([y, r], dim=-1))
    return out, learned, prior


def dense_distance(values, metric):
    """``(B, M, M)`` distance ``d(v_student, v_teacher)`` indexed ``[b, teacher, student]``."""
    teacher, student = values.unsqueeze(2), values.unsqueeze(1)  # (B, M, 1, D), (B, 1, M, D)
    if metric == "l1":
        return (student - teacher).abs().mean(-1)
    if metric == "l2":
        return (student - teacher).pow(2).mean(-1)
    unit = values / values.norm(dim=-1, keepdim=True)
    cos = torch.einsum("bid,bjd->bij", unit, unit)
    return 1 - cos if metric == "cosine" else cos.clamp_min(0)


def scenario_graph(scenario, batch_size, num_modalities):
    if scenario == "pruned":  # every other ordered pair
        pairs = [(t, s) for t in range(num_modalities) for s in range(num_modalities) if t != s]
        return modality_graph(num_modalities, batch_size, edges=pairs[::2]), None
    graph = modality_graph(num_modalities, batch_size)
    if scenario == "full":
        return graph, None
    present = torch.ones(batch_size, num_modalities, dtype=torch.bool)
    present[0, -1] = False
    present[1, 0] = False
    return graph._replace(edge_index=restrict_to_present(graph.edge_index, present)), present


@pytest.mark.parametrize("num_modalities", [2, 3, 5])
@pytest.mark.parametrize("normalize", ["graph", "target"])
@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("scenario", ["full", "pruned", "missing"])
def test_matches_dense_reference(num_modalities, normalize, prior, scenario):
    batch_size = 3
    layer = make_layer(num_modalities, prior=prior, normalize=normalize, temperature=0.7)
    logits, reprs = make_nodes(batch_size, num_modalities)
    graph, present = scenario_graph(scenario, batch_size, num_modalities)

    out, (edge_index, weight) = layer(
        logits, reprs, graph.edge_index, graph.batch, graph.modality, return_edge_weights=True
    )
    assert out.shape == (batch_size * num_modalities, LOGIT_CHANNELS + REPR_CHANNELS)
    assert edge_index is graph.edge_index and weight.shape == (edge_index.size(1),)

    adjacency = to_dense(edge_index, torch.ones_like(weight), batch_size, num_modalities) > 0
    expected_out, learned, prior_weight = dense_gd_unit(layer, logits, reprs, adjacency)
    dense_weight = learned + prior_weight
    torch.testing.assert_close(out.view_as(expected_out), expected_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        to_dense(edge_index, weight, batch_size, num_modalities), dense_weight, atol=1e-6, rtol=0
    )

    for values, name in ((logits, "l1"), (logits, "l2"), (reprs, "cosine"), (reprs, "positive_cosine")):
        loss = graph_distillation_loss(values, edge_index, weight, graph.batch, name)
        distance = dense_distance(values.view(batch_size, num_modalities, -1), name)
        expected = torch.einsum("bij,bij->b", dense_weight, distance).mean()
        torch.testing.assert_close(loss, expected, atol=1e-6, rtol=0)

    if present is not None:  # absent nodes get nothing and send nothing
        absent = ~present.flatten()
        assert out[absent].abs().max() == 0
        dense_absent = ~present
        assert dense_weight[dense_absent].abs().max() == 0
        assert dense_weight.transpose(1, 2)[dense_absent].abs().max() == 0


@pytest.mark.parametrize("normalize", ["graph", "target"])
@pytest.mark.parametrize("prior", [False, True])
def test_edge_weights_are_distributions_per_group(normalize, prior):
    batch_size, num_modalities = 4, 3
    layer = make_layer(num_modalities, prior=prior, normalize=normalize)
    logits, reprs = make_nodes(batch_size, num_modalities)
    graph = modality_graph(num_modalities, batch_size)
    present = torch.ones(batch_size, num_modalities, dtype=torch.bool)
    present[2, 1] = False  # sample 2 keeps 2 of its 6 edges; the weights renormalise
    edge_index = restrict_to_present(graph.edge_index, present)

    _, (_, weight) = layer(
        logits, reprs, edge_index, graph.batch, graph.modality, return_edge_weights=True
    )
    prior_weight = layer.prior_weight(edge_index, graph.batch, graph.modality)
    assert (prior_weight is None) == (not prior)
    parts = [weight] if prior_weight is None else [weight - prior_weight, prior_weight]

    if normalize == "graph":
        group, num_groups = graph.batch[edge_index[1]], batch_size
    else:
        group, num_groups = edge_index[1], batch_size * num_modalities
    has_edges = scatter(torch.ones_like(weight), group, dim_size=num_groups) > 0
    for part in parts:
        assert bool(((part >= 0) & (part <= 1)).all())
        total = scatter(part, group, dim_size=num_groups)
        torch.testing.assert_close(total[has_edges], torch.ones_like(total[has_edges]))
    assert bool(((weight >= 0) & (weight <= len(parts))).all())


@pytest.mark.parametrize(
    ("prior_edges", "high", "low"),
    [
        ([(0, 2), (0, 1)], 0.482, 0.0088),  # homogeneous reference: L->V, L->A
        ([(0, 2), (0, 1), (2, 1)], 0.327, 0.0060),  # heterogeneous: L->V, L->A, V->A
    ],
)
def test_reference_prior_weights(prior_edges, high, low):
    prior_logits = torch.zeros(3, 3)  # modalities 0 text, 1 audio, 2 vision
    for teacher, student in prior_edges:
        prior_logits[teacher, student] = 1.0
    layer = DynamicGraphDistill(1, 8, 4, prior=prior_logits)
    graph = modality_graph(3, batch_size=2)
    prior_weight = layer.prior_weight(graph.edge_index, graph.batch, graph.modality)
    expected = torch.tensor(
        [high if (t % 3, s % 3) in prior_edges else low for t, s in graph.edge_index.t().tolist()]
    )
    torch.testing.assert_close(prior_weight, expected, atol=5e-4, rtol=0)
    num_high = len(prior_edges)
    assert math.isclose(high, math.exp(4) / (num_high * math.exp(4) + 6 - num_high), abs_tol=5e-4)
    # Without a modality vector the layer assumes node b * M + m.
    torch.testing.assert_close(layer.prior_weight(graph.edge_index, graph.batch), prior_weight)


def test_edge_and_node_order_do_not_matter():
    batch_size, num_modalities = 3, 3
    layer = make_layer(num_modalities, prior=True)
    logits, reprs = make_nodes(batch_size, num_modalities)
    graph = modality_graph(num_modalities, batch_size)
    out, (_, weight) = layer(
        logits, reprs, graph.edge_index, graph.batch, graph.modality, return_edge_weights=True
    )

    edge_perm = torch.randperm(graph.edge_index.size(1), generator=torch.Generator().manual_seed(0))
    out_e, (_, weight_e) = layer(
        logits, reprs, graph.edge_index[:, edge_perm], graph.batch, graph.modality,
        return_edge_weights=True,
    )
    torch.testing.assert_close(out_e, out)
    torch.testing.assert_close(weight_e, weight[edge_perm])

    # Relabel nodes across the whole batch: old node n becomes new node relabel[n].
    num_nodes = batch_size * num_modalities
    relabel = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(1))
    inverse = torch.empty_like(relabel)
    inverse[relabel] = torch.arange(num_nodes)
    out_n, (_, weight_n) = layer(
        logits[inverse], reprs[inverse], relabel[graph.edge_index], graph.batch[inverse],
        graph.modality[inverse], return_edge_weights=True,
    )
    torch.testing.assert_close(out_n[relabel], out)
    torch.testing.assert_close(weight_n, weight)


def test_gradients_reach_scorer_and_students_but_not_teachers():
    # Node 0 only teaches, node 2 only learns, node 1 does both.
    graph = modality_graph(3, batch_size=2, edges=[(0, 1), (0, 2), (1, 2)])
    layer = make_layer(3)
    logits, reprs = make_nodes(2, 3)
    logits.requires_grad_(True)
    reprs.requires_grad_(True)
    _, (edge_index, weight) = layer(
        logits, reprs, graph.edge_index, graph.batch, graph.modality, return_edge_weights=True
    )
    loss = graph_distillation_loss(logits, edge_index, weight, graph.batch) + (
        graph_distillation_loss(reprs, edge_index, weight, graph.batch, "cosine")
    )
    # Detach the scorer's input so only the distillation path reaches the node values.
    distance_only = graph_distillation_loss(reprs, edge_index, weight.detach(), graph.batch)
    loss.backward()
    assert layer.lin_edge.weight.grad.abs().sum() > 0
    assert layer.lin_logit.weight.grad.abs().sum() > 0
    assert layer.lin_repr.weight.grad.abs().sum() > 0

    (reprs_grad,) = torch.autograd.grad(distance_only, reprs)
    teacher_only, learners = [0, 3], [1, 2, 4, 5]
    assert reprs_grad[teacher_only].abs().max() == 0
    assert bool((reprs_grad[learners].abs().sum(-1) > 0).all())


def test_layer_output_does_not_backpropagate_into_teachers():
    graph = modality_graph(2, batch_size=1, edges=[(0, 1)])
    layer = make_layer(2)
    logits, reprs = make_nodes(1, 2)
    reprs.requires_grad_(True)
    out = layer(logits, reprs, graph.edge_index, graph.batch, graph.modality)
    # One edge per graph: its weight is 1 whatever the score, so any gradient into the
    # teacher would have to come through the message itself.
    out.sum().backward()
    assert reprs.grad is None or reprs.grad.abs().max() == 0
    torch.testing.assert_close(out[1], torch.cat([logits[0], reprs[0].detach()]))
    assert out[0].abs().max() == 0


def test_repr_and_hyper_parameters():
    layer = DynamicGraphDistill(1, 64, 64)
    assert repr(layer) == (
        "DynamicGraphDistill(1+64, hidden=64, normalize='graph', temperature=8.0, prior=False)"
    )
    layer = DynamicGraphDistill(1, 32, 32, normalize="target", prior=torch.zeros(3, 3))
    assert repr(layer) == (
        "DynamicGraphDistill(1+32, hidden=32, normalize='target', temperature=8.0, prior=True)"
    )
    assert "prior" in dict(layer.named_buffers())
    assert "prior" in layer.state_dict()
    assert layer.prior_temperature == 0.25


def test_prior_is_copied_and_accepts_nested_lists():
    prior_logits = torch.zeros(3, 3)
    layer = DynamicGraphDistill(1, 4, 2, prior=prior_logits)
    prior_logits[0, 1] = 5.0
    assert layer.prior.abs().max() == 0
    from_list = DynamicGraphDistill(1, 4, 2, prior=[[0, 1, 1], [0, 0, 0], [0, 0, 0]])
    assert from_list.prior.dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"normalize": "edge"}, "normalize"),
        ({"temperature": 0.0}, "positive"),
        ({"prior_temperature": -1.0}, "positive"),
        ({"prior": torch.zeros(2, 3)}, r"\(M, M\)"),
        ({"prior": torch.zeros(1, 1)}, r"\(M, M\)"),
    ],
)
def test_rejects_bad_hyper_parameters(kwargs, message):
    with pytest.raises(ValueError, match=f"DynamicGraphDistill.*{message}"):
        DynamicGraphDistill(1, 4, 2, **kwargs)


def test_reset_parameters_restores_a_fresh_layer():
    layer = make_layer(3)
    with torch.no_grad():
        layer.lin_edge.weight.zero_()
    layer.reset_parameters()
    assert layer.lin_edge.weight.abs().sum() > 0


def test_runs_without_any_warning():
    graph = modality_graph(3, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = DynamicGraphDistill(1, 4, 2, prior=torch.eye(3))
        layer(torch.randn(6, 1), torch.randn(6, 4), graph.edge_index, graph.batch)


@pytest.mark.slow
def test_compiles_without_graph_breaks():
    graph = modality_graph(3, batch_size=4)
    layer = DynamicGraphDistill(1, 8, 4, prior=torch.eye(3))
    logits, reprs = torch.randn(12, 1), torch.randn(12, 8)
    args = (logits, reprs, graph.edge_index, graph.batch, graph.modality)
    explanation = torch._dynamo.explain(layer)(*args, return_edge_weights=True)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(layer, fullgraph=True)
    out, (_, weight) = compiled(*args, return_edge_weights=True)
    expected, (_, expected_weight) = layer(*args, return_edge_weights=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weight, expected_weight)
