r"""Pure loss functions of DHMD: tensors in, a scalar tensor out, no state.

Loss weights live in the configuration, never here: every function returns the
unweighted term.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter, softmax

from dhmd_graph.tasks import task_spec

LOG_EPS = 1e-6
"""Added before taking logs of dictionary activations (sparsemax gives exact zeros)."""

__all__ = [
    "DISTANCES",
    "LOGIT_METRICS",
    "MARGIN_REDUCTIONS",
    "METRICS",
    "REPR_REDUCTIONS",
    "LogitMetric",
    "MarginReduction",
    "Metric",
    "ReprReduction",
    "dictionary_contrastive_loss",
    "dictionary_usage_loss",
    "edge_target_loss",
    "graph_distillation_loss",
    "margin_loss",
    "orthogonality_loss",
    "prior_regularization",
    "self_regression_loss",
    "softened_kl",
    "supervised_contrastive_loss",
    "task_errors",
    "task_loss",
]


# Graph distillation (GD-Unit) ##########################################################


def _l1(student: Tensor, teacher: Tensor) -> Tensor:
    return (student - teacher).abs().mean(dim=-1)


def _l2(student: Tensor, teacher: Tensor) -> Tensor:
    return (student - teacher).pow(2).mean(dim=-1)


def _cosine(student: Tensor, teacher: Tensor) -> Tensor:
    return 1.0 - F.cosine_similarity(student, teacher, dim=-1)


def _positive_cosine(student: Tensor, teacher: Tensor) -> Tensor:
    return F.cosine_similarity(student, teacher, dim=-1).clamp_min(0.0)


KLActivation = Literal["softmax", "sigmoid"]
"""The class distributions of :func:`softened_kl`."""
ACTIVATIONS: tuple[str, ...] = typing.get_args(KLActivation)


def softened_kl(student: Tensor, teacher: Tensor, temperature: float = 1.0,
                activation: KLActivation = "softmax") -> Tensor:
    r"""The distillation distance between softened class distributions (Hinton et al.,
    2015), per row:

    .. math::
        d(\mathbf{s}, \mathbf{t}) = \tau^2\, \mathrm{KL}\big(p(\mathbf{t}/\tau)
        \,\Vert\, p(\mathbf{s}/\tau)\big),

    with :math:`p = \mathrm{softmax}` over the :math:`C` classes
    (``activation="softmax"``, single-label tasks), or, for ``activation="sigmoid"``
    (multi-label and binary tasks), the mean over the :math:`C` labels of the KL between
    the Bernoulli distributions :math:`\sigma(t_c/\tau)` and :math:`\sigma(s_c/\tau)`.
    The factor :math:`\tau^2` keeps the gradient's scale independent of :math:`\tau`.
    Zero iff the distributions agree: unlike L1 on logits, a shift shared by all
    logits of a softmax costs nothing.

    Args:
        student (Tensor): ``(E, C)`` student logits.
        teacher (Tensor): ``(E, C)`` teacher logits (the caller detaches them).
        temperature (float, optional): :math:`\tau > 0`. (default: ``1.0``)
        activation (str, optional): ``"softmax"`` or ``"sigmoid"``.
            (default: ``"softmax"``)

    Returns:
        Tensor: ``(E,)`` the distance of every row.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"softened_kl: activation must be one of {ACTIVATIONS}, found "
                         f"{activation!r}.")
    if temperature <= 0:
        raise ValueError(f"softened_kl: temperature must be positive, found {temperature}.")
    s, t = student / temperature, teacher / temperature
    if activation == "softmax":
        log_s, log_t = s.log_softmax(dim=-1), t.log_softmax(dim=-1)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=-1)  # (E,)
    else:  # Bernoulli per label: log sigma(x) and log(1 - sigma(x)) = log sigma(-x)
        log_s1, log_s0 = F.logsigmoid(s), F.logsigmoid(-s)
        log_t1, log_t0 = F.logsigmoid(t), F.logsigmoid(-t)
        kl = (log_t1.exp() * (log_t1 - log_s1) + log_t0.exp() * (log_t0 - log_s0)).mean(dim=-1)
    return temperature**2 * kl


