r"""Predictions of a trained run for a dataset: one CSV row per sample.

:func:`predict_run` is what ``dhmd predict`` does: it loads the selected checkpoint of a
run (:class:`~dhmd_graph.trained.TrainedRun`), or every seed's for an ensemble, checks that
the data fits the trained model (:func:`check_data`), runs one split through it once
(:func:`~dhmd_graph.inspect.spaces.collect_outputs`, the pass the inspection uses) and
writes :func:`predict_table`'s columns with :func:`write_predictions`. The data need no
labels, nor all three splits (a folder of test samples only, or without a label column,
is predicted on as it is). Every check runs before anything is written, and an existing
file is replaced only when asked.

The columns, in order:

==================================  =====================================================
column                              value
==================================  =====================================================
``id``                              the sample id
``seed``                            the seed of the checkpoint (``;``-separated seeds
                                    for an ensemble, the mean over them)
``prediction``                      the fused prediction :math:`\hat{y}` (a score, or the
                                    one logit of ``binary``); a model with ``C`` outputs
                                    per sample gives ``prediction_<class>`` columns
                                    (the logits) instead
``predicted_class``                 classes only (``multiclass``, ``binary``): the name of
                                    the most probable class
``predicted_labels``                ``multilabel`` only: the names of the labels of
                                    probability at least 0.5, ``;``-separated (empty for
                                    none)
``probability_<class>``             classes and labels only: the probability of each
                                    (:func:`probabilities`: softmax over the ``C``
                                    logits for ``multiclass``, summing to 1; one sigmoid
                                    per label for ``multilabel``; for ``binary`` the
                                    sigmoid of the logit for the second class and its
                                    complement for the first)
``label``                           the data's label (``label_<class>`` for multi-hot
                                    rows); absent for unlabelled data
``logit/<space>/<modality>``        the per-modality logit :math:`y^{hom}_m` or
                                    :math:`y^{het}_m`; empty for an absent modality
                                    (``_<class>`` columns for ``C`` logits)
``edge/<space>/<teacher>->          the distillation edge weight :math:`w` of the sample's
<student>``                         graph (the weight the GD losses use); empty where the
                                    edge is absent (an absent modality, a pruned edge)
``learned/<space>/<teacher>->       with an edge prior only: the learned part :math:`E`
<student>``                         (:math:`w = E + p`)
==================================  =====================================================

``<space>`` is ``homogeneous`` or ``heterogeneous``. Empty cells are missing values
(``nan`` in NumPy and pandas). The classes are named by the run (its
:attr:`~dhmd_graph.config.DHMDConfig.class_names`, taken from the training data's label
names), else by the data's label names, else by their index.

**An ensemble** (``ensemble=True``, ``dhmd predict --ensemble``) averages every seed's
checkpoint: ``prediction`` columns and probabilities are the means over the seeds, the
predicted class is that of the mean probabilities; the per-modality logits and edge
weights, which are one model's, are not written.

**Non-finite predictions are an error**, not empty cells: a checkpoint whose predictions
hold NaN or infinity (damaged or diverged weights) raises
:class:`~dhmd_graph.errors.NonFinitePredictionError` naming it (``dhmd`` exits with
status 1), and nothing is written.

**One writer per file.** The file is written atomically while holding a lock beside it
(``.<name>.lock``, removed afterwards; :func:`~dhmd_graph.files.exclusive_lock`): a
second ``dhmd predict`` writing the same ``--out`` at the same time is refused
(:class:`~dhmd_graph.errors.FileLockedError`, exit status 2), and one that finds the
file written refuses to replace it without ``--overwrite``.

Example (what ``dhmd predict runs/mosei --data my_data --out predictions.csv`` does):

.. code-block:: python

    from dhmd_graph.inspect.predictions import predict_table, write_predictions
    from dhmd_graph.trained import TrainedRun

    run = TrainedRun.load("runs/mosei")              # the first seed's best.pt, checked
    test = run.split("test", "my_data", labelled=False)   # checked against the model
    table = predict_table(run.model, test, present=["text", "audio"])
    write_predictions(table, "predictions.csv")
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from dhmd_graph.config import DHMDConfig, edge_name
from dhmd_graph.errors import FileLockedError, NonFinitePredictionError, UserError
from dhmd_graph.files import atomic_write, exclusive_lock
from dhmd_graph.inspect.spaces import SPACES, SplitOutputs, as_batches, collect_outputs

__all__ = ["class_names", "predict_run", "predict_table", "probabilities",
           "write_predictions"]


def _columns(name: str, values: np.ndarray, names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """``{name: (N,)}``, or one ``name_<class>`` column per trailing entry of ``(N, C)``."""
    if values.ndim == 1:
        return {name: values}
    values = values.reshape(len(values), -1)  # (N, C)
    if names is None or len(names) != values.shape[1]:
        names = [str(c) for c in range(values.shape[1])]
    return {f"{name}_{label}": values[:, c] for c, label in enumerate(names)}


def class_names(config: DHMDConfig, data: object = None) -> tuple[str, ...] | None:
    """The names of a model's classes (``multiclass``: :math:`C`; ``binary``: 2) or labels
    (``multilabel``: :math:`C`): the run's :attr:`~DHMDConfig.class_names`, else the
    data's ``label_names`` where there is one per class, else the indices; :obj:`None`
    for ``regression``."""
    if config.task == "regression":
        return None
    count = 2 if config.task == "binary" else config.num_classes
    for names in (config.class_names, getattr(data, "label_names", None)):
        if names is not None and len(names) == count:
            return tuple(str(name) for name in names)
    return tuple(str(c) for c in range(count))


def probabilities(task: str, prediction: np.ndarray) -> np.ndarray | None:
    r"""The class or label probabilities of a model's fused logits.

    ``multiclass``: the softmax over the :math:`C` logits (each row sums to 1);
    ``multilabel``: one sigmoid per label; ``binary``: :math:`(1 - \sigma(z),
    \sigma(z))` for the one logit :math:`z` (the first class, then the second).

    Shapes:
        - **input:** ``(N, C)`` logits, or ``(N,)`` for ``binary``.
        - **output:** ``(N, C)``, or ``(N, 2)`` for ``binary``; :obj:`None` for
          ``regression``.
    """
    if task == "regression":
        return None
    logits = torch.from_numpy(np.asarray(prediction, dtype=np.float32))
    if task == "multiclass":
        return torch.softmax(logits, dim=-1).numpy()  # (N, C)
    positive = torch.sigmoid(logits)  # (N,) or (N, C)
    if task == "binary":
        return torch.stack([1 - positive, positive], dim=-1).numpy()  # (N, 2)
    return positive.numpy()


def _predicted(task: str, probability: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``predicted_class`` (the most probable class) or, for ``multilabel``,
    ``predicted_labels`` (the labels of probability >= 0.5, ``;``-separated)."""
    names = np.asarray(names, dtype=object)
    if task == "multilabel":
        chosen = probability >= 0.5  # (N, C)
        return {"predicted_labels": np.asarray([";".join(names[row]) for row in chosen],
                                               dtype=object)}
    return {"predicted_class": names[probability.argmax(axis=1)]}


