r"""Did the graph learn something real? Edge weights against planted modality reliability.

The synthetic data can corrupt one modality of a sample (noise replaces its signal) and
records which as ``modality_reliability`` (see :mod:`dhmd_graph.data.synthetic`). A
dynamic graph that learned something real should route teaching away from a sample's
corrupted modality: the weight a modality *sends* as a teacher should be lower in the
samples where it is corrupted. :func:`edge_reliability` measures that per decoupled space
and teacher modality, from the dense edge weights of
:func:`~dhmd_graph.inspect.collect_outputs`; :func:`outgoing_weight` gives the per-sample
numbers it is built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from dhmd_graph.inspect.spaces import SpaceOutputs

__all__ = ["PARTS", "TeacherReliability", "edge_reliability", "outgoing_weight"]

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