DISTANCES = {
    "l1": _l1,
    "l2": _l2,
    "cosine": _cosine,
    "positive_cosine": _positive_cosine,
    "kl": softened_kl,
}
r"""The per-edge distances of :func:`graph_distillation_loss`, each mapping
``(E, D)`` student and teacher values to ``(E,)``: ``'l1'`` mean absolute
difference, ``'l2'`` mean squared difference, ``'cosine'`` :math:`1 - \cos`,
``'positive_cosine'`` :math:`\max(0, \cos)` (the DMD reference's heterogeneous
representation term, which pushes student and teacher apart), and ``'kl'``
(:func:`softened_kl`, for class logits)."""

Metric = Literal["l1", "l2", "cosine", "positive_cosine"]
"""The :data:`DISTANCES` for any values (representations or logits)."""
METRICS: tuple[str, ...] = typing.get_args(Metric)
LogitMetric = Literal[Metric, "kl"]
"""The :data:`DISTANCES` for logits: :data:`METRICS` and ``'kl'``."""
LOGIT_METRICS: tuple[str, ...] = typing.get_args(LogitMetric)

ReprReduction = Literal["per_sample", "batch_means"]
"""How :func:`graph_distillation_loss` averages over the batch."""
REPR_REDUCTIONS: tuple[str, ...] = typing.get_args(ReprReduction)

MarginReduction = Literal["triplet", "anchor"]
"""How :func:`margin_loss` averages its hinges."""
MARGIN_REDUCTIONS: tuple[str, ...] = typing.get_args(MarginReduction)


