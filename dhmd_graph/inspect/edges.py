r"""Who teaches whom: the graph-distillation edge weights of a trained model.

:func:`edge_graphs` turns the per-sample edge weights of a split (from
:func:`~dhmd_graph.inspect.spaces.collect_outputs`) into one :class:`networkx.DiGraph`
per decoupled space whose nodes are the modalities and whose edges
``teacher -> student`` carry the mean and standard deviation of the weight over the
samples; :func:`plot_edge_graphs` draws the learned weights of both spaces side by side
and, below them, their fixed priors. :func:`edge_history` reads the mean edge weights
that training logged every epoch (``log.jsonl``, read by
:meth:`TrainedRun.log <dhmd_graph.trained.TrainedRun.log>`) and :func:`plot_edge_evolution` draws
them. :func:`prior_agreement` says how far the learned weights :math:`E` are from the prior
alone and from a uniform graph, and how much they vary between samples: a graph whose
:math:`E` sits on the prior in every sample routes by the prior, not by the sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import networkx as nx
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dhmd_graph.inspect.spaces import SpaceOutputs, SplitOutputs, modality_colors

__all__ = [
    "EDGE_KEY",
    "EdgeHistory",
    "PriorAgreement",
    "edge_graph",
    "edge_graphs",
    "edge_history",
    "plot_edge_evolution",
    "plot_edge_graphs",
    "prior_agreement",
    "teacher_share",
]

EDGE_KEY = re.compile(r"^(?:train/)?edge/(?P<space>[^/]+)/(?P<edge>[^/]+->[^/]+)$")
"""A mean edge weight in a training log: ``train/edge/<space>/<teacher>-><student>``."""
EDGE_COLORMAP = "viridis"


def _masked_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and standard deviation over axis 0, ignoring ``nan`` (0 where empty)."""
    present = ~np.isnan(values)
    count = present.sum(0)
    filled = np.where(present, values, 0.0)
    safe = np.maximum(count, 1)
    mean = filled.sum(0) / safe
    variance = np.where(present, (filled - mean) ** 2, 0.0).sum(0) / safe
    return count, mean, np.sqrt(variance)


def edge_graph(space: SpaceOutputs, modalities: Iterable[str], *, name: str = "") -> nx.DiGraph:
    r"""The edge weights of one space over a split as a :class:`networkx.DiGraph`.

    Every modality is a node (attribute ``index``, its node order); every edge
    ``teacher -> student`` present in at least one sample carries

    - ``mean``, ``std``: of the distillation weight :math:`w` over the samples whose
      graph has the edge, and ``count``, their number;
    - with a prior, also ``prior`` and ``learned``: the means of its prior part
      :math:`p` and of its learned part :math:`E = w - p`.

    The graph attributes ``space``, ``normalize`` and ``num_samples`` say where it comes
    from. With ``normalize="graph"`` and every edge in every sample, the ``mean``
    weights sum to one (two with a prior: :math:`E` and :math:`p` each sum to one);
    with ``"target"``, the ``mean`` weights into each student sum to one.

    Args:
        space (SpaceOutputs): One space of :func:`~dhmd_graph.inspect.collect_outputs`.
        modalities (Iterable[str]): The ``M`` modality names, in node order.
        name (str, optional): The space's name, stored as the graph attribute
            ``space``. (default: ``""``)
    """
    modalities = list(modalities)
    count, mean, std = _masked_moments(space.edge_weight)  # (M, M) each
    graph = nx.DiGraph(space=name, normalize=space.normalize,
                       num_samples=int(space.edge_weight.shape[0]))
    graph.add_nodes_from((modality, {"index": i}) for i, modality in enumerate(modalities))
    if space.edge_prior is not None:
        _, prior, _ = _masked_moments(space.edge_prior)
        _, learned, _ = _masked_moments(space.edge_weight - space.edge_prior)
    for teacher, student in zip(*np.nonzero(count), strict=True):
        attributes = {"mean": float(mean[teacher, student]), "std": float(std[teacher, student]),
                      "count": int(count[teacher, student])}
        if space.edge_prior is not None:
            attributes["prior"] = float(prior[teacher, student])
            attributes["learned"] = float(learned[teacher, student])
        graph.add_edge(modalities[teacher], modalities[student], **attributes)
    return graph


