r"""What a model predicts: one :class:`TaskSpec` per task, the one table every layer reads.

==============  ===============  ===========  ==========  =================  ===========
task            labels           outputs      activation  task loss          examples
==============  ===============  ===========  ==========  =================  ===========
``regression``  ``'score'``      1            none        L1                 MOSI, MOSEI
``multiclass``  ``'class'``      :math:`C`    softmax     cross-entropy      IEMOCAP-6
``multilabel``  ``'multi_hot'``  :math:`C`    sigmoid     binary CE (mean)   MOSEI emo.
``binary``      ``'class'``      1            sigmoid     binary CE          humour
==============  ===============  ===========  ==========  =================  ===========

The loss (:func:`~dhmd_graph.losses.task_loss`), the model's label check, the metrics,
the configuration and the command line read this table; none keeps its own list. The data
decide the task: :func:`task_of_labels` maps a dataset's label kind and class count to
the task that fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from dhmd_graph.errors import ConfigError

__all__ = ["LABEL_KINDS", "TASKS", "LabelKind", "Task", "TaskSpec", "task_of_labels", "task_spec"]

Task = Literal["regression", "multiclass", "multilabel", "binary"]
TASKS: tuple[str, ...] = get_args(Task)
"""The task names, in the order of the table above."""

LabelKind = Literal["score", "class", "multi_hot"]
LABEL_KINDS: tuple[str, ...] = get_args(LabelKind)
"""The label kinds a dataset holds: ``(N,)`` float scores, ``(N,)`` int64 classes, or
``(N, C)`` float 0/1 multi-hot rows."""


@dataclass(frozen=True)
class TaskSpec:
    r"""One task: the labels it reads, its output width, activation and loss.

    Args:
        name (Task): The task.
        label_kind (LabelKind): The labels it trains on.
        per_class (bool): :obj:`True` if the model has one output per class or label
            (:math:`C`), :obj:`False` for one output.
        min_classes (int, optional): The fewest classes or labels (``multiclass`` 2,
            ``multilabel`` 1); :obj:`None` for tasks with one output.
        activation (str): ``"none"``, ``"softmax"`` or ``"sigmoid"``: what turns the
            logits into the prediction's probabilities.
        loss (str): ``"l1"``, ``"cross_entropy"`` or ``"binary_cross_entropy"``.
    """

    name: Task
    label_kind: LabelKind
    per_class: bool
    min_classes: int | None
    activation: Literal["none", "softmax", "sigmoid"]
    loss: Literal["l1", "cross_entropy", "binary_cross_entropy"]

    def output_channels(self, num_classes: int | None) -> int:
        """The width of every logit: :math:`C` for per-class tasks, else 1."""
        return int(num_classes) if self.per_class else 1

    def label_classes(self, num_classes: int | None) -> int | None:
        """The number of distinct class ids the labels may hold: 2 for ``binary``,
        :math:`C` for ``multiclass``; :obj:`None` for scores and multi-hot rows."""
        if self.name == "binary":
            return 2
        return num_classes if self.label_kind == "class" else None


_SPECS = {
    "regression": TaskSpec("regression", "score", False, None, "none", "l1"),
    "multiclass": TaskSpec("multiclass", "class", True, 2, "softmax", "cross_entropy"),
    "multilabel": TaskSpec("multilabel", "multi_hot", True, 1, "sigmoid",
                           "binary_cross_entropy"),
    "binary": TaskSpec("binary", "class", False, None, "sigmoid", "binary_cross_entropy"),
}


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``.

    Raises:
        ConfigError: For a name that is not one of :data:`TASKS`.
    """
    try:
        return _SPECS[task]
    except (KeyError, TypeError):
        raise ConfigError(f"task: expected one of {list(TASKS)}, found {task!r}. Pick the "
                          "task of the data's labels (it is taken from the data by "
                          "default).") from None


def task_of_labels(label_kind: str, num_classes: int | None) -> tuple[str, int | None]:
    """The task and :math:`C` that fit labels of ``label_kind``: scores are
    ``regression``, two classes ``binary``, more ``multiclass``, multi-hot rows
    ``multilabel``.

    Raises:
        ConfigError: For a label kind that is not one of :data:`LABEL_KINDS`.
    """
    if label_kind == "score":
        return "regression", None
    if label_kind == "multi_hot":
        return "multilabel", num_classes
    if label_kind == "class":
        return ("binary", None) if num_classes == 2 else ("multiclass", num_classes)
    raise ConfigError(f"label kind: expected one of {list(LABEL_KINDS)}, found "
                      f"{label_kind!r}.")