def graph_distillation_loss(
    student_values: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor,
    batch: Tensor,
    metric: LogitMetric = "l1",
    *,
    num_graphs: int | None = None,
    reduction: ReprReduction = "per_sample",
    modality: Tensor | None = None,
    temperature: float = 1.0,
    activation: KLActivation = "softmax",
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

    With ``reduction="batch_means"`` (the DMD reference's ``min_cosine``; docs/guide/dmd.md,
    difference 7) each edge type :math:`k` (teacher modality, student modality)
    contributes the product of batch means instead, which drops the per-sample weighting:

    .. math::
        \mathcal{L} = \sum_{k} \Big(\frac{1}{B}\sum_{b} w_{b,k}\Big)
        \Big(\operatorname{mean}_{b} d_{b,k}\Big),

    the mean over the samples that have the edge (a sample without it adds
    :math:`w = 0`).

    Args:
        student_values (Tensor): ``(N, D)`` the value of every node; each edge
            compares its student's value with its teacher's (detached).
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student.
        edge_weight (Tensor): ``(E,)`` distillation weight of every edge.
        batch (Tensor): ``(N,)`` long, the graph (sample) of every node.
        metric (str, optional): One of :data:`DISTANCES`: ``'l1'``, ``'l2'``,
            ``'cosine'``, ``'positive_cosine'``, ``'kl'``. (default: ``'l1'``)
        num_graphs (int, optional): The number of graphs ``B`` to average over;
            :obj:`None` infers ``batch.max() + 1`` (one device sync).
            (default: :obj:`None`)
        reduction (str, optional): ``"per_sample"`` or ``"batch_means"`` (see above).
            (default: ``"per_sample"``)
        modality (Tensor, optional): ``(N,)`` long, the modality of every node; needed
            by ``"batch_means"``. (default: :obj:`None`)
        temperature (float, optional): :math:`\tau` of ``metric='kl'``.
            (default: ``1.0``)
        activation (str, optional): ``"softmax"`` or ``"sigmoid"`` distributions of
            ``metric='kl'`` (:func:`softened_kl`). (default: ``"softmax"``)

    Returns:
        Tensor: The scalar loss.
    """
    if reduction not in REPR_REDUCTIONS:
        raise ValueError(f"graph_distillation_loss: reduction must be 'per_sample' or "
                         f"'batch_means', found {reduction!r}.")
    if reduction == "batch_means" and modality is None:
        raise ValueError("graph_distillation_loss: reduction='batch_means' needs the "
                         "modality of every node (modality=...).")
    if metric not in DISTANCES:
        raise ValueError(
            f"graph_distillation_loss: metric must be one of {sorted(DISTANCES)}, "
            f"found {metric!r}."
        )
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 1
    teacher, student = edge_index
    options = {"temperature": temperature, "activation": activation} if metric == "kl" else {}
    distance = DISTANCES[metric](student_values[student], student_values[teacher].detach(),
                                 **options)  # (E,)
    if reduction == "batch_means":
        edge_type, num_types = _edge_types(edge_index, modality)  # (E,)
        weight_mean = scatter(edge_weight, edge_type, dim=0, dim_size=num_types,
                              reduce="sum") / num_graphs  # (K,)
        distance_mean = scatter(distance, edge_type, dim=0, dim_size=num_types,
                                reduce="mean")  # (K,)
        return (weight_mean * distance_mean).sum()
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
        learned (Tensor): ``(E,)`` learned edge weight :math:`E` (``edges.learned`` of
            :class:`~dhmd_graph.nn.DynamicGraphDistill` with ``return_parts=True``).
        prior (Tensor): ``(E,)`` prior edge weight :math:`p`.
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student.
        batch (Tensor): ``(N,)`` long, the graph (sample) of every node.
        num_graphs (int): The number of graphs ``B``.
        modality (Tensor): ``(N,)`` long, the modality index of every node.

    Returns:
        Tensor: The scalar regulariser (unweighted; the reference weight 10 lives in
        the config).
    """
    edge_type, num_types = _edge_types(edge_index, modality)  # (E,)
    cell = batch[edge_index[1]] * num_types + edge_type  # (E,) one cell per (graph, type)
    difference = scatter(
        learned - prior, cell, dim=0, dim_size=num_graphs * num_types, reduce="sum"
    ).view(num_graphs, num_types)  # (B, M*M)
    return difference.mean(dim=0).pow(2).sum()


EDGE_TARGETS = ("teacher_error", "error_gain")
"""The per-sample edge targets of :func:`edge_target_loss`."""


def edge_target_loss(
    learned: Tensor,
    errors: Tensor,
    edge_index: Tensor,
    group: Tensor,
    num_graphs: int,
    batch: Tensor,
    target: str = "teacher_error",
    temperature: float = 0.5,
) -> Tensor:
    r"""Ties the learned edge weights :math:`E` to the teachers' quality on each sample
    (ours): the KL divergence from a target distribution over the same softmax groups,

    .. math::
        q_{i \rightarrow j} = \operatorname{softmax}_{\mathcal{G}}
        \big(t_{i \rightarrow j} / \tau\big),
        \qquad
        \mathcal{L}_{edge} = \frac{1}{B} \sum_{b} \sum_{i \rightarrow j \in
        \mathcal{E}_b} q_{i \rightarrow j} \big(\log q_{i \rightarrow j} -
        \log E_{i \rightarrow j}\big),

    with :math:`t_{i \rightarrow j} = -\ell_i` (``"teacher_error"``: a teacher weighs
    by its own error on this sample) or :math:`t_{i \rightarrow j} = \ell_j - \ell_i`
    (``"error_gain"``: by how much better than its student it is; the same as
    ``"teacher_error"`` when each student's teachers form a group), :math:`\ell` the
    nodes' **detached** per-sample task errors (:func:`task_errors` of their logits).
    Unlike the distillation loss, it does not reward agreement: two modalities wrong
    in the same way get little weight.

    Args:
        learned (Tensor): ``(E,)`` learned edge weight :math:`E` (a distribution per
            group).
        errors (Tensor): ``(N,)`` per-node task error :math:`\ell` (detached here).
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student.
        group (Tensor): ``(E,)`` long, the softmax group of every edge (the GD-Unit's:
            the sample, or the student node).
        num_graphs (int): The number of graphs ``B``.
        batch (Tensor): ``(N,)`` long, the graph (sample) of every node.
        target (str, optional): ``"teacher_error"`` or ``"error_gain"``.
            (default: ``"teacher_error"``)
        temperature (float, optional): :math:`\tau > 0`, in units of the error.
            (default: ``0.5``)

    Returns:
        Tensor: The scalar loss (zero where :math:`E = q`).
    """
    if target not in EDGE_TARGETS:
        raise ValueError(f"edge_target_loss: target must be one of {EDGE_TARGETS}, found "
                         f"{target!r}.")
    if temperature <= 0:
        raise ValueError(f"edge_target_loss: temperature must be positive, found "
                         f"{temperature}.")
    teacher, student = edge_index
    errors = errors.detach()
    logit = -errors[teacher] if target == "teacher_error" else errors[student] - errors[teacher]
    size = int(group.max()) + 1 if group.numel() > 0 else 1
    goal = softmax(logit / temperature, group, num_nodes=size)  # (E,) q per group
    kl = goal * (torch.log(goal + LOG_EPS) - torch.log(learned + LOG_EPS))  # (E,)
    per_graph = scatter(kl, batch[student], dim=0, dim_size=num_graphs, reduce="sum")  # (B,)
    return per_graph.mean()


def _edge_types(edge_index: Tensor, modality: Tensor) -> tuple[Tensor, int]:
    """``(E,)`` the type ``teacher_modality * M + student_modality`` of every edge, and
    the number of types ``M * M``."""
    teacher, student = edge_index
    num_modalities = int(modality.max()) + 1 if modality.numel() > 0 else 1
    return modality[teacher] * num_modalities + modality[student], num_modalities**2


# Task, self-regression and decoupling ##################################################


def task_loss(prediction: Tensor, labels: Tensor, present: Tensor | None = None,
              task: str = "regression", class_weights: Tensor | None = None) -> Tensor:
    r"""The task loss, summed over modalities and averaged over the batch.

    With one prediction per sample it is :math:`\frac{1}{B}\sum_b \ell(\hat{y}_b,
    y_b)`; with one per modality it is :math:`\frac{1}{B}\sum_{b, m}
    [m \text{ present in } b]\,\ell(\hat{y}_{b,m}, y_b)` (the reference's sum of the
    per-modality losses when all modalities are present). The per-sample loss
    :math:`\ell` follows the task:

    * ``"regression"``: :math:`|\hat{y} - y|` (L1, the reference's);
    * ``"multiclass"``: the cross-entropy :math:`-w_y \log \mathrm{softmax}(
      \hat{\mathbf{y}})_y` of the :math:`C` logits, :math:`w` the class weights;
    * ``"multilabel"``: the mean over the :math:`C` labels of the binary
      cross-entropy with logits, :math:`-\big(w_c\, y_c \log\sigma(\hat{y}_c) +
      (1 - y_c)\log(1 - \sigma(\hat{y}_c))\big)`, :math:`w` the positive weights;
    * ``"binary"``: the same for one logit.

    Weighted terms are averaged over the batch, not divided by the sum of the weights.

    Args:
        prediction (Tensor): ``(B,)`` or ``(B, M)`` scores or logits (``regression``,
            ``binary``); ``(B, C)`` or ``(B, M, C)`` logits (``multiclass``,
            ``multilabel``).
        labels (Tensor): ``(B,)`` scores (``regression``), ``(B,)`` class indices
            (``multiclass``; 0 or 1 for ``binary``) or ``(B, C)`` multi-hot rows
            (``multilabel``).
        present (Tensor, optional): ``(B, M)`` bool, which modalities count.
            (default: :obj:`None`, all)
        task (str, optional): One of ``"regression"``, ``"multiclass"``,
            ``"multilabel"``, ``"binary"``. (default: ``"regression"``)
        class_weights (Tensor, optional): ``(C,)`` class weights (``multiclass``) or
            positive weights (``multilabel``; ``(1,)`` for ``binary``).
            (default: :obj:`None`)

    Returns:
        Tensor: The scalar loss.
    """
    error = task_errors(prediction, labels, task, class_weights)  # (B, M')
    if present is not None:
        error = error * present.to(error.dtype)
    return error.sum() / prediction.shape[0]


def task_errors(prediction: Tensor, labels: Tensor, task: str = "regression",
                class_weights: Tensor | None = None) -> Tensor:
    r"""The per-sample task loss :math:`\ell` of :func:`task_loss`, before any
    reduction: ``(B, M)`` for one prediction per modality, ``(B, 1)`` for one per sample.
    Arguments as in :func:`task_loss`."""
    loss = task_spec(task).loss
    batch_size = prediction.shape[0]
    if loss == "cross_entropy":  # (B, [M,] C) logits, (B,) classes
        logits = prediction.reshape(batch_size, -1, prediction.shape[-1])  # (B, M', C)
        target = labels.long().view(-1, 1).expand(-1, logits.shape[1])  # (B, M')
        error = F.cross_entropy(logits.transpose(1, 2), target, weight=class_weights,
                                reduction="none")  # (B, M')
    elif task_spec(task).per_class:  # (B, [M,] C) logits, (B, C) multi-hot
        logits = prediction.reshape(batch_size, -1, prediction.shape[-1])  # (B, M', C)
        target = labels.to(logits.dtype).unsqueeze(1).expand_as(logits)
        error = F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=class_weights, reduction="none").mean(dim=-1)
    else:  # one output: (B,) or (B, M)
        target = labels.to(prediction.dtype).view(-1, *([1] * (prediction.dim() - 1)))
        if loss == "binary_cross_entropy":
            error = F.binary_cross_entropy_with_logits(
                prediction, target.expand_as(prediction), pos_weight=class_weights,
                reduction="none")
        else:
            error = (prediction - target).abs()
        error = error.reshape(batch_size, -1)  # (B, M')
    return error


