r"""Evaluation metrics: MMSA's exact definitions and key names, and the classification,
multi-label and binary protocols of the emotion benchmarks (numpy and scikit-learn).

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

Beyond sentiment regression (each function's docstring has the exact definition):

* :func:`sentiment3_metrics`: MMSA's keys for its 3-class sentiment
  (``classification_labels``), with MMSA's quirks kept.
* :func:`classification_metrics` (``Acc``, ``UAcc``, ``F1_weighted``, ``F1_macro``),
  :func:`per_class_metrics` and :func:`confusion_matrix`: single-label classes
  (IEMOCAP-6); :func:`class_report` gathers both for a class task's report.
* :func:`emotion_binary_metrics`: MulT's IEMOCAP protocol, one binary task per emotion
  (per-emotion accuracy and weighted F1).
* :func:`multilabel_metrics` and :func:`weighted_accuracy`: per-label weighted accuracy
  :math:`(TP \cdot N/P + TN)/(2N)` and F1 (CMU-MOSEI's six emotions).
* :func:`binary_metrics`: humour and sarcasm detection (``Acc``, ``F1``, ``F1_weighted``).

Predictions are what a model outputs: class scores (logits or probabilities) with the
class on the last axis, or logits of binary decisions (positive when ``> 0``; pass
``threshold=0.5`` for probabilities). :func:`metrics_for` picks the function of a task or
benchmark, :func:`default_monitor` the validation metric to select on, and
:func:`metric_direction` whether larger or smaller is better.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import f1_score, precision_recall_fscore_support

from dhmd_graph.errors import ConfigError
from dhmd_graph.protocols import PROTOCOLS, metric_kind

__all__ = [
    "BINARY_KEYS", "CLASSIFICATION_KEYS", "METRIC_KINDS", "REGRESSION_KEYS", "SENTIMENT3_KEYS",
    "SIMS_KEYS", "binary_metrics", "class_report", "classification_metrics",
    "confusion_matrix", "default_monitor", "emotion_binary_metrics", "format_class_report",
    "format_table", "mean_class_report", "metric_direction", "metrics_for",
    "multilabel_metrics", "per_class_metrics", "regression_metrics",
    "sentiment3_metrics", "sims_metrics", "task_metric_kind", "task_metrics",
    "weighted_accuracy",
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


# ------------------------------------------------------------------ classification

def _as_array(values: Any, name: str) -> np.ndarray:
    """A numpy array from an array-like or tensor, shape kept."""
    if hasattr(values, "detach"):  # a torch.Tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.size == 0:
        raise ValueError(f"metrics: '{name}' is empty; expected at least one value.")
    return array


def _integral(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as int64, refusing non-integral or non-finite values."""
    whole = np.issubdtype(array.dtype, np.integer) or (
        np.issubdtype(array.dtype, np.number) and np.all(np.isfinite(array))
        and np.array_equal(array, np.round(array)))
    if not whole:
        raise ValueError(f"metrics: '{name}' must hold class indices (whole numbers); "
                         f"found values such as {array.reshape(-1)[:3].tolist()}.")
    return array.astype(np.int64)