def _head(task: str, prediction: np.ndarray, probability: np.ndarray | None,
          labels: np.ndarray | None, names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """The prediction, class and probability columns, then the label's (if any)."""
    table = _columns("prediction", prediction, names)
    if probability is not None:
        table |= _predicted(task, probability, names)
        table |= {f"probability_{name}": probability[:, c] for c, name in enumerate(names)}
    if labels is not None:
        table |= _columns("label", labels, names)
    return table


def _edge_pairs(config: DHMDConfig, space: str) -> list[tuple[int, int]]:
    """The ``(teacher, student)`` pairs of ``space``'s graph, in order."""
    count = len(config.modalities)
    return sorted(config.edge_pairs(space) or [
        (t, s) for t in range(count) for s in range(count) if t != s])


def _check_present(modalities: Sequence[str], present: Iterable[str] | None) -> tuple | None:
    if present is None:
        return None
    present = tuple(present)
    unknown = [name for name in present if name not in modalities]
    if unknown or not present:
        raise UserError(f"present: expected a non-empty list of the run's modalities "
                        f"{list(modalities)}, found {list(present)}; name the observed "
                        "ones, e.g. --present " + ",".join(modalities[:2]))
    return present


def predict_table(model: nn.Module, data: Dataset, *, present: Iterable[str] | None = None,
                  batch_size: int = 64) -> dict[str, np.ndarray]:
    r"""Per sample of ``data``: its id, the prediction, the predicted class and the class
    probabilities (class tasks), the label (labelled data), the per-modality logits of
    both spaces and the edge weights of both graphs (the module docstring lists the
    columns; ``seed`` is :func:`predict_run`'s).

    Args:
        model (nn.Module): A trained :class:`~dhmd_graph.DHMD`, on the device it should
            run on.
        data (Dataset): A :class:`~dhmd_graph.data.MultimodalDataset` with the model's
            modalities (an absent modality still needs its array, e.g. zeros), labelled
            or not.
        present (Iterable[str], optional): The observed modalities; the others are
            absent for every sample: they leave both graphs (their edges are empty) and
            their logits are empty. (default: :obj:`None`, all present)
        batch_size (int, optional): Samples per batch. (default: ``64``)

    Returns:
        dict[str, np.ndarray]: Columns of ``N`` values each, in order; ``id``,
        ``predicted_class`` and ``predicted_labels`` hold strings, the others floats
        (``nan`` for a missing value).

    Raises:
        UserError: ``present`` names a modality the model does not have.
    """
    modalities = tuple(model.modalities)
    outputs = collect_outputs(model, as_batches(data, batch_size),
                              present=_check_present(modalities, present))
    return _table(outputs, model.config, class_names(model.config, data))


def _table(outputs: SplitOutputs, config: DHMDConfig, names: Sequence[str] | None
           ) -> dict[str, np.ndarray]:
    modalities = outputs.modalities
    table = {"id": np.asarray(outputs.ids, dtype=object)}
    table |= _head(config.task, outputs.prediction,
                   probabilities(config.task, outputs.prediction), outputs.labels, names)
    for space in SPACES:
        for m, name in enumerate(modalities):
            table |= _columns(f"logit/{space}/{name}", outputs.spaces[space].logits[:, m],
                              names)
    for space in SPACES:
        values = outputs.spaces[space]
        pairs = _edge_pairs(config, space)
        for t, s in pairs:
            table[f"edge/{space}/{edge_name(modalities[t], modalities[s])}"] = \
                values.edge_weight[:, t, s]
        if values.edge_prior is not None:
            learned = values.edge_weight - values.edge_prior  # (N, M, M)
            for t, s in pairs:
                table[f"learned/{space}/{edge_name(modalities[t], modalities[s])}"] = \
                    learned[:, t, s]
    return table


def _ensemble_table(outputs: Sequence[SplitOutputs], config: DHMDConfig,
                    names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """The id, the mean prediction and mean probabilities over ``outputs`` (one per seed,
    same samples in the same order) and the label."""
    prediction = np.mean([o.prediction for o in outputs], axis=0)  # (N,) or (N, C)
    probability = None if config.task == "regression" else np.mean(
        [probabilities(config.task, o.prediction) for o in outputs], axis=0)  # (N, K)
    return {"id": np.asarray(outputs[0].ids, dtype=object),
            **_head(config.task, prediction, probability, outputs[0].labels, names)}


def _check_finite(outputs: SplitOutputs, checkpoint: Path, split: str) -> None:
    """A :class:`NonFinitePredictionError` naming ``checkpoint`` if any fused prediction
    is NaN or infinite."""
    bad = ~np.isfinite(outputs.prediction.reshape(len(outputs.prediction), -1)).all(axis=1)
    if bad.any():
        first = outputs.ids[int(bad.argmax())] if outputs.ids else int(bad.argmax())
        raise NonFinitePredictionError(
            f"'{checkpoint}' predicts NaN or infinity for {int(bad.sum())} of {len(bad)} "
            f"samples of split {split!r} (first: {first!r}): its weights are damaged or "
            "diverged; nothing was written. Predict with another checkpoint (--last, "
            "--seed) or train the run again")


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    return "" if math.isnan(value) else repr(value)


def write_predictions(table: Mapping[str, np.ndarray], path: str | os.PathLike, *,
                      overwrite: bool = False) -> Path:
    r"""Writes :func:`predict_table`'s columns as a CSV file, atomically
    (:func:`~dhmd_graph.files.atomic_write`) and under the file's lock
    (:func:`~dhmd_graph.files.exclusive_lock` on ``.<name>.lock`` beside it): a header
    row, then one row per sample; floats written exactly (``repr``), missing values as
    empty cells.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is not set.
        FileLockedError: Another process is writing ``path``.
        OSError: The folder does not exist or cannot be written (naming ``path``).
    """
    path = Path(path)
    _check_out(path, overwrite)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table)
    writer.writerows(zip(*([_cell(v) for v in column] for column in table.values()),
                         strict=True))

    def busy(holder: str) -> FileLockedError:
        return FileLockedError(f"'{path}' is being written by another process (pid "
                               f"{holder}); wait for it to finish, or choose another --out")

    with exclusive_lock(path.parent / f".{path.name}.lock", busy, remove=True):
        _check_out(path, overwrite)  # again, under the lock: a writer may just have finished
        return atomic_write(path, text.getvalue())


def _check_out(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' already exists; pass --overwrite (overwrite=True) to "
                              "replace it, or choose another --out")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write '{path}': the folder '{path.parent}' does not "
                                "exist; create it first")