def edge_graphs(outputs: SplitOutputs) -> dict[str, nx.DiGraph]:
    """:func:`edge_graph` of every space of ``outputs``, keyed by the space's name."""
    return {
        name: edge_graph(space, outputs.modalities, name=name)
        for name, space in outputs.spaces.items()
    }


def _has_prior(graph: nx.DiGraph) -> bool:
    return any("prior" in data for *_, data in graph.edges(data=True))


def _draw_graph(axis, graph: nx.DiGraph, key: str, norm: Normalize, color, style: str) -> None:
    """One space's graph on ``axis``: arrows sized (and coloured by ``color``) by ``key``."""
    position = nx.circular_layout(graph)
    nx.draw_networkx_nodes(graph, position, ax=axis, node_size=2200,
                           node_color=modality_colors(graph.number_of_nodes()), alpha=0.9)
    nx.draw_networkx_labels(graph, position, ax=axis, font_size=10)
    values = [value for *_, value in graph.edges(data=key)]
    curve = "arc3,rad=0.18"
    nx.draw_networkx_edges(
        graph, position, ax=axis, node_size=2200, arrowstyle="-|>", arrowsize=18,
        width=[1.0 + 7.0 * norm(value) for value in values],
        edge_color=[color(norm(value)) for value in values], connectionstyle=curve, style=style,
    )
    nx.draw_networkx_edge_labels(
        graph, position, ax=axis, font_size=8, label_pos=0.35, connectionstyle=curve,
        edge_labels={(t, s): f"{value:.3f}" for t, s, value in graph.edges(data=key)},
    )
    axis.margins(0.15)
    axis.set_axis_off()


def plot_edge_graphs(graphs: Mapping[str, nx.DiGraph], *, show_prior: bool = True) -> Figure:
    r"""Draws the learned edge weights of the spaces side by side, and their priors below.

    Modalities sit on a circle in node order (the same place in every panel). Each
    edge ``teacher -> student`` is a curved arrow, so both directions of a pair stay
    visible. In the top row its width, colour and label are the mean *learned* weight
    :math:`E` (the ``learned`` attribute; ``mean`` for a graph without a prior, where
    :math:`w = E`), on one scale shared by all panels. When a graph has a prior, the
    row below shows the fixed prior :math:`p` of the same edges as dashed grey arrows
    (width and label :math:`p`, on a scale of its own): the distillation uses
    :math:`w = E + p`, and drawing the sum would show mostly the prior, which nothing
    learned.

    Args:
        graphs (Mapping[str, nx.DiGraph]): From :func:`edge_graphs`.
        show_prior (bool, optional): Add the row of priors (for graphs that have one).
            (default: :obj:`True`)
    """
    import matplotlib as mpl

    learned = {space: "learned" if _has_prior(graph) else "mean"
               for space, graph in graphs.items()}
    priors = show_prior and any(_has_prior(graph) for graph in graphs.values())
    highest = max((value for space, graph in graphs.items()
                   for *_, value in graph.edges(data=learned[space])), default=1.0)
    norm = Normalize(vmin=0.0, vmax=highest)
    colormap = mpl.colormaps[EDGE_COLORMAP]
    rows = 2 if priors else 1
    figure = Figure(figsize=(5.2 * len(graphs) + 1.0, 5.0 * rows), layout="constrained")
    axes = figure.subplots(rows, len(graphs), squeeze=False)
    for column, (space, graph) in enumerate(graphs.items()):
        axis = axes[0, column]
        _draw_graph(axis, graph, learned[space], norm, colormap, "solid")
        axis.set_title(f"{space}: mean learned edge weight E\n"
                       f"normalize={graph.graph.get('normalize')}, "
                       f"N={graph.graph.get('num_samples')}", fontsize=10)
        if not priors:
            continue
        axis = axes[1, column]
        if not _has_prior(graph):
            axis.set_axis_off()
            axis.set_title(f"{space}: no prior", fontsize=10)
            continue
        prior_norm = Normalize(vmin=0.0, vmax=max(p for *_, p in graph.edges(data="prior")))
        _draw_graph(axis, graph, "prior", prior_norm, lambda _: "0.45", "dashed")
        axis.set_title(f"{space}: fixed prior p (not learned; w = E + p)", fontsize=10)
    figure.colorbar(mpl.cm.ScalarMappable(norm, colormap), ax=list(axes[0]), shrink=0.7,
                    label="mean learned edge weight E (teacher → student)")
    return figure


