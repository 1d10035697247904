r"""Did the graph learn something real? Edge weights against planted modality reliability.

The synthetic data can corrupt one modality of a sample (noise replaces its signal) and
records which as ``modality_reliability`` (see :mod:`dhmd_graph.data.synthetic`). A
dynamic graph that learned something real should route teaching away from a sample's
corrupted modality: the weight a modality *sends* as a teacher should be lower in the
samples where it is corrupted. :func:`edge_reliability` measures that per decoupled space
and teacher modality, from the dense edge weights of
:func:`~dhmd_graph.inspect.collect_outputs`; :func:`outgoing_weight` gives the per-sample
numbers it is built on. :func:`routing_accuracy` asks the per-sample question directly (is
the teacher that sends most a most reliable modality?), next to chance and the prior alone,
and :func:`plot_edge_reliability` draws the outgoing weights against the reliabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure

from dhmd_graph.errors import UserError
from dhmd_graph.inspect.spaces import SpaceOutputs, SplitOutputs, modality_colors

__all__ = ["PARTS", "RoutingAccuracy", "TeacherReliability", "edge_reliability",
           "outgoing_weight", "plot_edge_reliability", "routing_accuracy"]

PARTS = ("learned", "weight")
"""Which edge weight to read: the learned :math:`E` or the distillation weight
:math:`w = E + p`."""


class TeacherReliability(NamedTuple):
    r"""How one teacher modality's outgoing edge weight relates to its reliability.

    Attributes:
        teacher (str): The teacher modality.
        correlation (float): Pearson correlation over the samples between the teacher's
            outgoing weight and its reliability (the point-biserial correlation for 0/1
            reliabilities); positive when the graph listens to the modality more where it
            is reliable. ``nan`` where either is constant.
        reliable_mean (float): Mean outgoing weight over the samples where the modality
            is reliable (reliability above the threshold); ``nan`` if there is none.
        corrupted_mean (float): The same over the samples where it is not.
        reliable_count (int): The number of those reliable samples.
        corrupted_count (int): The number of those corrupted samples.
    """

    teacher: str
    correlation: float
    reliable_mean: float
    corrupted_mean: float
    reliable_count: int
    corrupted_count: int

    @property
    def difference(self) -> float:
        """``reliable_mean - corrupted_mean``: positive when teaching moves away from a
        corrupted modality."""
        return self.reliable_mean - self.corrupted_mean


def outgoing_weight(space: SpaceOutputs, part: str = "learned") -> np.ndarray:
    r"""The total weight every modality sends as a teacher, per sample.

    .. math::
        o_{b,i} = \sum_{j\,:\,i \rightarrow j \in \mathcal{E}_b} E_{b, i \rightarrow j}

    (or :math:`w` with ``part="weight"``), over the edges the sample's graph has.

    Args:
        space (SpaceOutputs): One space of :func:`~dhmd_graph.inspect.collect_outputs`.
        part (str, optional): ``"learned"`` (:math:`E = w - p`, the input-dependent part)
            or ``"weight"`` (:math:`w`). (default: ``"learned"``)

    Returns:
        np.ndarray: ``(N, M)`` indexed ``[sample, teacher]``; ``nan`` where the modality
        teaches no edge in that sample (e.g. it is absent).
    """
    if part not in PARTS:
        raise ValueError(f"outgoing_weight: part must be one of {PARTS}, found {part!r}.")
    weight = space.edge_weight  # (N, M, M) [sample, teacher, student], nan without an edge
    if part == "learned" and space.edge_prior is not None:
        weight = weight - space.edge_prior
    has_edge = ~np.isnan(weight)  # (N, M, M)
    total = np.where(has_edge, weight, 0.0).sum(axis=2)  # (N, M)
    return np.where(has_edge.any(axis=2), total, np.nan)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; ``nan`` (without a warning) if either is constant or empty."""
    if len(x) < 2:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    norm = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / norm) if norm > 0 else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def edge_reliability(
    space: SpaceOutputs,
    reliability: np.ndarray,
    modalities: Sequence[str],
    *,
    part: str = "learned",
    threshold: float = 0.5,
) -> dict[str, TeacherReliability]:
    r"""Per teacher modality, how its outgoing edge weight follows its planted
    reliability over the samples of a split.

    For teacher :math:`i`, over the samples where it teaches at least one edge, the
    correlation between :math:`o_{b,i}` (:func:`outgoing_weight`) and the reliability
    :math:`\rho_{b,i}`, and the mean :math:`o_{b,i}` where :math:`\rho_{b,i} >`
    ``threshold`` (reliable) and where not (corrupted).

    Args:
        space (SpaceOutputs): One space of :func:`~dhmd_graph.inspect.collect_outputs`.
        reliability (np.ndarray): ``(N, M)`` the reliability of every sample's modalities
            in the space's sample and modality order (e.g. ``SplitOutputs.extras[
            'modality_reliability']``): 1 reliable, 0 corrupted, or anything in between.
        modalities (Sequence[str]): The ``M`` modality names, in node order.
        part (str, optional): ``"learned"`` or ``"weight"``, see :func:`outgoing_weight`.
            (default: ``"learned"``)
        threshold (float, optional): Reliabilities above it count as reliable.
            (default: ``0.5``)

    Returns:
        dict[str, TeacherReliability]: Keyed by teacher modality, in node order.
    """
    outgoing = outgoing_weight(space, part)  # (N, M)
    reliability = np.asarray(reliability, dtype=np.float64)
    if reliability.shape != outgoing.shape or len(modalities) != outgoing.shape[1]:
        raise ValueError(
            f"edge_reliability: expected a reliability of shape (N, M) = {outgoing.shape} "
            f"for modalities {list(modalities)}, found shape {reliability.shape} and "
            f"{len(modalities)} modalities; pass the split's per-sample reliability in the "
            "model's modality order."
        )
    result = {}
    for i, teacher in enumerate(modalities):
        teaches = ~np.isnan(outgoing[:, i])  # (N,)
        weight, rho = outgoing[teaches, i], reliability[teaches, i]
        reliable = rho > threshold
        result[teacher] = TeacherReliability(
            teacher=teacher,
            correlation=_correlation(weight, rho),
            reliable_mean=_mean(weight[reliable]),
            corrupted_mean=_mean(weight[~reliable]),
            reliable_count=int(reliable.sum()),
            corrupted_count=int((~reliable).sum()),
        )
    return result


