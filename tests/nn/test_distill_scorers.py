"""The pair-wise and bilinear edge scorers, the node context and the prior's scale of
:class:`DynamicGraphDistill`, against dense references written per sample by hand."""

import pytest
import torch

from dhmd_graph.nn import DynamicGraphDistill, modality_graph, restrict_to_present

from .test_distill import masked_softmax, to_dense

LOGIT, REPR, HIDDEN, CONTEXT = 1, 4, 3, 5


def _layer(scorer, *, context=False, prior=False, normalize="graph", num_modalities=3):
    torch.manual_seed(0)
    prior_logits = torch.randn(num_modalities, num_modalities) if prior else None
    layer = DynamicGraphDistill(LOGIT, REPR, HIDDEN, scorer=scorer, normalize=normalize,
                                context_channels=CONTEXT if context else None,
                                prior=prior_logits, temperature=0.9)
    return layer.double()


def _nodes(num_nodes, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(num_nodes, width, generator=generator, dtype=torch.double)
            for width in (LOGIT, REPR, CONTEXT)]


def _dense_scores(layer, logits, reprs, context, batch_size, num_modalities):
    """``(B, M, M)`` scores ``e[b, teacher, student]``, every pair written out."""
    parts = [logits @ layer.lin_logit.weight.T + layer.lin_logit.bias,
             reprs @ layer.lin_repr.weight.T + layer.lin_repr.bias]
    if layer.lin_context is not None:
        parts.append(context @ layer.lin_context.weight.T + layer.lin_context.bias)
    h = torch.cat(parts, dim=-1).view(batch_size, num_modalities, -1)  # (B, M, H)
    score = torch.zeros(batch_size, num_modalities, num_modalities, dtype=h.dtype)
    for b in range(batch_size):
        for i in range(num_modalities):  # teacher
            for j in range(num_modalities):  # student
                t, s = h[b, i], h[b, j]
                if layer.scorer == "pairwise":
                    pair = torch.cat([t, s, t - s, t * s])
                    hidden = torch.relu(layer.lin_pair.weight @ pair + layer.lin_pair.bias)
                    score[b, i, j] = layer.lin_pair_out.weight.view(-1) @ hidden
                elif layer.scorer == "bilinear":
                    score[b, i, j] = s @ layer.bilinear @ t
                else:
                    w_student, w_teacher = layer.lin_edge.weight.view(-1).chunk(2)
                    score[b, i, j] = w_student @ s + w_teacher @ t
    return score