class EdgeHistory(NamedTuple):
    r"""Mean edge weights per epoch, as logged by training.

    Attributes:
        epochs (np.ndarray): ``(T,)`` the epoch numbers.
        spaces (dict[str, dict[str, np.ndarray]]): Per space, per edge name
            ``"teacher->student"``, the ``(T,)`` mean weights (``nan`` where an epoch
            did not log the edge).
        best_epoch (int or None): The last epoch that improved the monitored
            validation metric, if the log says.
    """

    epochs: np.ndarray
    spaces: dict[str, dict[str, np.ndarray]]
    best_epoch: int | None


def edge_history(records: Iterable[Mapping]) -> EdgeHistory:
    r"""Collects the ``train/edge/<space>/<teacher>-><student>`` values of a log.

    Args:
        records (Iterable[Mapping]): Epoch records, e.g. :meth:`TrainedRun.log <dhmd_graph.trained.TrainedRun.log>`'s.
    """
    records = list(records)
    spaces: dict[str, dict[str, np.ndarray]] = {}
    for row, record in enumerate(records):
        for key, value in record.items():
            match = EDGE_KEY.match(key)
            if match is None:
                continue
            edges = spaces.setdefault(match["space"], {})
            edges.setdefault(match["edge"], np.full(len(records), np.nan))[row] = float(value)
    epochs = np.array([record.get("epoch", row + 1) for row, record in enumerate(records)])
    improved = [record["epoch"] for record in records if record.get("improved")]
    return EdgeHistory(epochs, spaces, improved[-1] if improved else None)


def plot_edge_evolution(history: EdgeHistory) -> Figure:
    r"""Draws every edge's mean weight per epoch, one panel per space.

    A dotted vertical line marks the selected (best validation) epoch.

    Args:
        history (EdgeHistory): From :func:`edge_history`.

    Raises:
        ValueError: If the log holds no edge weights.
    """
    if not history.spaces:
        raise ValueError(
            "plot_edge_evolution: the log holds no 'train/edge/<space>/<teacher>-><student>' "
            "values; train a model whose training_step returns its mean edge weights."
        )
    figure = Figure(figsize=(5.5 * len(history.spaces), 4.0), layout="constrained")
    axes = figure.subplots(1, len(history.spaces), squeeze=False, sharey=True)[0]
    for axis, (space, edges) in zip(axes, history.spaces.items(), strict=True):
        for name, values in edges.items():
            axis.plot(history.epochs, values, marker="o", markersize=3,
                      label=name.replace("->", " → "))
        if history.best_epoch is not None:
            axis.axvline(history.best_epoch, color="0.4", linestyle=":", label="selected epoch")
        axis.set_title(f"{space} graph")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    axes[0].set_ylabel("mean learned edge weight E")
    return figure


def _group_distance(first: np.ndarray, second: np.ndarray, normalize: str) -> np.ndarray:
    r"""Total-variation distance between two edge distributions in every softmax group.

    Args:
        first (np.ndarray), second (np.ndarray): ``(N, M, M)`` ``[sample, teacher,
            student]``, ``nan`` where there is no edge (the same cells in both).
        normalize (str): ``"graph"`` (one group per sample) or ``"target"`` (one per
            sample and student).

    Returns:
        np.ndarray: ``(G,)`` :math:`\tfrac12 \sum |a - b|` over each group's edges, for
        the groups that have an edge.
    """
    present = ~np.isnan(first)  # (N, M, M)
    gap = np.where(present, np.abs(np.nan_to_num(first) - np.nan_to_num(second)), 0.0)
    axes = (1, 2) if normalize == "graph" else 1
    has_edge = present.any(axis=axes)  # (N,) or (N, M)
    return 0.5 * gap.sum(axis=axes)[has_edge]