class RoutingAccuracy(NamedTuple):
    r"""How often a sample's top teacher is one of its most reliable modalities.

    Attributes:
        accuracy (float): Over the samples where every modality teaches, the share whose
            teacher with the largest outgoing learned weight :math:`E` has the sample's
            highest reliability (ties in reliability: any of the tied modalities counts).
        chance (float): The same for a teacher drawn at random (``1 / M`` without ties).
        prior (float): The same for the prior alone (its top teacher); ``nan`` without a
            prior. A fixed prior picks the same teacher in every sample.
        count (int): The number of samples scored.
    """

    accuracy: float
    chance: float
    prior: float
    count: int


def routing_accuracy(space: SpaceOutputs, reliability: np.ndarray) -> RoutingAccuracy:
    r""":class:`RoutingAccuracy` of one space over a split.

    Args:
        space (SpaceOutputs): One space of :func:`~dhmd_graph.inspect.collect_outputs`.
        reliability (np.ndarray): ``(N, M)`` the samples' modality reliabilities, as
            in :func:`edge_reliability`.
    """
    learned = outgoing_weight(space, "learned")  # (N, M)
    reliability = np.asarray(reliability, dtype=np.float64)
    if reliability.shape != learned.shape:
        raise UserError(f"routing_accuracy: expected a reliability of shape {learned.shape}, "
                         f"found {reliability.shape}; pass the split's per-sample "
                         "reliability in the model's modality order.")
    complete = ~np.isnan(learned).any(axis=1)  # (N,)
    rho = reliability[complete]  # (n, M)
    best = rho >= rho.max(axis=1, keepdims=True) - 1e-9  # (n, M) the most reliable ones

    def hits(weight: np.ndarray) -> float:
        if not len(weight):
            return float("nan")
        top = weight.argmax(axis=1)  # (n,)
        return float(best[np.arange(len(top)), top].mean())

    prior = None
    if space.edge_prior is not None:
        prior = np.where(np.isnan(space.edge_prior), 0.0, space.edge_prior).sum(axis=2)
    return RoutingAccuracy(
        accuracy=hits(learned[complete]),
        chance=float(best.mean()) if len(rho) else float("nan"),
        prior=float("nan") if prior is None else hits(prior[complete]),
        count=int(complete.sum()),
    )


def plot_edge_reliability(outputs: SplitOutputs, reliability: np.ndarray) -> Figure:
    r"""Each teacher's outgoing learned weight against its reliability, per sample.

    One panel per space; one colour per teacher modality, with its least-squares line.
    A graph that routes by the sample draws rising lines (more weight where the
    teacher is reliable); flat lines are a graph that ignores reliability. The title
    gives :func:`routing_accuracy` with chance and the prior alone.

    Args:
        outputs (SplitOutputs): From :func:`~dhmd_graph.inspect.collect_outputs`.
        reliability (np.ndarray): ``(N, M)`` as in :func:`edge_reliability`.
    """
    reliability = np.asarray(reliability, dtype=np.float64)
    colors = modality_colors(len(outputs.modalities))
    jitter = np.random.default_rng(0).uniform(-0.02, 0.02, size=reliability.shape)
    figure = Figure(figsize=(5.0 * len(outputs.spaces) + 0.5, 4.2), layout="constrained")
    axes = figure.subplots(1, len(outputs.spaces), squeeze=False, sharey=False)[0]
    for axis, (space, values) in zip(axes, outputs.spaces.items(), strict=True):
        outgoing = outgoing_weight(values, "learned")  # (N, M)
        for m, name in enumerate(outputs.modalities):
            keep = ~np.isnan(outgoing[:, m])
            x, y = reliability[keep, m], outgoing[keep, m]
            axis.scatter(x + jitter[keep, m], y, s=9, alpha=0.45, color=colors[m], label=name)
            if len(x) > 1 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                line = np.array([x.min(), x.max()])
                axis.plot(line, slope * line + intercept, color=colors[m], linewidth=2)
        routing = routing_accuracy(values, reliability)
        prior = "" if np.isnan(routing.prior) else f", prior alone {routing.prior:.2f}"
        axis.set_title(f"{space}: top teacher most reliable in {routing.accuracy:.2f}\n"
                       f"of {routing.count} samples (chance {routing.chance:.2f}{prior})",
                       fontsize=10)
        axis.set_xlabel("teacher's reliability in the sample")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small", title="teacher")
    axes[0].set_ylabel("teacher's outgoing learned weight E")
    return figure
