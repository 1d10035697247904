r"""The benchmark protocols: one row per benchmark, the one table every layer reads.

A protocol says what a benchmark's labels are and how results on it are reported:

==================  ============  ===  =============================  ==============  ==========
protocol            task          C    label names                    metrics         monitor
==================  ============  ===  =============================  ==============  ==========
``mosi``            regression    --   --                             ``regression``  MAE
``mosei``           regression    --   --                             ``regression``  MAE
``sims``            regression    --   --                             ``sims``        MAE
``iemocap4``        multilabel    4    neutral, happy, sad, angry     ``emotion``     Avg_F1
``iemocap6``        multiclass    6    happy, sad, neutral, angry,    ``multiclass``  F1_weighted
                                       excited, frustrated
``mosei_emotions``  multilabel    6    happiness, sadness, anger,     ``multilabel``  Avg_WAcc
                                       surprise, disgust, fear
``humour``          binary        --   --                             ``binary``      Acc
``sarcasm``         binary        --   --                             ``binary``      F1_weighted
==================  ============  ===  =============================  ==============  ==========

The sentiment protocols (``mosi``, ``mosei``, ``sims``) also have MMSA's 3-class
variant: trained on the ``classification_labels`` (negative, neutral, positive), they are
reported with the ``sentiment3`` metrics (monitor ``F1_score_3``). A model whose task or
class count is not its protocol's is reported with the generic metrics of its task
(:func:`metric_kind`).

``synthetic`` names the generator family of the protocol's embedded stand-in data:
``"sentiment"`` (:mod:`dhmd_graph.data.synthetic`, MMSA pickles) or ``"task"``
(:mod:`dhmd_graph.data.synthetic_tasks`, MulT pickles).
"""

from __future__ import annotations

from dataclasses import dataclass

from dhmd_graph.errors import ConfigError
from dhmd_graph.tasks import Task, task_of_labels, task_spec

__all__ = [
    "IEMOCAP4_EMOTIONS",
    "IEMOCAP6_EMOTIONS",
    "MOSEI_EMOTIONS",
    "PROTOCOLS",
    "SENTIMENT3_CLASSES",
    "Protocol",
    "check_label_kind",
    "metric_kind",
    "protocol",
]

IEMOCAP4_EMOTIONS = ("neutral", "happy", "sad", "angry")
"""The four IEMOCAP emotions of the MulT protocol, in the order of its ``(N, 4, 2)`` labels."""

IEMOCAP6_EMOTIONS = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
"""The six IEMOCAP classes of the utterance-level protocol, in their usual index order."""

MOSEI_EMOTIONS = ("happiness", "sadness", "anger", "surprise", "disgust", "fear")
"""CMU-MOSEI's six emotions, in the order of columns 1–6 of its labels sequence."""

SENTIMENT3_CLASSES = ("negative", "neutral", "positive")
"""MMSA's ``classification_labels``: 0 negative, 1 neutral, 2 positive."""


@dataclass(frozen=True)
class Protocol:
    """One benchmark protocol (a row of the module's table).

    Args:
        name (str): The protocol's name, also the name of its model preset.
        task (Task): The task of its labels.
        num_classes (int, optional): :math:`C` where the protocol fixes it.
        label_names (tuple[str, ...], optional): The class or label names, in index order.
        metrics (str): The kind of :func:`dhmd_graph.metrics.metrics_for`.
        monitor (str): The validation metric that selects checkpoints.
        synthetic (str): ``"sentiment"`` or ``"task"``: the family of its stand-in data.
        sentiment3 (bool): Whether MMSA's 3-class variant exists (sentiment scores).
    """

    name: str
    task: Task
    num_classes: int | None
    label_names: tuple[str, ...] | None
    metrics: str
    monitor: str
    synthetic: str
    sentiment3: bool = False


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("mosi", "regression", None, None, "regression", "MAE", "sentiment", True),
    Protocol("mosei", "regression", None, None, "regression", "MAE", "sentiment", True),
    Protocol("sims", "regression", None, None, "sims", "MAE", "sentiment", True),
    Protocol("iemocap4", "multilabel", 4, IEMOCAP4_EMOTIONS, "emotion", "Avg_F1", "task"),
    Protocol("iemocap6", "multiclass", 6, IEMOCAP6_EMOTIONS, "multiclass", "F1_weighted",
             "task"),
    Protocol("mosei_emotions", "multilabel", 6, MOSEI_EMOTIONS, "multilabel", "Avg_WAcc",
             "task"),
    Protocol("humour", "binary", None, None, "binary", "Acc", "task"),
    Protocol("sarcasm", "binary", None, None, "binary", "F1_weighted", "task"),
)}
"""Every protocol, by name."""


