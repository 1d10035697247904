import math
import warnings

import pytest
import torch
from torch_geometric.utils import scatter

from dhmd_graph.losses import graph_distillation_loss
from dhmd_graph.nn import DynamicGraphDistill, modality_graph, restrict_to_present
from dhmd_graph.nn.distill import EdgeWeights, GraphDistillOutput

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


# A dense reference of the GD-Unit's formulas (DynamicGraphDistill's docstring), written
# per sample with (B, M, M) matrices --------------------------------------------------


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
    """Returns the features (B, M, F_out), learned E (B, M, M) and prior p (B, M, M):
    x_j = Theta_root r_j + Theta sum_i w_ij r_i (+ b), Theta = identity without out_channels."""
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
    received = torch.einsum("bij,bic->bjc", learned + prior, r)  # (B, M, F) sum_i w_ij r_i
    if layer.out_channels is None:
        out = received + (r if layer.root_weight else 0.0)
    else:
        out = received @ layer.lin_message.weight.T
        if layer.lin_message.bias is not None:
            out = out + layer.lin_message.bias
        if layer.root_weight:
            out = out + r @ layer.lin_root.weight.T
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


FEATURE_VARIANTS = {
    "identity": {},
    "identity_no_root": {"root_weight": False},
    "learned": {"out_channels": 6},
    "learned_no_root_no_bias": {"out_channels": 2, "root_weight": False, "bias": False},
}


@pytest.mark.parametrize("num_modalities", [2, 3, 5])
@pytest.mark.parametrize("normalize", ["graph", "target"])
@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("scenario", ["full", "pruned", "missing"])
@pytest.mark.parametrize("features", list(FEATURE_VARIANTS))
def test_matches_dense_reference(num_modalities, normalize, prior, scenario, features):
    batch_size = 3
    layer = make_layer(num_modalities, prior=prior, normalize=normalize, temperature=0.7,
                       **FEATURE_VARIANTS[features])
    logits, reprs = make_nodes(batch_size, num_modalities)
    graph, present = scenario_graph(scenario, batch_size, num_modalities)

    out, (edge_index, weight) = layer(
        logits, reprs, graph.edge_index, graph.batch, graph.modality, return_edge_weights=True
    )
    out_channels = layer.out_channels or REPR_CHANNELS
    assert out.shape == (batch_size * num_modalities, out_channels)
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
        alone = layer(logits, reprs, graph.edge_index[:, :0], graph.batch, graph.modality)
        torch.testing.assert_close(out[absent], alone[absent])  # only their root term
        noisy_logits, noisy_reprs = logits.clone(), reprs.clone()
        noisy_logits[absent] += 100.0
        noisy_reprs[absent] -= 100.0
        again = layer(noisy_logits, noisy_reprs, edge_index, graph.batch, graph.modality)
        torch.testing.assert_close(again[~absent], out[~absent])  # their values reach no one
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


@pytest.mark.parametrize("out_channels", [None, 5])
def test_edge_and_node_order_do_not_matter(out_channels):
    batch_size, num_modalities = 3, 3
    layer = make_layer(num_modalities, prior=True, out_channels=out_channels)
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


@pytest.mark.parametrize("detach_teacher", [False, True])
@pytest.mark.parametrize("out_channels", [None, 3])
def test_feature_gradient_reaches_teachers_unless_detached(detach_teacher, out_channels):
    graph = modality_graph(2, batch_size=1, edges=[(0, 1)])
    layer = make_layer(2, detach_teacher=detach_teacher, out_channels=out_channels)
    logits, reprs = make_nodes(1, 2)
    reprs.requires_grad_(True)
    out = layer(logits, reprs, graph.edge_index, graph.batch, graph.modality)
    # One edge per graph: its weight is 1 whatever the score, so any gradient into the
    # teacher (node 0) has to come through the message itself.
    (teacher_grad, student_grad) = torch.autograd.grad(out[1].sum(), reprs)[0]
    assert student_grad.abs().sum() > 0  # the root term
    if detach_teacher:
        assert teacher_grad.abs().max() == 0
    else:
        assert teacher_grad.abs().sum() > 0
    if out_channels is None:  # x_1 = r_1 + 1 * r_0; the teacher alone has no teacher
        torch.testing.assert_close(out[1], reprs[1] + reprs[0])
        torch.testing.assert_close(out[0], reprs[0])