def _classes(pred: Any, label: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Predicted and true class indices ``(N,)`` and the number of classes.

    ``pred`` is ``(N, C)`` scores (argmax) or ``(N,)`` class indices; ``label`` ``(N,)``
    class indices. ``C`` is the score width, or the largest index seen plus one.
    """
    p, y = _as_array(pred, "pred"), _integral(_as_array(label, "label").reshape(-1), "label")
    if p.ndim == 2 and p.shape[1] > 1:
        num_classes, p = p.shape[1], p.argmax(axis=1)
    elif p.ndim <= 2:
        p = _integral(p.reshape(-1), "pred")
        num_classes = 0
    else:
        raise ValueError(f"metrics: 'pred' must be (N, C) class scores or (N,) class indices; "
                         f"found shape {p.shape}.")
    if p.shape != y.shape:
        raise ValueError(f"metrics: 'pred' and 'label' differ in size; expected one prediction "
                         f"per label, found {p.size} predictions and {y.size} labels.")
    if y.min() < 0 or p.min() < 0:
        raise ValueError("metrics: class indices must be >= 0; found "
                         f"{min(int(y.min()), int(p.min()))}.")
    return p, y, max(num_classes, int(y.max()) + 1, int(p.max()) + 1)


def _binary(pred: Any, label: Any, threshold: float, name: str = "") -> tuple[np.ndarray, ...]:
    """0/1 predictions and labels of one or more binary tasks, shape ``(N, K)``.

    ``pred``: ``(N, K)`` (or ``(N,)``) scores, positive when ``> threshold``, or
    ``(N, K, 2)`` two-way scores (argmax, as MulT). ``label``: ``(N, K)`` (or ``(N,)``)
    0/1, or ``(N, K, 2)`` one-hot per task (argmax).
    """
    p, y = _as_array(pred, "pred"), _as_array(label, "label")
    p = p.argmax(axis=-1) if p.ndim == 3 else (p > threshold)
    y = y.argmax(axis=-1) if y.ndim == 3 else y
    p, y = p.reshape(len(p), -1).astype(np.int64), y.reshape(len(y), -1)
    if p.shape != y.shape:
        raise ValueError(f"metrics{name}: 'pred' and 'label' disagree; expected the same "
                         f"(N, K) tasks, found {p.shape} predictions and {y.shape} labels.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"metrics{name}: binary labels must be 0 or 1; found values such as "
                         f"{np.unique(y)[:4].tolist()}.")
    return p, y.astype(np.int64)


def _names(names: Sequence[str] | None, count: int, what: str) -> list[str]:
    if names is None:
        return [str(i) for i in range(count)]
    if len(names) != count:
        raise ValueError(f"metrics: {count} {what}, but {len(names)} names were given "
                         f"({list(names)}).")
    return list(names)


def _class_count(seen: int, num_classes: int | None, where: str) -> int:
    if num_classes is None:
        return seen
    if num_classes < seen:
        raise ValueError(f"{where}: num_classes={num_classes}, but class {seen - 1} occurs.")
    return num_classes


def confusion_matrix(pred: Any, label: Any, *, num_classes: int | None = None) -> np.ndarray:
    r"""The confusion matrix: entry :math:`(i, j)` counts samples of class :math:`i`
    predicted as class :math:`j` (rows are the truth, as in scikit-learn).

    Args:
        pred (array-like or Tensor): ``(N, C)`` class scores (argmax) or ``(N,)`` indices.
        label (array-like or Tensor): ``(N,)`` class indices.
        num_classes (int, optional): :math:`C`; :obj:`None` takes the score width or
            the largest index plus one. (default: :obj:`None`)

    Returns:
        np.ndarray: ``(C, C)`` int64 counts.
    """
    p, y, seen = _classes(pred, label)
    classes = _class_count(seen, num_classes, "confusion_matrix")
    return _sk_confusion_matrix(y, p, labels=np.arange(classes)).astype(np.int64)


def per_class_metrics(pred: Any, label: Any, *, class_names: Sequence[str] | None = None
                      ) -> dict[str, dict[str, float]]:
    r"""Precision, recall, F1 and support of every class (one-vs-rest).

    Undefined precision or recall (a class never predicted, or absent) counts as 0, as
    :func:`sklearn.metrics.precision_recall_fscore_support` with ``zero_division=0``.

    Args:
        pred (array-like or Tensor): ``(N, C)`` class scores (argmax) or ``(N,)`` indices.
        label (array-like or Tensor): ``(N,)`` class indices.
        class_names (Sequence[str], optional): The name of each class, which also fixes
            :math:`C`; :obj:`None` names the classes ``'0'``, ``'1'``, ... up to the score
            width or the largest index seen. (default: :obj:`None`)

    Returns:
        dict[str, dict[str, float]]: ``{class name: {'precision', 'recall', 'F1',
        'support'}}``.
    """
    p, y, seen = _classes(pred, label)
    count = None if class_names is None else len(class_names)
    names = _names(class_names, _class_count(seen, count, "per_class_metrics"), "classes")
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=np.arange(len(names)), zero_division=0)
    return {name: {"precision": float(precision[c]), "recall": float(recall[c]),
                   "F1": float(f1[c]), "support": float(support[c])}
            for c, name in enumerate(names)}


def class_report(task: str, num_classes: int | None, pred: Any, label: Any,
                 class_names: Sequence[str] | None = None) -> dict[str, Any] | None:
    r"""The per-class metrics and the confusion matrix of a class task's predictions, as
    ``dhmd eval``, ``results.json`` and the inspection report give them.

    Args:
        task (str): The model's task; only ``multiclass`` and ``binary`` have a report
            (a multi-label task's per-label metrics are among its metrics already).
        num_classes (int, optional): :math:`C` of ``multiclass``.
        pred (array-like or Tensor): ``(N, C)`` class scores (``multiclass``) or ``(N,)``
            logits (``binary``, class 1 when ``> 0``).
        label (array-like or Tensor): ``(N,)`` class indices.
        class_names (Sequence[str], optional): The class names, in index order;
            :obj:`None` names them by index. (default: :obj:`None`)

    Returns:
        dict or None: ``{"classes": [names], "per_class": {name: {"precision",
        "recall", "F1", "support"}}, "confusion_matrix": [[counts]]}`` (rows the truth,
        columns the prediction, as :func:`confusion_matrix`); :obj:`None` for other tasks.
    """
    if task not in ("multiclass", "binary"):
        return None
    count = 2 if task == "binary" else int(num_classes)
    if task == "binary":
        pred = (_as_vector(pred, "pred") > 0).astype(np.int64)  # (N,) class 1 for logit > 0
    names = (list(map(str, class_names)) if class_names is not None
             and len(class_names) == count else [str(c) for c in range(count)])
    return {"classes": names,
            "per_class": per_class_metrics(pred, label, class_names=names),
            "confusion_matrix": confusion_matrix(pred, label, num_classes=count).tolist()}


def mean_class_report(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """:func:`class_report` over several checkpoints: the mean of each per-class value
    and the sum of the confusion matrices (every checkpoint's predictions counted)."""
    first = reports[0]
    per_class = {name: {key: float(np.mean([r["per_class"][name][key] for r in reports]))
                        for key in values} for name, values in first["per_class"].items()}
    matrix = np.sum([np.asarray(r["confusion_matrix"]) for r in reports], axis=0)
    return {"classes": list(first["classes"]), "per_class": per_class,
            "confusion_matrix": matrix.astype(np.int64).tolist()}


def format_class_report(report: Mapping[str, Any]) -> str:
    """A :func:`class_report` as text (:func:`format_table`): one row per class
    (precision, recall, F1, support), then the confusion matrix (rows the truth, columns
    the prediction)."""
    names = report["classes"]
    matrix = {f"true {name}": {f"predicted {other}": float(count)
                               for other, count in zip(names, row, strict=True)}
              for name, row in zip(names, report["confusion_matrix"], strict=True)}
    return (format_table(report["per_class"]) + "\n\nconfusion matrix:\n"
            + format_table(matrix, decimals=0))


def classification_metrics(pred: Any, label: Any, *, decimals: int | None = 4) -> Metrics:
    r"""Single-label classification metrics (IEMOCAP-6 and any ``C``-class task).

    * ``Acc``: the share of correct predictions. It is what the IEMOCAP literature calls
      *weighted accuracy* (WAcc, WA: per-class recall weighted by class frequency).
    * ``UAcc``: unweighted accuracy (UA), the mean of the per-class recalls over the
      classes present in ``label`` (scikit-learn's balanced accuracy).
    * ``F1_weighted``: per-class F1 weighted by support (the literature's WAF1 / WF1).
    * ``F1_macro``: the unweighted mean of the per-class F1 over the classes that occur
      in ``label`` or ``pred``.

    Undefined per-class precision/recall count as 0, without a warning.

    Args:
        pred (array-like or Tensor): ``(N, C)`` class scores or probabilities (argmax) or
            ``(N,)`` class indices.
        label (array-like or Tensor): ``(N,)`` class indices.
        decimals (int, optional): Round every value to this many decimals; :obj:`None`
            keeps full precision. (default: ``4``)

    Returns:
        dict[str, float]: ``Acc``, ``UAcc``, ``F1_weighted``, ``F1_macro``.
    """
    p, y, _ = _classes(pred, label)
    present = np.unique(y)
    recall = [np.mean(p[y == c] == c) for c in present]
    values = {
        "Acc": _accuracy(p, y),
        "UAcc": float(np.mean(recall)),
        "F1_weighted": _weighted_f1(p, y),
        "F1_macro": float(f1_score(y, p, average="macro", zero_division=0)),
    }
    return _rounded(values, decimals)


def binary_metrics(pred: Any, label: Any, *, threshold: float = 0.0,
                   decimals: int | None = 4) -> Metrics:
    r"""Binary detection metrics (humour on UR-FUNNY, sarcasm on MUStARD).

    * ``Acc``: the share of correct predictions (what UR-FUNNY and MUStARD report).
    * ``F1``: F1 of the positive class (0 when it is never predicted and never present).
    * ``F1_weighted``: the two classes' F1 weighted by support (MUStARD's reported F1).

    Args:
        pred (array-like or Tensor): ``(N,)`` scores, positive when ``> threshold``
            (logits with the default; 0/1 predictions work too), or ``(N, 2)`` two-class
            scores (argmax).
        label (array-like or Tensor): ``(N,)`` labels in :math:`\{0, 1\}`.
        threshold (float, optional): Decision threshold on ``(N,)`` scores; use ``0.5``
            for probabilities. (default: ``0.0``)
        decimals (int, optional): Rounding as in :func:`classification_metrics`.
            (default: ``4``)

    Returns:
        dict[str, float]: ``Acc``, ``F1``, ``F1_weighted``.
    """
    p, y = _as_array(pred, "pred"), _as_array(label, "label")
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, None, :]  # (N, 1, 2): two-way scores of one task
    p, y = (a[:, 0] for a in _binary(p, y, threshold, " (binary)"))
    values = {
        "Acc": _accuracy(p, y),
        "F1": float(f1_score(y, p, average="binary", zero_division=0)),
        "F1_weighted": _weighted_f1(p, y),
    }
    return _rounded(values, decimals)


def weighted_accuracy(pred: Any, label: Any) -> float:
    r"""Weighted accuracy of one binary label (Tong et al. 2017, the CMU-MOSEI emotions):

    .. math::
        \mathrm{WAcc} = \frac{TP \cdot N / P + TN}{2N}
                      = \tfrac{1}{2}\Big(\frac{TP}{P} + \frac{TN}{N}\Big),

    with :math:`P` / :math:`N` the numbers of positive / negative labels. ``nan`` when
    either is 0 (the formula divides by it).

    Args:
        pred (array-like): ``(N,)`` 0/1 predictions.
        label (array-like): ``(N,)`` 0/1 labels.
    """
    p, y = np.asarray(pred).reshape(-1), np.asarray(label).reshape(-1)
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    true_positives = int(((p == 1) & (y == 1)).sum())
    true_negatives = int(((p == 0) & (y == 0)).sum())
    return (true_positives * negatives / positives + true_negatives) / (2 * negatives)


def multilabel_metrics(pred: Any, label: Any, *, label_names: Sequence[str] | None = None,
                       threshold: float = 0.0, decimals: int | None = 4) -> Metrics:
    r"""Multi-label metrics, as reported for CMU-MOSEI's six emotions.

    Per label ``<name>``: ``<name>_WAcc``, the weighted accuracy
    :math:`(TP \cdot N/P + TN) / (2N)` (:func:`weighted_accuracy`; ``nan`` when the
    label is always or never present in ``label``), and ``<name>_F1``, the label's
    weighted F1 over its two classes (absent/present; as the MulT lineage computes it).
    Then ``Avg_WAcc`` and ``Avg_F1``, their means over the labels (``Avg_WAcc`` over the
    labels where it is defined), and ``F1_micro``, the F1 of the positive decisions
    pooled over all labels (the usual multi-label summary).

    Args:
        pred (array-like or Tensor): ``(N, C)`` scores, positive when ``> threshold``
            (logits with the default; 0/1 predictions work too), or ``(N, C, 2)``
            two-way scores per label (argmax).
        label (array-like or Tensor): ``(N, C)`` multi-hot labels, or ``(N, C, 2)``
            one-hot per label.
        label_names (Sequence[str], optional): The ``C`` names used in the keys;
            :obj:`None` uses ``'0'``, ``'1'``, .... (default: :obj:`None`)
        threshold (float, optional): Decision threshold on ``(N, C)`` scores; ``0.5``
            for probabilities. (default: ``0.0``)
        decimals (int, optional): Rounding as in :func:`classification_metrics`.
            (default: ``4``)
    """
    p, y = _binary(pred, label, threshold, " (multi-label)")
    names = _names(label_names, y.shape[1], "labels")
    values: Metrics = {}
    for k, name in enumerate(names):
        values[f"{name}_WAcc"] = weighted_accuracy(p[:, k], y[:, k])
        values[f"{name}_F1"] = _weighted_f1(p[:, k], y[:, k])
    wacc = [v for k, v in values.items() if k.endswith("_WAcc") and not math.isnan(v)]
    values["Avg_WAcc"] = float(np.mean(wacc)) if wacc else float("nan")
    values["Avg_F1"] = float(np.mean([values[f"{name}_F1"] for name in names]))
    values["F1_micro"] = float(f1_score(y, p, average="micro", zero_division=0))
    return _rounded(values, decimals)


def emotion_binary_metrics(pred: Any, label: Any, *, label_names: Sequence[str] | None = None,
                           threshold: float = 0.0, decimals: int | None = 4) -> Metrics:
    r"""The IEMOCAP four-emotion protocol of MulT: one binary task per emotion.

    For each emotion ``<name>`` (MulT: neutral, happy, sad, angry), the predictions and
    labels of that emotion alone: ``<name>_acc`` (accuracy) and ``<name>_F1``
    (scikit-learn's weighted F1 over absent/present), exactly MulT's ``eval_iemocap``;
    then ``Avg_acc`` and ``Avg_F1``, their means over the emotions (for model selection;
    MulT reports the per-emotion values only).

    Args:
        pred (array-like or Tensor): ``(N, K, 2)`` two-way scores per emotion (argmax,
            MulT's output), or ``(N, K)`` scores positive when ``> threshold``.
        label (array-like or Tensor): ``(N, K)`` 0/1 per emotion, or ``(N, K, 2)`` one-hot
            per emotion (MulT's file layout; argmax).
        label_names (Sequence[str], optional): The ``K`` emotion names used in the keys;
            :obj:`None` uses ``'0'``, ``'1'``, .... (default: :obj:`None`)
        threshold (float, optional): Decision threshold for ``(N, K)`` scores.
            (default: ``0.0``)
        decimals (int, optional): Rounding as in :func:`classification_metrics`.
            (default: ``4``)
    """
    p, y = _binary(pred, label, threshold, " (per-emotion binary)")
    names = _names(label_names, y.shape[1], "emotions")
    values: Metrics = {}
    for k, name in enumerate(names):
        values[f"{name}_acc"] = _accuracy(p[:, k], y[:, k])
        values[f"{name}_F1"] = _weighted_f1(p[:, k], y[:, k])
    values["Avg_acc"] = float(np.mean([values[f"{name}_acc"] for name in names]))
    values["Avg_F1"] = float(np.mean([values[f"{name}_F1"] for name in names]))
    return _rounded(values, decimals)


def sentiment3_metrics(pred: Any, label: Any, *, decimals: int | None = 4) -> Metrics:
    r"""MMSA's metrics of its 3-class sentiment classification (``classification_labels``:
    0 negative, 1 neutral, 2 positive), exactly as MMSA's ``MetricsTop`` computes them
    for classification outputs (``__eval_mosi_classification``, used for MOSI, MOSEI and
    SIMS alike):

    * ``Acc_3``, ``F1_score_3``: accuracy and weighted F1 of the argmax over the three
      class scores.
    * ``Has0_acc_2``, ``Has0_F1_score``: the prediction is the argmax over the
      *negative and positive* scores only (the neutral score is dropped; a tie goes to
      negative); the truth is 0 for labels :math:`\leq 1` (negative **and neutral**) and
      1 for positive. Note that neutral goes with negative here, whereas the regression
      ``Has0`` counts zero as positive.
    * ``Non0_acc_2``, ``Non0_F1_score``: neutral samples are removed and the same
      negative-vs-positive prediction (0 or 1) is compared with the **unmapped** label
      (0 or 2). MMSA does not map the positive label 2 to 1, so a positive sample never
      counts as correct and these two values only reward negatives; we reproduce this so
      that numbers stay comparable with MMSA's, and suggest selecting on ``F1_score_3``.
      ``nan`` when every label is neutral.

    Args:
        pred (array-like or Tensor): ``(N, 3)`` class scores (logits or probabilities),
            or ``(N,)`` class indices (turned into one-hot scores).
        label (array-like or Tensor): ``(N,)`` class indices in :math:`\{0, 1, 2\}`.
        decimals (int, optional): Round every value to this many decimals (MMSA rounds to
            4); :obj:`None` keeps full precision. (default: ``4``)

    Returns:
        dict[str, float]: ``Has0_acc_2``, ``Has0_F1_score``, ``Non0_acc_2``,
        ``Non0_F1_score``, ``Acc_3``, ``F1_score_3``.
    """
    p, y, classes = _classes(pred, label)
    scores = _as_array(pred, "pred")
    if scores.ndim != 2 or scores.shape[1] != 3:
        if classes > 3:
            raise ValueError(f"sentiment3_metrics: expected 3 classes, found class {classes - 1}.")
        scores = np.eye(3)[p]  # (N, 3) one-hot scores of the predicted classes
    elif classes > 3:
        raise ValueError(f"sentiment3_metrics: labels must be 0, 1 or 2; found {y.max()}.")
    two_way = scores[:, [0, 2]].argmax(axis=1)  # (N,) 0 negative, 1 positive
    has0_truth = (y > 1).astype(np.int64)
    non0 = y != 1
    if non0.any():
        non0_acc, non0_f1 = _accuracy(two_way[non0], y[non0]), _weighted_f1(two_way[non0], y[non0])
    else:
        non0_acc = non0_f1 = float("nan")
    values = {
        "Has0_acc_2": _accuracy(two_way, has0_truth),
        "Has0_F1_score": _weighted_f1(two_way, has0_truth),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Acc_3": _accuracy(p, y),
        "F1_score_3": _weighted_f1(p, y),
    }
    return _rounded(values, decimals)


# ------------------------------------------------------------------ dispatch and direction

CLASSIFICATION_KEYS = ("Acc", "UAcc", "F1_weighted", "F1_macro")
BINARY_KEYS = ("Acc", "F1", "F1_weighted")
SENTIMENT3_KEYS = ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Acc_3",
                   "F1_score_3")

_LOWER_IS_BETTER = {"MAE", "MSE", "RMSE", "loss"}
_HIGHER_IS_BETTER = {"acc", "Acc", "WAcc", "UAcc", "F1", "Corr", "precision", "recall"}


def metric_direction(name: str) -> str:
    """Whether a larger (``'max'``) or a smaller (``'min'``) value of a metric is better.

    The name is split at ``'_'`` (and a ``'valid/'``-style prefix dropped): a part
    ``MAE``, ``MSE``, ``RMSE`` or ``loss`` means ``'min'``; a part ``acc``, ``Acc``,
    ``WAcc``, ``UAcc``, ``F1``, ``Corr``, ``precision`` or ``recall`` means ``'max'``.
    This covers every key of this module (``Has0_F1_score``, ``Mult_acc_7``,
    ``happiness_WAcc``, ``Avg_F1``, ...).

    Raises:
        ValueError: For a name with no known part (or parts of both directions).
    """
    parts = set(name.rsplit("/", 1)[-1].split("_"))
    lower, higher = bool(parts & _LOWER_IS_BETTER), bool(parts & _HIGHER_IS_BETTER)
    if lower == higher:
        raise ConfigError(
            f"metric_direction: cannot tell whether a larger or a smaller {name!r} is better; "
            f"known parts are {sorted(_LOWER_IS_BETTER)} (smaller) and "
            f"{sorted(_HIGHER_IS_BETTER)} (larger). Set train.monitor_mode=min or max.")
    return "min" if lower else "max"


_FUNCTIONS: dict[str, Callable[..., Metrics]] = {
    "regression": regression_metrics,
    "sims": sims_metrics,
    "sentiment3": sentiment3_metrics,
    "multiclass": classification_metrics,
    "binary": binary_metrics,
    "multilabel": multilabel_metrics,
    "emotion": emotion_binary_metrics,
}
_MONITORS = {"regression": "MAE", "sims": "MAE", "sentiment3": "F1_score_3",
             "multiclass": "F1_weighted", "binary": "F1_weighted", "multilabel": "Avg_F1"}

METRIC_KINDS = (*_MONITORS, *PROTOCOLS)
"""The kinds :func:`metrics_for` knows: the generic ones and every benchmark protocol
(:data:`dhmd_graph.protocols.PROTOCOLS`)."""


def _kind(kind: str) -> tuple[Callable[..., Metrics], str]:
    key = kind.lower()
    if key in PROTOCOLS:
        found = PROTOCOLS[key]
        function = _FUNCTIONS[found.metrics]
        if found.label_names is not None and found.task == "multilabel":
            function = partial(function, label_names=found.label_names)
        return function, found.monitor
    if key in _MONITORS:
        return _FUNCTIONS[key], _MONITORS[key]
    raise ConfigError(
        f"metrics_for: unknown dataset kind {kind!r}; expected one of {list(METRIC_KINDS)}. "
        "Pick the kind whose labels and protocol match your data.")


def metrics_for(kind: str, **options: Any) -> Callable[..., Metrics]:
    """The metric function of a task or benchmark protocol (case-insensitive).

    ==================  ===================================  ==================  =========
    kind                function                             selection metric    direction
    ==================  ===================================  ==================  =========
    ``regression``,     :func:`regression_metrics`           ``MAE``             min
    ``mosi``, ``mosei``
    ``sims``            :func:`sims_metrics`                 ``MAE``             min
    ``sentiment3``      :func:`sentiment3_metrics`           ``F1_score_3``      max
    ``multiclass``,     :func:`classification_metrics`       ``F1_weighted``     max
    ``iemocap6``
    ``binary``,         :func:`binary_metrics`               ``F1_weighted``     max
    ``sarcasm``
    ``humour``          :func:`binary_metrics`               ``Acc``             max
    ``multilabel``      :func:`multilabel_metrics`           ``Avg_F1``          max
    ``mosei_emotions``  ... with MOSEI's six emotion names   ``Avg_WAcc``        max
    ``iemocap4``        :func:`emotion_binary_metrics` with  ``Avg_F1``          max
                        neutral, happy, sad, angry
    ==================  ===================================  ==================  =========

    The protocol rows come from :data:`dhmd_graph.protocols.PROTOCOLS`. The selection
    metric is :func:`default_monitor`; its direction is :func:`metric_direction`.

    Args:
        kind (str): One of the kinds above.
        **options: Keyword arguments bound to the function (e.g. ``label_names=...``,
            ``threshold=0.5``); without them the function itself is returned.
    """
    function = _kind(kind)[0]
    return partial(function, **options) if options else function


def default_monitor(kind: str) -> str:
    """The validation metric to select checkpoints on for ``kind`` (see :func:`metrics_for`)."""
    return _kind(kind)[1]


def task_metric_kind(task: str, num_classes: int | None = None, preset: str | None = None
                     ) -> str:
    """The :func:`metrics_for` kind of a model's task: the protocol's own kind (e.g.
    ``'iemocap4'``, ``'humour'``, ``'mosei'``) where it reads this task's predictions
    with this many classes, MMSA's ``'sentiment3'`` for 3 classes with a sentiment
    protocol (``mosi``, ``mosei``, ``sims``), else the task's generic kind
    (``'regression'``, ``'multiclass'``, ``'multilabel'``, ``'binary'``); see
    :func:`dhmd_graph.protocols.metric_kind`.

    Args:
        task (str): ``DHMDConfig.task``.
        num_classes (int, optional): ``DHMDConfig.num_classes``. (default: :obj:`None`)
        preset (str, optional): The run's preset or protocol name. (default: :obj:`None`)
    """
    return metric_kind(task, num_classes, preset)


def task_metrics(task: str, num_classes: int | None = None, preset: str | None = None,
                 label_names: Sequence[str] | None = None) -> Callable[..., Metrics]:
    """:func:`metrics_for` of :func:`task_metric_kind`, with the data's ``label_names``
    in the keys of a generic ``multilabel`` task (e.g. ``joy_F1``)."""
    kind = task_metric_kind(task, num_classes, preset)
    if kind == "multilabel" and label_names is not None:
        return metrics_for(kind, label_names=list(label_names))
    return metrics_for(kind)


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
