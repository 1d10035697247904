r"""Pure loss functions of DHMD: tensors in, a scalar tensor out, no state.

Loss weights live in the configuration, never here: every function returns the
unweighted term.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["DISTANCES", "graph_distillation_loss", "prior_regularization"]


# Graph distillation (GD-Unit) ##########################################################


def _l1(student: Tensor, teacher: Tensor) -> Tensor:
    return (student - teacher).abs().mean(dim=-1)


def _l2(student: Tensor, teacher: Tensor) -> Tensor:
    return (student - teacher).pow(2).mean(dim=-1)


def _cosine(student: Tensor, teacher: Tensor) -> Tensor:
    return 1.0 - F.cosine_similarity(student, teacher, dim=-1)


def _positive_cosine(student: Tensor, teacher: Tensor) -> Tensor:
    return F.cosine_similarity(student, teacher, dim=-1).clamp_min(0.0)


DISTANCES = {
    "l1": _l1,
    "l2": _l2,
    "cosine": _cosine,
    "positive_cosine": _positive_cosine,
}
r"""The per-edge distances of :func:`graph_distillation_loss`, each mapping
``(E, D)`` student and teacher values to ``(E,)``: ``'l1'`` mean absolute
difference, ``'l2'`` mean squared difference, ``'cosine'`` :math:`1 - \cos`, and
``'positive_cosine'`` :math:`\max(0, \cos)` (the DMD reference's heterogeneous
representation term, which pushes student and teacher apart)."""


def graph_distillation_loss(
    student_values: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor,
    batch: Tensor,
    metric: str = "l1",
    *,
    num_graphs: int | None = None,
) -> Tensor:
    r"""The graph distillation loss of a GD-Unit.

    .. math::
        \mathcal{L} = \frac{1}{B} \sum_{b=1}^{B} \sum_{i \rightarrow j \in
        \mathcal{E}_b} w_{i \rightarrow j}\, d\left(\mathbf{v}_j,
        \mathrm{sg}(\mathbf{v}_i)\right),

    where :math:`\mathbf{v}` are the node values (logits or representations),
    :math:`i \rightarrow j` runs over the edges (teacher :math:`i`, student
    :math:`j`) of graph :math:`b`, :math:`w` is the edge weight of that very sample
    (e.g. from :class:`~dhmd_graph.nn.DynamicGraphDistill`), and :math:`\mathrm{sg}`
    stops the gradient, so the teacher is not pulled toward the student while
    students and edge weights both learn. Computed as an aggregation of weighted
    per-edge distances, so pruned edges and absent nodes need no special case.

    Args:
        student_values (Tensor): ``(N, D)`` the value of every node; each edge
            compares its student's value with its teacher's (detached).
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student.
        edge_weight (Tensor): ``(E,)`` distillation weight of every edge.
        batch (Tensor): ``(N,)`` long, the graph (sample) of every node.
        metric (str, optional): One of :data:`DISTANCES`: ``'l1'``, ``'l2'``,
            ``'cosine'``, ``'positive_cosine'``. (default: ``'l1'``)
        num_graphs (int, optional): The number of graphs ``B`` to average over;
            :obj:`None` infers ``batch.max() + 1`` (one device sync).
            (default: :obj:`None`)

    Returns:
        Tensor: The scalar loss.
    """
    if metric not in DISTANCES:
        raise ValueError(
            f"graph_distillation_loss: metric must be one of {sorted(DISTANCES)}, "
            f"found {metric!r}."
        )
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 1
    teacher, student = edge_index
    distance = DISTANCES[metric](student_values[student], student_values[teacher].detach())
    per_graph = scatter(
        edge_weight * distance, batch[student], dim=0, dim_size=num_graphs, reduce="sum"
    )  # (B,)
    return per_graph.mean()


def prior_regularization(
    learned: Tensor,
    prior: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    num_graphs: int,
    modality: Tensor,
) -> Tensor:
    r"""Keeps the batch-mean learned edge weight of every edge type near its prior.

    .. math::
        \mathcal{L}_{reg} = \sum_{(s, t)} \left( \frac{1}{B} \sum_{b=1}^{B}
        \left( E_{b, s \rightarrow t} - p_{b, s \rightarrow t} \right) \right)^2,

    summed over edge types ``(teacher modality s, student modality t)``. An edge a
    sample lacks (pruned, or an absent modality) has :math:`E = p = 0` there and
    adds nothing; where all samples have every edge this is
    :math:`\sum_k (\mathrm{mean}_b E_k - p_k)^2` of the reference.

    Args:
        learned (Tensor): ``(E,)`` learned edge weight :math:`E` (the layer's
            weight minus :meth:`~dhmd_graph.nn.DynamicGraphDistill.prior_weight`).
        prior (Tensor): ``(E,)`` prior edge weight :math:`p`.
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student.
        batch (Tensor): ``(N,)`` long, the graph (sample) of every node.
        num_graphs (int): The number of graphs ``B``.
        modality (Tensor): ``(N,)`` long, the modality index of every node.

    Returns:
        Tensor: The scalar regulariser (unweighted; the reference weight 10 lives in
        the config).
    """
    teacher, student = edge_index
    num_modalities = int(modality.max()) + 1 if modality.numel() > 0 else 1
    num_types = num_modalities * num_modalities
    edge_type = modality[teacher] * num_modalities + modality[student]  # (E,)
    cell = batch[student] * num_types + edge_type  # (E,) one cell per (graph, type)
    difference = scatter(
        learned - prior, cell, dim=0, dim_size=num_graphs * num_types, reduce="sum"
    ).view(num_graphs, num_types)  # (B, M*M)
    return difference.mean(dim=0).pow(2).sum()
