r"""Training curves: the loss terms, the monitored validation metric and the edge weights
per epoch, from a run's training log.

:func:`training_curves` reads the epoch records of ``log.jsonl`` (:meth:`TrainedRun.log
<dhmd_graph.trained.TrainedRun.log>`): every ``train/<term>`` value (the total ``train/loss``
and each loss term, e.g. ``train/task``, ``train/gd/homogeneous/logit``) and every
``valid/<metric>``. :func:`plot_training_curves` draws the loss terms, the monitored
metric with the selected epoch marked, and, when the log holds them, the mean learned edge
weights of each space (:func:`~dhmd_graph.inspect.edges.edge_history`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dhmd_graph.inspect.edges import EDGE_KEY, EdgeHistory

__all__ = ["TrainingCurves", "plot_training_curves", "training_curves"]

TOTAL_LOSS = "loss"


class TrainingCurves(NamedTuple):
    r"""The per-epoch numbers of a training log.

    Attributes:
        epochs (np.ndarray): ``(T,)`` the epoch numbers.
        losses (dict[str, np.ndarray]): Per loss name (``"loss"`` the total, then each
            term such as ``"task"`` or ``"gd/homogeneous/logit"``) the ``(T,)`` training
            means (``nan`` where an epoch did not log it).
        valid (dict[str, np.ndarray]): Per validation metric the ``(T,)`` values.
        best_epoch (int or None): The last epoch that improved the monitored metric,
            if the log says.
    """

    epochs: np.ndarray
    losses: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    best_epoch: int | None


def training_curves(records: Iterable[Mapping]) -> TrainingCurves:
    r"""Collects the ``train/*`` losses (not the edge weights) and the ``valid/*`` metrics
    of a training log's epoch records."""
    records = list(records)
    losses: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    for row, record in enumerate(records):
        for key, value in record.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if key.startswith("train/") and not EDGE_KEY.match(key):
                target, name = losses, key.removeprefix("train/")
            elif key.startswith("valid/"):
                target, name = valid, key.removeprefix("valid/")
            else:
                continue
            target.setdefault(name, np.full(len(records), np.nan))[row] = float(value)
    if TOTAL_LOSS in losses:  # the total first
        losses = {TOTAL_LOSS: losses.pop(TOTAL_LOSS), **losses}
    epochs = np.array([record.get("epoch", row + 1) for row, record in enumerate(records)])
    improved = [record["epoch"] for record in records if record.get("improved")]
    return TrainingCurves(epochs, losses, valid, improved[-1] if improved else None)


def _mark_selected(axis, best_epoch: int | None) -> None:
    if best_epoch is not None:
        axis.axvline(best_epoch, color="0.4", linestyle=":", label="selected epoch")


def plot_training_curves(curves: TrainingCurves, monitor: str,
                         edges: EdgeHistory | None = None) -> Figure:
    r"""Draws the loss terms, the monitored validation metric and the edge weights per
    epoch, side by side.

    Panels, left to right: every training loss term (the total bold; a logarithmic
    axis when all values are positive, since the terms differ by orders of magnitude);
    ``valid/<monitor>``; one panel per space of ``edges`` with each edge's mean learned
    weight. A dotted line marks the selected epoch in each.

    Args:
        curves (TrainingCurves): From :func:`training_curves`.
        monitor (str): The validation metric that selected the checkpoint, e.g. ``"MAE"``.
        edges (EdgeHistory, optional): From :func:`~dhmd_graph.inspect.edges.edge_history`;
            :obj:`None` or an empty history leaves the edge panels out.
            (default: :obj:`None`)
    """
    spaces = dict(edges.spaces) if edges is not None else {}
    figure = Figure(figsize=(4.6 * (2 + len(spaces)), 4.0), layout="constrained")
    axes = figure.subplots(1, 2 + len(spaces), squeeze=False)[0]
    loss_axis, monitor_axis = axes[0], axes[1]
    for name, values in curves.losses.items():
        total = name == TOTAL_LOSS
        loss_axis.plot(curves.epochs, values, marker="o", markersize=3,
                       linewidth=2.5 if total else 1.0, color="black" if total else None,
                       label=name)
    finite = np.concatenate([v[np.isfinite(v)] for v in curves.losses.values()] or [[]])
    if finite.size and (finite > 0).all():
        loss_axis.set_yscale("log")
    loss_axis.set_title("training loss terms (batch means)", fontsize=10)
    loss_axis.set_ylabel("loss")
    if monitor in curves.valid:
        monitor_axis.plot(curves.epochs, curves.valid[monitor], marker="o", markersize=3,
                          color="tab:blue", label=f"valid {monitor}")
        monitor_axis.set_title(f"validation {monitor} (selects the checkpoint)", fontsize=10)
    else:
        monitor_axis.set_title(f"validation {monitor}: not in the log", fontsize=10)
    for axis, (space, values) in zip(axes[2:], spaces.items(), strict=True):
        for name, weights in values.items():
            axis.plot(edges.epochs, weights, marker="o", markersize=3,
                      label=name.replace("->", " → "))
        axis.set_title(f"{space}: mean learned edge weight E", fontsize=10)
    for axis in axes:
        _mark_selected(axis, curves.best_epoch)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="x-small")
    return figure
