r"""Evaluation metrics with MMSA's exact definitions and key names (numpy only).

The field compares numbers computed by the MMSA framework, so these functions
reproduce its definitions exactly rather than "fixing" them:

* CMU-MOSI / CMU-MOSEI (:func:`regression_metrics`), prediction :math:`p`, label :math:`y`:

  - ``Has0_acc_2``, ``Has0_F1_score``: the classes :math:`p \geq 0` against
    :math:`y \geq 0` (zero counts as positive); F1 is scikit-learn's weighted F1.
  - ``Non0_acc_2``, ``Non0_F1_score``: samples with :math:`y = 0` are removed, then
    :math:`p > 0` against :math:`y > 0`.
  - ``Mult_acc_5`` / ``Mult_acc_7``: both clipped to :math:`[-2, 2]` / :math:`[-3, 3]`,
    rounded with :func:`numpy.round` (half to even: ``2.5 -> 2``, ``-2.5 -> -2``) and
    compared.
  - ``MAE``: :math:`\operatorname{mean}|p - y|`; ``Corr``: Pearson's correlation
    (:func:`numpy.corrcoef`), both on the unclipped values.

* CH-SIMS (:func:`sims_metrics`): both clipped to :math:`[-1, 1]` first (so ``MAE`` and
  ``Corr`` are on the clipped values, as in MMSA), then binned with right-closed bins:
  2 classes ``(-1.01, 0], (0, 1.01]``; 3 classes with edges ``[-1.01, -0.1, 0.1, 1.01]``;
  5 classes with edges ``[-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]``. Keys ``Mult_acc_2``,
  ``Mult_acc_3``, ``Mult_acc_5``, ``F1_score`` (weighted, 2 classes), ``MAE``, ``Corr``.

Every value is rounded to 4 decimals with :func:`numpy.round` (half to even), as MMSA
does for MOSI/MOSEI; MMSA leaves the SIMS values unrounded, which ``decimals=None``
reproduces. Comparisons happen in the input's floating dtype (a float32 prediction of
exactly ``0.1`` falls in the same SIMS bin as in MMSA, which receives float32 tensors).

Two cases that MMSA leaves to warnings are decided here, without any warning:

* ``Corr`` is ``nan`` when the prediction or the label is constant (or there are fewer than
  two samples): the correlation is undefined there, and ``nan`` is what MMSA reports. We
  keep it rather than substituting ``0.0`` because a collapsed model must stay visible in a
  log, and ``0.0`` would look like a legitimate (poor) score. Select checkpoints on
  ``MAE``, which is always defined.
* ``Non0_acc_2`` and ``Non0_F1_score`` are ``nan`` when every label is zero, since no sample
  is left to score (MMSA raises or warns there).

Undefined per-class precision/recall inside the weighted F1 (a class never predicted)
counts as 0, which is scikit-learn's own value for that case, without its warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

__all__ = [
    "REGRESSION_KEYS", "SIMS_KEYS", "format_table", "metrics_for", "regression_metrics",
    "sims_metrics",
]

Metrics = dict[str, float]

REGRESSION_KEYS = (
    "Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
    "Mult_acc_5", "Mult_acc_7", "MAE", "Corr",
)
SIMS_KEYS = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")

SIMS_EDGES_2 = (-1.01, 0.0, 1.01)
SIMS_EDGES_3 = (-1.01, -0.1, 0.1, 1.01)
SIMS_EDGES_5 = (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)


def _as_vector(values: Any, name: str) -> np.ndarray:
    """A 1-D floating array from an array-like or tensor, keeping a floating dtype."""
    if hasattr(values, "detach"):  # a torch.Tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values).reshape(-1)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if array.size == 0:
        raise ValueError(f"metrics: '{name}' is empty; expected at least one value.")
    return array


def _pair(pred: Any, label: Any) -> tuple[np.ndarray, np.ndarray]:
    p, y = _as_vector(pred, "pred"), _as_vector(label, "label")
    if p.shape != y.shape:
        raise ValueError(
            f"metrics: 'pred' and 'label' differ in size; expected the same number of values, "
            f"found {p.size} predictions and {y.size} labels. Flatten both to (N,)."
        )
    return p, y


def _accuracy(pred_class: np.ndarray, label_class: np.ndarray) -> float:
    return float(np.mean(pred_class == label_class))


def _weighted_f1(pred_class: np.ndarray, label_class: np.ndarray) -> float:
    return float(f1_score(label_class, pred_class, average="weighted", zero_division=0))


def _pearson(p: np.ndarray, y: np.ndarray) -> float:
    """``np.corrcoef(p, y)[0, 1]``, ``nan`` without a warning where it is undefined."""
    if p.size < 2:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.corrcoef(p, y)[0, 1])


def _rounded(values: Metrics, decimals: int | None) -> Metrics:
    if decimals is None:
        return values
    return {k: float(np.round(v, decimals)) for k, v in values.items()}


def _bins(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Right-closed bin index of each value: ``edges[i] < v <= edges[i + 1]`` gives ``i``."""
    classes = np.full(values.shape, -1, dtype=np.int64)
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        classes[(values > low) & (values <= high)] = i
    return classes


