r"""Missing modalities: how a trained model does on every subset of its modalities.

DHMD treats a missing modality as a graph operation: passing ``present`` to the model
removes the absent modalities' nodes from both distillation graphs (their edges vanish
and the edge weights renormalise over the rest) and masks them from the fusion.
:func:`evaluate_subsets` runs a split once per non-empty subset of modalities and
scores each with the dataset's metrics. Training with the model's
``config.modality_dropout`` teaches it to cope with such inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.errors import UserError
from dhmd_graph.inspect.spaces import as_batches, present_mask
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.train.evaluation import evaluating

__all__ = [
    "evaluate_subsets",
    "mean_table",
    "modality_subsets",
    "predict_subsets",
    "present_mask",
    "subset_name",
]

Metrics = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]


def modality_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    r"""Every non-empty subset of ``modalities`` (:math:`2^M - 1` of them), the full set
    first, then by decreasing size, each in node order.

    Example:
        >>> modality_subsets(["text", "audio"])
        [('text', 'audio'), ('text',), ('audio',)]
    """
    return [
        subset
        for size in range(len(modalities), 0, -1)
        for subset in combinations(modalities, size)
    ]


def subset_name(subset: Iterable[str]) -> str:
    """The row name of a subset, its modalities joined by ``"+"`` (``"text+audio"``)."""
    return "+".join(subset)


def predict_subsets(
    model: nn.Module,
    data: Dataset | Iterable[MultimodalBatch],
    subsets: Sequence[Sequence[str]] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    r"""The model's predictions on a split for each subset of present modalities.

    Each batch is loaded once and run once per subset; the model is in evaluation mode
    for the pass (and restored afterwards).

    Args:
        model (nn.Module): A :class:`~dhmd_graph.DHMD` (``model.modalities`` and
            ``model(batch, present=...)``).
        data (Dataset or Iterable[MultimodalBatch]): The split: a
            :class:`~dhmd_graph.data.MultimodalDataset` or batches of it.
        subsets (Sequence[Sequence[str]], optional): The subsets to run; :obj:`None`
            means :func:`modality_subsets` of the model's modalities.
            (default: :obj:`None`)

    Returns:
        tuple[dict[str, np.ndarray], np.ndarray]: Per :func:`subset_name` the ``(N,)``
        (or ``(N, C)``) predictions, and the ``(N,)`` (or ``(N, C)``) labels.
    """
    modalities = list(model.modalities)
    subsets = modality_subsets(modalities) if subsets is None else [tuple(s) for s in subsets]
    device = next(model.parameters()).device
    predictions: dict[str, list[Tensor]] = {subset_name(s): [] for s in subsets}
    labels: list[Tensor] = []
    with evaluating(model):
        for batch in as_batches(data):
            batch = batch.to(device)
            labels.append(batch.labels.float().cpu())
            for subset in subsets:
                present = present_mask(modalities, subset, len(batch), device)  # (B, M)
                prediction = model(batch, present=present).prediction  # (B,) or (B, C)
                predictions[subset_name(subset)].append(prediction.float().cpu())
    if not labels:
        raise UserError("predict_subsets: the data gave no batch; pass a non-empty split.")
    return (
        {name: torch.cat(parts).numpy() for name, parts in predictions.items()},
        torch.cat(labels).numpy(),
    )


def evaluate_subsets(
    model: nn.Module,
    data: Dataset | Iterable[MultimodalBatch],
    *,
    metrics: Metrics = regression_metrics,
    subsets: Sequence[Sequence[str]] | None = None,
) -> dict[str, dict[str, float]]:
    r"""The metrics of a split for every subset of present modalities.

    Args:
        model (nn.Module): A :class:`~dhmd_graph.DHMD`.
        data (Dataset or Iterable[MultimodalBatch]): The split, as in
            :func:`predict_subsets`.
        metrics (Callable, optional): ``metrics(prediction, label) -> {name: value}``,
            e.g. :func:`~dhmd_graph.metrics.metrics_for` of the dataset.
            (default: :func:`~dhmd_graph.metrics.regression_metrics`)
        subsets (Sequence[Sequence[str]], optional): As in :func:`predict_subsets`.
            (default: :obj:`None`, all :math:`2^M - 1` subsets)

    Returns:
        dict[str, dict[str, float]]: One row per subset, keyed by :func:`subset_name`,
        the full set first; print it with :func:`dhmd_graph.metrics.format_table`.
    """
    predictions, labels = predict_subsets(model, data, subsets)
    return {
        name: {key: float(value) for key, value in metrics(prediction, labels).items()}
        for name, prediction in predictions.items()
    }


def mean_table(tables: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    r"""The cell-wise mean of several :func:`evaluate_subsets` tables (one per seed).

    Args:
        tables (Sequence[Mapping[str, Mapping[str, float]]]): Tables with the same rows
            and metrics.
    """
    first = tables[0]
    return {
        row: {key: float(np.mean([table[row][key] for table in tables])) for key in first[row]}
        for row in first
    }