def predict_run(target: str | os.PathLike, out: str | os.PathLike, *,
                data: str | os.PathLike | None = None, split: str = "test",
                present: Iterable[str] | None = None, seed: int | None = None,
                ensemble: bool = False, which: str = "best", device: str = "auto",
                overwrite: bool = False, batch_size: int = 64) -> Path:
    r"""Writes the predictions of a trained run for one split of a dataset as a CSV file
    (``dhmd predict``).

    Everything is checked before anything is written: the output (not an existing file
    unless ``overwrite``), the device, the checkpoint(s)
    (:class:`~dhmd_graph.trained.TrainedRun`), the data against the model
    (:func:`~dhmd_graph.trained.check_data`), ``present``, and that every prediction is
    finite.

    Args:
        target (str or PathLike): A run folder, one of its ``seed_<s>`` folders, or a
            ``.pt`` file.
        out (str or PathLike): The CSV file to write.
        data (str or PathLike, optional): Any dataset
            :func:`~dhmd_graph.data.load_dataset` reads, labelled or not, with any of
            the splits; :obj:`None` uses the one the run was trained on.
            (default: :obj:`None`)
        split (str, optional): The split to predict. (default: ``"test"``)
        present (Iterable[str], optional): The observed modalities (see
            :func:`predict_table`). (default: :obj:`None`, all)
        seed (int, optional): The seed of a multi-seed run; :obj:`None` takes the first.
            (default: :obj:`None`)
        ensemble (bool, optional): The mean over every seed's checkpoint instead of one
            (see the module docstring). (default: :obj:`False`)
        which (str, optional): ``"best"`` or ``"last"`` checkpoint. (default: ``"best"``)
        device (str, optional): ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            (default: ``"auto"``)
        overwrite (bool, optional): Replace an existing ``out``. (default: :obj:`False`)
        batch_size (int, optional): Samples per batch. (default: ``64``)

    Returns:
        Path: ``out``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is not set.
        FileLockedError: Another process is writing ``out``.
        UserError: A bad device, checkpoint, split, ``present``, ``seed`` with
            ``ensemble``, or data that does not fit the model
            (:class:`~dhmd_graph.data.DatasetError`).
        NonFinitePredictionError: A checkpoint predicts NaN or infinity (naming it).
    """
    from dhmd_graph.train.distributed import resolve_device
    from dhmd_graph.trained import TrainedRun

    out = Path(out)
    _check_out(out, overwrite)
    if ensemble and seed is not None:
        raise UserError(f"--seed {seed} and --ensemble: choose one (a seed's checkpoint, or "
                        "the mean over every seed's)")
    device = resolve_device(device)
    runs = (TrainedRun.load_all(target, which=which, device=device) if ensemble
            else [TrainedRun.load(target, seed=seed, which=which, device=device)])
    datasets = [run.split(split, data, labelled=False) for run in runs]  # checked first
    present = _check_present(runs[0].model.modalities, present)
    config = runs[0].model.config
    names = class_names(config, datasets[0])
    outputs = []
    for run, dataset in zip(runs, datasets, strict=True):
        outputs.append(collect_outputs(run.model, as_batches(dataset, batch_size),
                                       present=present))
        _check_finite(outputs[-1], run.checkpoint, split)
    table = (_ensemble_table(outputs, config, names) if ensemble
             else _table(outputs[0], config, names))
    seeds = ";".join("" if run.seed is None else str(run.seed) for run in runs)
    table = {"id": table.pop("id"), "seed": np.full(len(outputs[0].ids), seeds, dtype=object),
             **table}
    return write_predictions(table, out, overwrite=overwrite)