def _step_weight(lengths: Tensor, steps: int, present: Tensor | None) -> Tensor:
    """``(B, T)`` float, 1 at the valid steps of the samples where the modality is present."""
    mask = torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
    if present is not None:
        mask = mask & present.unsqueeze(1)
    return mask.float()


def self_regression_loss(
    prediction: list[Tensor],
    target: list[Tensor],
    lengths: list[Tensor],
    present: Tensor | None = None,
) -> Tensor:
    r"""Masked mean squared error summed over modalities,
    :math:`\sum_m \mathrm{MSE}(\mathbf{P}_m, \mathbf{Q}_m)` over the valid steps.

    The reconstruction loss :math:`\mathcal{L}_{rec}` compares
    :math:`\hat{\mathbf{X}}_m` with :math:`\tilde{\mathbf{X}}_m`; the cycle loss
    :math:`\mathcal{L}_{cyc}` compares :math:`\mathbf{s}_m` with :math:`\mathbf{s}^r_m`.

    Args:
        prediction (list[Tensor]): Per modality ``(B, T_m, C)``.
        target (list[Tensor]): Per modality ``(B, T_m, C)``.
        lengths (list[Tensor]): Per modality ``(B,)`` true lengths.
        present (Tensor, optional): ``(B, M)`` bool, which modalities count.
            (default: :obj:`None`, all)

    Returns:
        Tensor: The scalar loss.
    """
    return _sum_of_step_means(prediction, target, lengths, present,
                              lambda p, q: (p - q).pow(2).mean(dim=-1))