def regression_metrics(pred: Any, label: Any, *, decimals: int | None = 4) -> Metrics:
    r"""MMSA's CMU-MOSI / CMU-MOSEI regression metrics.

    Args:
        pred (array-like or Tensor): Predicted sentiment, any shape with ``N`` values.
        label (array-like or Tensor): Labels in :math:`[-3, 3]`, ``N`` values.
        decimals (int, optional): Round every value to this many decimals (half to even);
            :obj:`None` keeps full precision. (default: ``4``)

    Returns:
        dict[str, float]: ``Has0_acc_2``, ``Has0_F1_score``, ``Non0_acc_2``,
        ``Non0_F1_score``, ``Mult_acc_5``, ``Mult_acc_7``, ``MAE``, ``Corr``.

    Shapes:
        - **input:** pred :math:`(N,)`, label :math:`(N,)` (flattened if not 1-D)
    """
    p, y = _pair(pred, label)
    nonzero = y != 0
    if nonzero.any():
        non0_p, non0_y = p[nonzero] > 0, y[nonzero] > 0
        non0_acc, non0_f1 = _accuracy(non0_p, non0_y), _weighted_f1(non0_p, non0_y)
    else:
        non0_acc = non0_f1 = float("nan")
    has0_p, has0_y = p >= 0, y >= 0
    values = {
        "Has0_acc_2": _accuracy(has0_p, has0_y),
        "Has0_F1_score": _weighted_f1(has0_p, has0_y),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": _accuracy(np.round(np.clip(p, -2.0, 2.0)), np.round(np.clip(y, -2.0, 2.0))),
        "Mult_acc_7": _accuracy(np.round(np.clip(p, -3.0, 3.0)), np.round(np.clip(y, -3.0, 3.0))),
        "MAE": float(np.mean(np.abs(p - y))),
        "Corr": _pearson(p, y),
    }
    return _rounded(values, decimals)


def sims_metrics(pred: Any, label: Any, *, decimals: int | None = 4) -> Metrics:
    r"""MMSA's CH-SIMS regression metrics (right-closed bins on clipped values).

    Args:
        pred (array-like or Tensor): Predicted sentiment, any shape with ``N`` values.
        label (array-like or Tensor): Labels in :math:`[-1, 1]`, ``N`` values.
        decimals (int, optional): Round every value to this many decimals (half to even);
            :obj:`None` keeps full precision, which is what MMSA reports for SIMS.
            (default: ``4``)

    Returns:
        dict[str, float]: ``Mult_acc_2``, ``Mult_acc_3``, ``Mult_acc_5``, ``F1_score``,
        ``MAE``, ``Corr``.

    Shapes:
        - **input:** pred :math:`(N,)`, label :math:`(N,)` (flattened if not 1-D)
    """
    p, y = _pair(pred, label)
    p, y = np.clip(p, -1.0, 1.0), np.clip(y, -1.0, 1.0)
    p2, y2 = _bins(p, SIMS_EDGES_2), _bins(y, SIMS_EDGES_2)
    values = {
        "Mult_acc_2": _accuracy(p2, y2),
        "Mult_acc_3": _accuracy(_bins(p, SIMS_EDGES_3), _bins(y, SIMS_EDGES_3)),
        "Mult_acc_5": _accuracy(_bins(p, SIMS_EDGES_5), _bins(y, SIMS_EDGES_5)),
        "F1_score": _weighted_f1(p2, y2),
        "MAE": float(np.mean(np.abs(p - y))),
        "Corr": _pearson(p, y),
    }
    return _rounded(values, decimals)


_METRICS_BY_KIND: dict[str, Callable[..., Metrics]] = {
    "mosi": regression_metrics,
    "mosei": regression_metrics,
    "sims": sims_metrics,
}


def metrics_for(dataset_kind: str) -> Callable[..., Metrics]:
    """The metric function of a dataset kind: ``'mosi'``/``'mosei'`` → :func:`regression_metrics`,
    ``'sims'`` → :func:`sims_metrics` (case-insensitive)."""
    try:
        return _METRICS_BY_KIND[dataset_kind.lower()]
    except KeyError:
        raise ValueError(
            f"metrics_for: unknown dataset kind {dataset_kind!r}; expected one of "
            f"{sorted(_METRICS_BY_KIND)}. Pick the kind whose label scale matches your data."
        ) from None


def format_table(rows: Mapping[str, Mapping[str, float]], *, decimals: int = 4) -> str:
    """A plain-text table with one row per name and one column per metric key.

    Columns follow the keys in order of first appearance; a metric a row lacks is shown
    as ``-``, an undefined one as ``nan``.

    Args:
        rows (Mapping[str, Mapping[str, float]]): Row name (a split, a model, a seed) to
            its metrics.
        decimals (int, optional): Decimals shown. (default: ``4``)
    """
    keys: list[str] = []
    for metrics in rows.values():
        keys += [k for k in metrics if k not in keys]
    header = ["", *keys]
    body = [
        [name, *(f"{metrics[k]:.{decimals}f}" if k in metrics else "-" for k in keys)]
        for name, metrics in rows.items()
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                  enumerate(zip(line, widths, strict=True)))
        for line in [header, *body]
    ]
    return "\n".join(lines)