@pytest.mark.parametrize("scorer", ["additive", "pairwise", "bilinear"])
@pytest.mark.parametrize("context", [False, True])
@pytest.mark.parametrize("normalize", ["graph", "target"])
@pytest.mark.parametrize("missing", [False, True])
def test_scorers_match_dense_reference(scorer, context, normalize, missing):
    batch_size, num_modalities = 3, 3
    layer = _layer(scorer, context=context, prior=True, normalize=normalize)
    logits, reprs, ctx = _nodes(batch_size * num_modalities)
    graph = modality_graph(num_modalities, batch_size)
    edge_index = graph.edge_index
    if missing:
        present = torch.ones(batch_size, num_modalities, dtype=torch.bool)
        present[1, 2] = False
        edge_index = restrict_to_present(edge_index, present)
    result = layer(logits, reprs, edge_index, graph.batch, graph.modality, return_parts=True,
                   context=ctx if context else None, prior_scale=0.3)
    adjacency = to_dense(edge_index, torch.ones(edge_index.size(1), dtype=torch.double),
                         batch_size, num_modalities) > 0
    score = _dense_scores(layer, logits, reprs, ctx, batch_size, num_modalities)
    learned = masked_softmax(score / layer.temperature, adjacency, normalize)
    prior = masked_softmax(layer.prior.expand_as(score) / layer.prior_temperature, adjacency,
                           normalize)
    dense = lambda v: to_dense(edge_index, v, batch_size, num_modalities)  # noqa: E731
    torch.testing.assert_close(dense(result.edges.learned), learned, atol=1e-10, rtol=0)
    torch.testing.assert_close(dense(result.edges.prior), prior, atol=1e-10, rtol=0)
    torch.testing.assert_close(dense(result.edges.weight), learned + 0.3 * prior,
                               atol=1e-10, rtol=0)
    r = reprs.view(batch_size, num_modalities, -1)
    expected = r + torch.einsum("bij,bic->bjc", learned + 0.3 * prior, r)  # identity maps
    torch.testing.assert_close(result.x.view_as(expected), expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("scorer", ["pairwise", "bilinear"])
def test_pairwise_scorers_rank_teachers_per_student(scorer):
    """Unlike the additive score, a pair-wise one can prefer different teachers for
    different students of one sample."""
    layer = _layer(scorer, normalize="target")
    logits, reprs, _ = _nodes(3, seed=4)
    graph = modality_graph(3, batch_size=1)
    result = layer(logits, reprs, *graph, return_parts=True)
    learned = to_dense(graph.edge_index, result.edges.learned, 1, 3)[0]  # [teacher, student]
    # additive: E[i, j] / E[k, j] = exp((b(h_i) - b(h_k)) / tau) for every student j
    ratio_into_2 = learned[0, 2] / learned[1, 2]
    ratio_into_0 = learned[1, 0] / learned[2, 0]
    ratio_into_1 = learned[0, 1] / learned[2, 1]
    # The additive model implies E[0,1]/E[2,1] = (E[0,2]/E[1,2]) * (E[1,0]/E[2,0]).
    assert not torch.isclose(ratio_into_1, ratio_into_2 * ratio_into_0, rtol=1e-3)


def test_additive_scorer_ranks_teachers_alike_for_every_student():
    layer = _layer("additive", normalize="target")
    logits, reprs, _ = _nodes(3, seed=4)
    graph = modality_graph(3, batch_size=1)
    learned = to_dense(graph.edge_index, layer(logits, reprs, *graph,
                                               return_parts=True).edges.learned, 1, 3)[0]
    torch.testing.assert_close(learned[0, 1] / learned[2, 1],
                               (learned[0, 2] / learned[1, 2]) * (learned[1, 0] / learned[2, 0]))


def test_context_is_required_exactly_with_context_channels():
    graph = modality_graph(3, batch_size=2)
    logits, reprs, ctx = (x.float() for x in _nodes(6))
    with_context = DynamicGraphDistill(LOGIT, REPR, HIDDEN, context_channels=CONTEXT)
    without = DynamicGraphDistill(LOGIT, REPR, HIDDEN)
    with pytest.raises(ValueError, match="context"):
        with_context(logits, reprs, graph.edge_index, graph.batch)
    with pytest.raises(ValueError, match="context"):
        without(logits, reprs, graph.edge_index, graph.batch, context=ctx)
    # the context changes the weights, and receives gradient through them
    ctx.requires_grad_(True)
    _, (_, weight) = with_context(logits, reprs, graph.edge_index, graph.batch,
                                  return_edge_weights=True, context=ctx)
    (weight * torch.arange(weight.numel())).sum().backward()
    assert ctx.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, message", [({"scorer": "mlp"}, "scorer"),
                                             ({"context_channels": 0}, "context_channels")])
def test_rejects_bad_scorer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicGraphDistill(1, 4, 2, **kwargs)


def test_repr_names_scorer_and_context_and_reset_restores():
    layer = DynamicGraphDistill(1, 4, 2, scorer="bilinear", context_channels=6)
    assert "scorer='bilinear'" in repr(layer) and "context=6" in repr(layer)
    assert "scorer" not in repr(DynamicGraphDistill(1, 4, 2))
    torch.manual_seed(3)
    layer.reset_parameters()
    first = [p.detach().clone() for p in layer.parameters()]
    torch.manual_seed(3)
    layer.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(first, layer.parameters(), strict=True))
