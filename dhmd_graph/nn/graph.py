r"""The modality graph: ``B`` disjoint graphs of ``M`` modality nodes each.

Every sample of a batch is one small directed graph whose nodes are its ``M``
modalities and whose edges ``teacher -> student`` say who distils into whom.
A batch is their disjoint union, laid out as a PyG mini-batch: node ``b * M + m``
is modality ``m`` of sample ``b``, ``batch[b * M + m] = b`` and
``modality[b * M + m] = m``. The edges of sample ``b`` are contiguous in
``edge_index`` and listed in the same order for every sample.

Missing modalities are handled as a graph operation: :func:`restrict_to_present`
drops the edges that touch an absent node and keeps the node itself (isolated),
so node tensors keep their ``(B * M, ...)`` shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["ModalityGraph", "modality_graph", "restrict_to_present"]


class ModalityGraph(NamedTuple):
    r"""The connectivity of ``B`` modality graphs with ``M`` nodes and ``E`` edges each.

    Attributes:
        edge_index (Tensor): ``(2, B * E)`` long, row 0 the teacher node, row 1 the
            student node (PyG's ``source_to_target`` flow).
        batch (Tensor): ``(B * M,)`` long, the sample of every node.
        modality (Tensor): ``(B * M,)`` long, the modality index of every node.
    """

    edge_index: Tensor
    batch: Tensor
    modality: Tensor


def modality_graph(
    num_modalities: int,
    batch_size: int,
    edges: Sequence[tuple[int, int]] | None = None,
    device: torch.device | str | None = None,
) -> ModalityGraph:
    r"""The :class:`ModalityGraph` of ``batch_size`` samples with ``num_modalities`` nodes.

    Results are cached per ``(num_modalities, batch_size, edges, device)``: calling
    again with the same arguments returns the **same** tensors. They are shared, so
    never modify them in place (``edge_index[...] = ...``, ``batch.add_(...)``); build
    a new tensor instead, as :func:`restrict_to_present` does.

    Args:
        num_modalities (int): The number of modalities ``M`` (at least 2).
        batch_size (int): The number of samples ``B`` (at least 1).
        edges (Sequence[tuple[int, int]], optional): The ``(teacher, student)``
            modality-index pairs of one sample, in the order they appear in
            ``edge_index``. :obj:`None` means all ``M (M - 1)`` ordered pairs, teacher
            major: ``(0, 1), (0, 2), ..., (1, 0), (1, 2), ...``. (default: :obj:`None`)
        device (torch.device or str, optional): Where the tensors live.
            :obj:`None` means the CPU. (default: :obj:`None`)

    Raises:
        ValueError: If ``num_modalities < 2``, ``batch_size < 1``, or an edge is a
            self-loop, a duplicate, or names a modality outside ``[0, M)``.

    Example:
        >>> graph = modality_graph(3, batch_size=2)
        >>> graph.edge_index.shape, graph.batch.tolist(), graph.modality.tolist()
        (torch.Size([2, 12]), [0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2])
    """
    if num_modalities < 2:
        raise ValueError(
            f"modality_graph: num_modalities must be at least 2 (a graph of one "
            f"modality has no edge to distil along), found {num_modalities}."
        )
    if batch_size < 1:
        raise ValueError(f"modality_graph: batch_size must be at least 1, found {batch_size}.")
    if edges is None:
        pairs = tuple(
            (teacher, student)
            for teacher in range(num_modalities)
            for student in range(num_modalities)
            if teacher != student
        )
    else:
        pairs = tuple((int(teacher), int(student)) for teacher, student in edges)
        _check_edges(pairs, num_modalities)
    device_key = str(torch.device("cpu" if device is None else device))
    if torch.compiler.is_compiling():
        # Under torch.compile the construction is traced into the graph; the cache is a
        # Python-side object that Dynamo would bypass (with a warning) anyway.
        return _build_modality_graph(num_modalities, batch_size, pairs, device_key)
    return _cached_modality_graph(num_modalities, batch_size, pairs, device_key)


def _check_edges(pairs: tuple[tuple[int, int], ...], num_modalities: int) -> None:
    seen: set[tuple[int, int]] = set()
    for teacher, student in pairs:
        if not (0 <= teacher < num_modalities and 0 <= student < num_modalities):
            raise ValueError(
                f"modality_graph: edge ({teacher}, {student}) names a modality outside "
                f"[0, {num_modalities}); give (teacher, student) modality indices."
            )
        if teacher == student:
            raise ValueError(
                f"modality_graph: edge ({teacher}, {student}) is a self-loop; a modality "
                f"cannot distil into itself, remove it."
            )
        if (teacher, student) in seen:
            raise ValueError(
                f"modality_graph: edge ({teacher}, {student}) is listed twice; list "
                f"each (teacher, student) pair once."
            )
        seen.add((teacher, student))


def _build_modality_graph(
    num_modalities: int,
    batch_size: int,
    pairs: tuple[tuple[int, int], ...],
    device: str,
) -> ModalityGraph:
    one_graph = torch.tensor(pairs, dtype=torch.long, device=device).view(-1, 2).t()  # (2, E)
    offsets = torch.arange(batch_size, device=device) * num_modalities  # (B,)
    edge_index = (one_graph.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(2, -1)  # (2, B*E)
    batch = torch.arange(batch_size, device=device).repeat_interleave(num_modalities)  # (B*M,)
    modality = torch.arange(num_modalities, device=device).repeat(batch_size)  # (B*M,)
    return ModalityGraph(edge_index, batch, modality)


_cached_modality_graph = lru_cache(maxsize=64)(_build_modality_graph)


def restrict_to_present(edge_index: Tensor, present: Tensor) -> Tensor:
    r"""Keeps only the edges whose teacher and student nodes are both present.

    Absent nodes are not removed: they stay in the graph as isolated nodes, so node
    tensors keep their shape and the distillation layer simply sees fewer edges
    (its weights renormalise over the remaining ones).

    Args:
        edge_index (Tensor): ``(2, E)`` long edge indices over ``N`` nodes.
        present (Tensor): Bool, ``(N,)`` per node or ``(B, M)`` per sample and
            modality (flattened as node ``b * M + m``, the layout of
            :func:`modality_graph`).

    Returns:
        Tensor: ``(2, E')`` long, the kept columns of ``edge_index`` in their order.
    """
    if present.dtype != torch.bool or present.dim() not in (1, 2):
        raise ValueError(
            f"restrict_to_present: present must be a bool tensor of shape (N,) or (B, M), "
            f"found dtype {present.dtype} and shape {tuple(present.shape)}; build it "
            f"with a comparison such as lengths > 0."
        )
    present = present.reshape(-1)  # (N,)
    keep = present[edge_index[0]] & present[edge_index[1]]  # (E,)
    return edge_index[:, keep]