def orthogonality_loss(
    private: list[Tensor],
    shared: list[Tensor],
    lengths: list[Tensor],
    present: Tensor | None = None,
) -> Tensor:
    r"""Pushes heterogeneous and homogeneous features apart, per time step:
    :math:`\sum_m \operatorname{mean}_{(b, t)\ \mathrm{valid}}
    \max(0, \cos(\mathbf{s}_{m,b,t}, \mathbf{c}_{m,b,t}))`.

    Args:
        private (list[Tensor]): Per modality :math:`\mathbf{s}_m` ``(B, T_m, d)``.
        shared (list[Tensor]): Per modality :math:`\mathbf{c}_m` ``(B, T_m, d)``.
        lengths (list[Tensor]): Per modality ``(B,)`` true lengths.
        present (Tensor, optional): ``(B, M)`` bool, which modalities count.
            (default: :obj:`None`, all)

    Returns:
        Tensor: The scalar loss.
    """
    return _sum_of_step_means(private, shared, lengths, present,
                              lambda s, c: F.cosine_similarity(s, c, dim=-1).clamp_min(0.0))


def _sum_of_step_means(
    first: list[Tensor],
    second: list[Tensor],
    lengths: list[Tensor],
    present: Tensor | None,
    distance: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    r""":math:`\sum_m` the mean of ``distance(first[m], second[m])`` ``(B, T_m)`` over the
    valid steps of the samples where modality ``m`` is present."""
    total = first[0].new_zeros(())
    for m, (a, b, length) in enumerate(zip(first, second, lengths, strict=True)):
        weight = _step_weight(length, a.shape[1], None if present is None else present[:, m])
        total = total + (distance(a, b) * weight).sum() / weight.sum().clamp_min(1.0)
    return total


def margin_loss(
    embeddings: Tensor,
    labels: Tensor,
    present: Tensor | None = None,
    scale: float = 0.15,
    reduction: MarginReduction = "triplet",
) -> Tensor:
    r"""The triplet margin loss of DMD on the homogeneous embeddings of all
    ``B * M`` (sample, modality) pairs of a batch.

    Every vector :math:`i` is an anchor; positives :math:`j \ne i` carry exactly the
    same label, negatives :math:`k` another label, and each triplet has the hinge
    :math:`h_{ijk} = \max\left(0,\ s\,|y_i - y_k| - \cos(\mathbf{r}_i, \mathbf{r}_j)
    + \cos(\mathbf{r}_i, \mathbf{r}_k)\right)`. With ``reduction="triplet"`` (ours)
    every triplet of the batch counts alike,

    .. math::
        \mathcal{L}_{mar} = \operatorname{mean}_{(i, j, k)} h_{ijk};

    with ``reduction="anchor"`` (the DMD reference's ``HingeLoss``; docs/guide/dmd.md,
    difference 5) each anchor's hinges are averaged first, then the anchors that have both a
    positive and a negative,
    :math:`\mathcal{L}_{mar} = \operatorname{mean}_i \operatorname{mean}_{(j, k)} h_{ijk}`,
    so an anchor with few triplets weighs as much as one with many.

    Zero when the batch has no triplet.

    Labels may be vectors ``(B, L)``: then :math:`|y_i - y_k|` is their L1 distance
    and positives carry the same vector. Classification passes one-hot class vectors
    (two classes are 2 apart) or multi-hot rows (the number of labels that differ).

    Args:
        embeddings (Tensor): ``(B, M, d)`` homogeneous embeddings.
        labels (Tensor): ``(B,)`` regression labels or ``(B, L)`` label vectors.
        present (Tensor, optional): ``(B, M)`` bool, which vectors take part.
            (default: :obj:`None`, all)
        scale (float, optional): Margin :math:`s` per unit of label difference.
            (default: :obj:`0.15`)
        reduction (str, optional): ``"triplet"`` or ``"anchor"`` (see above).
            (default: ``"triplet"``)

    Returns:
        Tensor: The scalar loss.
    """
    if reduction not in MARGIN_REDUCTIONS:
        raise ValueError(f"margin_loss: reduction must be 'triplet' or 'anchor', found "
                         f"{reduction!r}.")
    num_modalities = embeddings.shape[1]
    vectors = F.normalize(embeddings.flatten(0, 1), dim=-1)  # (N, d)
    label = labels.reshape(len(labels), -1).to(vectors.dtype).repeat_interleave(
        num_modalities, dim=0)  # (N, L)
    valid = (
        torch.ones(len(label), dtype=torch.bool, device=label.device) if present is None
        else present.reshape(-1)
    )  # (N,)
    cosine = vectors @ vectors.t()  # (N, N)
    pair = valid.unsqueeze(0) & valid.unsqueeze(1)  # (N, N)
    difference = (label.unsqueeze(1) - label.unsqueeze(0)).abs().sum(dim=-1)  # (N, N)
    same = difference == 0  # (N, N)
    eye = torch.eye(len(label), dtype=torch.bool, device=label.device)
    positive = pair & same & ~eye  # (N, N) [anchor, positive]
    negative = pair & ~same  # (N, N) [anchor, negative]
    margin = scale * difference  # (N, N) [anchor, negative]
    hinge = (margin.unsqueeze(1) - cosine.unsqueeze(2) + cosine.unsqueeze(1)).clamp_min(0.0)
    triplet = (positive.unsqueeze(2) & negative.unsqueeze(1)).to(hinge.dtype)  # (N, N, N)
    if reduction == "triplet":
        return (hinge * triplet).sum() / triplet.sum().clamp_min(1.0)
    count = triplet.sum(dim=(1, 2))  # (N,) triplets per anchor
    per_anchor = (hinge * triplet).sum(dim=(1, 2)) / count.clamp_min(1.0)  # (N,)
    return per_anchor.sum() / (count > 0).sum().clamp_min(1).to(hinge.dtype)


# Modality-shared dictionary: anti-collapse ##########################################


def dictionary_usage_loss(activation: Tensor, present: Tensor | None = None) -> Tensor:
    r"""The anti-collapse term of a dictionary: how far the batch-mean activation
    is from using all atoms evenly,

    .. math::
        \mathcal{L}_{use} = \log K - H\left(\operatorname{mean}_{(b, m)}
        \mathbf{a}_{b,m}\right) \in [0, \log K].

    Minimising it maximises the entropy of the average activation, so different
    samples and modalities spread over the atoms, while each activation may stay
    peaked.

    Args:
        activation (Tensor): ``(B, M, K)`` activations.
        present (Tensor, optional): ``(B, M)`` bool, which activations count.
            (default: :obj:`None`, all)

    Returns:
        Tensor: The scalar loss.
    """
    atoms = activation.shape[-1]
    weight = activation.new_ones(activation.shape[:-1]) if present is None else present.float()
    mean = (activation * weight.unsqueeze(-1)).sum(dim=(0, 1)) / weight.sum().clamp_min(1.0)
    entropy = -(mean * torch.log(mean + LOG_EPS)).sum()
    return math.log(atoms) - entropy


# Modality-shared dictionary (DHMD's published structure, our loss design) #############


def dictionary_contrastive_loss(
    reconstruction: Tensor,
    present: Tensor | None = None,
    temperature: float = 0.1,
) -> Tensor:
    r"""The contrastive loss on the reconstructions of a modality-shared dictionary
    (:math:`\mathcal{L}_{ctr}`; InfoNCE: DHMD's figure draws a contrastive loss on the
    dictionary outputs without saying which; this is our reading).

    The same sample's other modalities are the positives, the other samples the
    negatives: for every ordered pair of modalities :math:`m \ne n` and sample
    :math:`b` where both are present,

    .. math::
        \ell_{b, m \rightarrow n} = -\log \frac{\exp(\cos(\mathbf{z}_{b,m},
        \mathbf{z}_{b,n}) / \tau)}{\sum_{c\,:\,n \text{ present in } c}
        \exp(\cos(\mathbf{z}_{b,m}, \mathbf{z}_{c,n}) / \tau)},
        \qquad
        \mathcal{L}_{ctr} = \operatorname{mean}_{(b, m, n)} \ell_{b, m \rightarrow n},

    CLIP's symmetric loss generalised to :math:`M` modalities: each anchor is
    contrasted with the candidates of the positive's modality, so the loss aligns
    modalities with each other rather than separating modalities. Absent modalities
    are neither anchors, positives nor negatives; a pair with no other sample to
    contrast with contributes zero, and a batch without any pair gives zero.

    Collapse: if all samples share one reconstruction, every term is
    :math:`\log(\#\text{candidates})`, a uniform guess among the candidates; the
    loss falls below that only where samples are told apart, so the negatives guard
    against collapse by themselves. :func:`dictionary_usage_loss` on the
    activations can be added to keep all atoms in use.

    Args:
        reconstruction (Tensor): ``(B, M, F)`` dictionary reconstructions
            :math:`\mathbf{z}` (compared by cosine, so their scale does not matter).
        present (Tensor, optional): ``(B, M)`` bool, which modalities take part.
            (default: :obj:`None`, all)
        temperature (float, optional): :math:`\tau` (> 0). (default: ``0.1``)

    Returns:
        Tensor: The scalar loss.
    """
    if temperature <= 0:
        raise ValueError(f"dictionary_contrastive_loss: temperature must be positive, "
                         f"found {temperature}.")
    batch_size, num_modalities, _ = reconstruction.shape
    if present is None:
        present = torch.ones(batch_size, num_modalities, dtype=torch.bool,
                             device=reconstruction.device)
    z = F.normalize(reconstruction, dim=-1)  # (B, M, F)
    # logits[m, n, b, c] = cos(z_{b,m}, z_{c,n}) / tau: anchor b in modality m, candidate c in n
    logits = torch.einsum("bmf,cnf->mnbc", z, z) / temperature  # (M, M, B, B)
    candidate = present.t().reshape(1, num_modalities, 1, batch_size)  # (1, M, 1, B) over (n, c)
    log_probability = logits.masked_fill(~candidate, float("-inf")).log_softmax(dim=-1)
    positive = log_probability.diagonal(dim1=2, dim2=3)  # (M, M, B) the pairs c = b
    pair = present.t().unsqueeze(1) & present.t().unsqueeze(0)  # (M, M, B) m and n in b
    pair = pair & ~torch.eye(num_modalities, dtype=torch.bool,
                             device=present.device).unsqueeze(-1)
    terms = torch.where(pair, -positive, torch.zeros_like(positive))  # (M, M, B)
    return terms.sum() / pair.sum().clamp_min(1)


def supervised_contrastive_loss(
    vectors: Tensor,
    labels: Tensor,
    present: Tensor | None = None,
    temperature: float = 0.1,
    tolerance: float = 0.5,
    cross_modal: bool = True,
) -> Tensor:
    r"""A label-aware contrastive loss on per-modality vectors (ours): supervised
    contrastive learning (Khosla et al., 2020) over the :math:`B M` (sample, modality)
    vectors of a batch, positives by label rather than by sample.

    For an anchor :math:`a = (b, m)`, the candidates :math:`C(a)` are the other present
    vectors (with ``cross_modal=False`` only those of modality :math:`m`: modalities are
    never compared with each other), the positives :math:`P(a) \subseteq C(a)` those
    whose label is within ``tolerance`` of :math:`y_b` (L1 distance, so the same
    sample's other modalities are always positives when compared),

    .. math::
        \ell_a = -\frac{1}{|P(a)|} \sum_{p \in P(a)} \log
        \frac{\exp(\cos(\mathbf{z}_a, \mathbf{z}_p) / \tau)}
        {\sum_{k \in C(a)} \exp(\cos(\mathbf{z}_a, \mathbf{z}_k) / \tau)},
        \qquad
        \mathcal{L} = \operatorname{mean}_{a : |P(a)| > 0}\, \ell_a,

    zero when no anchor has a positive. Unlike
    :func:`dictionary_contrastive_loss`, which asks each vector to identify its own
    sample, this pulls together what has the same label, which is what the task needs.

    Args:
        vectors (Tensor): ``(B, M, F)`` the vectors :math:`\mathbf{z}` (by cosine).
        labels (Tensor): ``(B,)`` scores or ``(B, L)`` label vectors (one-hot classes,
            multi-hot rows).
        present (Tensor, optional): ``(B, M)`` bool, which vectors take part.
            (default: :obj:`None`, all)
        temperature (float, optional): :math:`\tau > 0`. (default: ``0.1``)
        tolerance (float, optional): The largest label distance of a positive.
            (default: ``0.5``)
        cross_modal (bool, optional): Whether vectors of different modalities are
            compared. (default: :obj:`True`)

    Returns:
        Tensor: The scalar loss.
    """
    if temperature <= 0 or tolerance < 0:
        raise ValueError(f"supervised_contrastive_loss: temperature must be positive and "
                         f"tolerance >= 0, found {temperature} and {tolerance}.")
    batch_size, num_modalities, _ = vectors.shape
    z = F.normalize(vectors.flatten(0, 1), dim=-1)  # (N, F), node b * M + m
    label = labels.reshape(batch_size, -1).to(z.dtype).repeat_interleave(
        num_modalities, dim=0)  # (N, L)
    valid = (torch.ones(len(z), dtype=torch.bool, device=z.device) if present is None
             else present.reshape(-1))  # (N,)
    modality = torch.arange(num_modalities, device=z.device).repeat(batch_size)  # (N,)
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    candidate = valid.unsqueeze(0) & valid.unsqueeze(1) & ~eye  # (N, N) [anchor, candidate]
    if not cross_modal:
        candidate &= modality.unsqueeze(0) == modality.unsqueeze(1)
    distance = (label.unsqueeze(1) - label.unsqueeze(0)).abs().sum(dim=-1)  # (N, N)
    positive = candidate & (distance <= tolerance)  # (N, N)
    logits = (z @ z.t() / temperature).masked_fill(~candidate, float("-inf"))  # (N, N)
    # An anchor without candidates gets a dummy finite entry, so no row is all -inf
    # (whose log-softmax and gradient would be NaN); it has no positive and counts not.
    logits = logits.masked_fill(eye & ~candidate.any(dim=-1, keepdim=True), 0.0)
    log_probability = logits.log_softmax(dim=-1)  # (N, N), -inf off the candidates
    log_probability = torch.where(positive, log_probability, torch.zeros_like(log_probability))
    count = positive.sum(dim=-1)  # (N,)
    per_anchor = -log_probability.sum(dim=-1) / count.clamp_min(1)  # (N,)
    anchors = count > 0
    return (per_anchor * anchors).sum() / anchors.sum().clamp_min(1)