def _uniform(weight: np.ndarray, normalize: str) -> np.ndarray:
    """``(N, M, M)``: each edge of a group 1 / (the group's number of edges); ``nan`` off
    the edges."""
    present = ~np.isnan(weight)
    count = present.sum(axis=(1, 2), keepdims=True) if normalize == "graph" else \
        present.sum(axis=1, keepdims=True)
    return np.where(present, 1.0 / np.maximum(count, 1), np.nan)


def teacher_share(weight: np.ndarray) -> np.ndarray:
    r"""The share of a sample's edge weight that each modality sends as a teacher.

    .. math::
        s_{b,i} = \frac{\sum_j a_{b, i \rightarrow j}}{\sum_{k,j} a_{b, k \rightarrow j}}

    Args:
        weight (np.ndarray): ``(N, M, M)`` ``[sample, teacher, student]`` edge weights
            (the learned :math:`E`, the prior :math:`p`, or :math:`w`), ``nan`` off the
            edges.

    Returns:
        np.ndarray: ``(N, M)``, each row summing to one (``nan`` for a modality that
        teaches no edge of the sample).
    """
    present = ~np.isnan(weight)  # (N, M, M)
    outgoing = np.where(present, weight, 0.0).sum(axis=2)  # (N, M)
    total = outgoing.sum(axis=1, keepdims=True)  # (N, 1)
    share = outgoing / np.where(total > 0, total, 1.0)
    return np.where(present.any(axis=2), share, np.nan)


class PriorAgreement(NamedTuple):
    r"""How the learned edge weights :math:`E` of one space compare with the prior alone.

    Distances are total-variation distances between two edge distributions of a
    softmax group (a sample's graph, or a student's incoming edges with
    ``normalize="target"``), averaged over the groups: 0 the same weights, 1 disjoint.

    Attributes:
        to_prior (float): :math:`E` against the prior :math:`p` of the same edges;
            ``nan`` without a prior.
        to_uniform (float): :math:`E` against equal weights on every edge of the group.
        spread (float): :math:`E` of a sample against its mean over the split: how
            much the graph changes from sample to sample (0: the same graph for all).
        share (np.ndarray): ``(N, M)`` each teacher's share of the sample's
            :math:`E` (:func:`teacher_share`).
        prior_share (np.ndarray or None): ``(N, M)`` the same for :math:`p`.
    """

    to_prior: float
    to_uniform: float
    spread: float
    share: np.ndarray
    prior_share: np.ndarray | None


def prior_agreement(space: SpaceOutputs) -> PriorAgreement:
    r""":class:`PriorAgreement` of one space of
    :func:`~dhmd_graph.inspect.collect_outputs`.

    With a prior, :math:`E = w - p` (each of :math:`E` and :math:`p` sums to one per
    group); without one, :math:`E = w`.
    """
    prior = space.edge_prior  # (N, M, M) or None
    learned = space.edge_weight if prior is None else space.edge_weight - prior  # (N, M, M)
    _, mean, _ = _masked_moments(learned)  # (M, M)
    average = np.where(np.isnan(learned), np.nan, mean[None])  # (N, M, M)

    def distance(other: np.ndarray) -> float:
        values = _group_distance(learned, other, space.normalize)
        return float(values.mean()) if values.size else float("nan")

    return PriorAgreement(
        to_prior=float("nan") if prior is None else distance(prior),
        to_uniform=distance(_uniform(learned, space.normalize)),
        spread=distance(average),
        share=teacher_share(learned),
        prior_share=None if prior is None else teacher_share(prior),
    )