def test_feature_gradient_reaches_the_edge_scorer():
    graph = modality_graph(3, batch_size=2)
    layer = make_layer(3, prior=True, detach_teacher=True)
    logits, reprs = make_nodes(2, 3)
    layer(logits, reprs, graph.edge_index, graph.batch, graph.modality).pow(2).sum().backward()
    for lin in (layer.lin_edge, layer.lin_logit, layer.lin_repr):
        assert lin.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("prior", [False, True])
def test_return_parts_keeps_learned_and_prior_apart(prior):
    batch_size, num_modalities = 3, 3
    layer = make_layer(num_modalities, prior=prior, out_channels=5)
    logits, reprs = make_nodes(batch_size, num_modalities)
    graph = modality_graph(num_modalities, batch_size)
    args = (logits, reprs, graph.edge_index, graph.batch, graph.modality)
    out, (edge_index, weight) = layer(*args, return_edge_weights=True)
    parts = layer(*args, return_parts=True)
    assert isinstance(parts, GraphDistillOutput) and isinstance(parts.edges, EdgeWeights)
    torch.testing.assert_close(parts.x, out)
    torch.testing.assert_close(layer(*args), out)
    assert parts.edges.edge_index is edge_index
    torch.testing.assert_close(parts.edges.weight, weight)
    prior_weight = layer.prior_weight(edge_index, graph.batch, graph.modality)
    if prior:
        torch.testing.assert_close(parts.edges.prior, prior_weight)
        torch.testing.assert_close(parts.edges.learned + parts.edges.prior, weight)
    else:
        assert parts.edges.prior is None and prior_weight is None
        torch.testing.assert_close(parts.edges.learned, weight)
    per_graph = scatter(parts.edges.learned, graph.batch[edge_index[1]], dim_size=batch_size)
    torch.testing.assert_close(per_graph, torch.ones_like(per_graph))
    with pytest.raises(ValueError, match="DynamicGraphDistill.forward.*not both"):
        layer(*args, return_edge_weights=True, return_parts=True)


def test_infers_channels_lazily():
    graph = modality_graph(3, batch_size=2)
    layer = DynamicGraphDistill(-1, -1, 4, out_channels=7)
    out = layer(torch.randn(6, 2), torch.randn(6, 5), graph.edge_index, graph.batch)
    assert out.shape == (6, 7)
    assert layer.lin_message.weight.shape == layer.lin_root.weight.shape == (7, 5)


def test_repr_and_hyper_parameters():
    layer = DynamicGraphDistill(1, 64, 64)
    assert repr(layer) == (
        "DynamicGraphDistill(1+64, hidden=64, normalize='graph', temperature=8.0, prior=False, "
        "root_weight=True, detach_teacher=False)"
    )
    assert layer.lin_message is None and layer.lin_root is None  # identity maps
    assert set(dict(layer.named_parameters())) == {
        "lin_logit.weight", "lin_logit.bias", "lin_repr.weight", "lin_repr.bias",
        "lin_edge.weight"}
    layer = DynamicGraphDistill(1, 32, 32, normalize="target", prior=torch.zeros(3, 3),
                                out_channels=16, root_weight=False, detach_teacher=True)
    assert repr(layer) == (
        "DynamicGraphDistill(1+32, out=16, hidden=32, normalize='target', temperature=8.0, "
        "prior=True, root_weight=False, detach_teacher=True)"
    )
    assert layer.lin_root is None and layer.lin_message.bias is not None
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
        ({"out_channels": 0}, "out_channels"),
    ],
)
def test_rejects_bad_hyper_parameters(kwargs, message):
    with pytest.raises(ValueError, match=f"DynamicGraphDistill.*{message}"):
        DynamicGraphDistill(1, 4, 2, **kwargs)


def test_reset_parameters_restores_a_fresh_layer():
    layer = make_layer(3, out_channels=4)
    with torch.no_grad():
        layer.lin_edge.weight.zero_()
        layer.lin_message.weight.zero_()
    layer.reset_parameters()
    assert layer.lin_edge.weight.abs().sum() > 0
    assert layer.lin_message.weight.abs().sum() > 0


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

    learned_layer = DynamicGraphDistill(1, 8, 4, prior=torch.eye(3), out_channels=5)
    parts = torch.compile(learned_layer, fullgraph=True)(*args, return_parts=True)
    expected_parts = learned_layer(*args, return_parts=True)
    torch.testing.assert_close(parts.x, expected_parts.x)
    torch.testing.assert_close(parts.edges.learned, expected_parts.edges.learned)