def protocol(name: str) -> Protocol:
    """The protocol called ``name`` (case-insensitive).

    Raises:
        ConfigError: Naming the known protocols.
    """
    try:
        return PROTOCOLS[name.lower()]
    except (KeyError, AttributeError):
        raise ConfigError(f"protocol: expected one of {list(PROTOCOLS)}, found {name!r}. "
                          "Pick the benchmark whose labels match the data.") from None


def metric_kind(task: str, num_classes: int | None = None, name: str | None = None) -> str:
    """The :func:`dhmd_graph.metrics.metrics_for` kind that reports a model of ``task``
    with ``num_classes`` under protocol ``name``.

    The protocol's own name where the model's task is the protocol's (and, for a
    multi-label protocol whose metrics name its labels, :math:`C` is its label count);
    MMSA's ``"sentiment3"`` for three classes under a sentiment protocol; else the task's
    generic kind (``"regression"``, ``"multiclass"``, ``"multilabel"``, ``"binary"``).
    """
    found = PROTOCOLS.get((name or "").lower())
    if found is not None and found.task == task and (
            found.task != "multilabel" or found.num_classes == num_classes):
        return found.name
    if found is not None and found.sentiment3 and task == "multiclass" and num_classes == 3:
        return "sentiment3"
    return task_spec(task).name  # the generic kind is the task's name (an unknown task raises)


def check_label_kind(name: str, label_kind: str, num_classes: int | None,
                     data: object = None) -> None:
    r"""Refuses to train under protocol ``name`` on labels its task does not read.

    A protocol's task reads one kind of label (:data:`dhmd_graph.tasks.LABEL_KINDS`):
    a classification protocol (``iemocap6``, ``humour``, ...) on score labels, or a
    sentiment protocol on class or multi-hot labels, would train the task of the data
    and report it under the wrong benchmark, silently. The one exception is MMSA's
    3-class variant: three classes under a sentiment protocol (``sentiment3``, see
    :func:`metric_kind`). Call it only where the user chose the protocol and not the
    task: an explicit ``model.task`` is the user's decision, checked against the data
    by :func:`~dhmd_graph.experiment.fit_task`.

    Args:
        name (str): The protocol, as chosen with ``--preset`` (or a config file).
        label_kind (str): The data's ``'score'``, ``'class'`` or ``'multi_hot'``.
        num_classes (int, optional): The data's classes or labels.
        data (object, optional): The dataset's path, named in the message.

    Raises:
        ConfigError: Naming the preset, its labels, the labels found and the fix.
    """
    found = protocol(name)
    wanted = task_spec(found.task).label_kind
    if wanted == label_kind or (found.sentiment3 and label_kind == "class"
                                and num_classes == 3):
        return
    task, classes = task_of_labels(label_kind, num_classes)
    explicit = f"model.task={task}" + (
        f" model.num_classes={classes}" if classes is not None
        else " model.num_classes=null" if found.num_classes is not None else "")
    fitting = [p.name for p in PROTOCOLS.values() if p.task == task
               and (p.num_classes is None or p.num_classes == num_classes)] or [
               p.name for p in PROTOCOLS.values() if p.task == task]
    kinds = {"score": "score labels", "class": f"class labels ({num_classes} classes)",
             "multi_hot": f"multi-hot labels ({num_classes} labels)"}
    source = f" '{data}'" if data is not None else ""
    presets = " or ".join(f"--preset {p}" for p in fitting) or "another preset"
    give = {"score": "scores", "class": "classes (a labels.csv 'label' column of class ids "
            "or names, see dataset.json)", "multi_hot": "multi-hot rows (label_<name> "
            "columns or labels.npy)"}[wanted]
    raise ConfigError(
        f"--preset {found.name} trains {found.task} on {kinds[wanted].split(' (')[0]}, but "
        f"the data{source} holds {kinds[label_kind]}. Pass {presets} for these labels, give "
        f"the data {give}, or set the task explicitly (--set {explicit}) to train "
        f"the data's task under {found.name}'s protocol.")
