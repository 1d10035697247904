r"""Predictions of a trained run for a dataset: one CSV row per sample.

:func:`predict_run` is what ``dhmd predict`` does: it loads the selected checkpoint of a
run (:class:`~dhmd_graph.trained.TrainedRun`), checks that the data fits the trained model
(:func:`check_data`), runs one split through it once
(:func:`~dhmd_graph.inspect.spaces.collect_outputs`, the pass the inspection uses) and
writes :func:`predict_table`'s columns with :func:`write_predictions`. Every check runs
before anything is written, and an existing file is replaced only when asked.

The columns, in order:

==================================  =====================================================
column                              value
==================================  =====================================================
``id``                              the sample id
``prediction``                      the fused prediction :math:`\hat{y}`; a model with
                                    ``C`` outputs per sample (class scores) gives
                                    ``prediction_<class>`` columns instead
``label``                           the data's label (``label_<class>`` for multi-hot rows)
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
(``nan`` in NumPy and pandas).

Example (what ``dhmd predict runs/mosei --data my_data --out predictions.csv`` does):

.. code-block:: python

    from dhmd_graph.inspect.predictions import predict_table, write_predictions
    from dhmd_graph.trained import TrainedRun

    run = TrainedRun.load("runs/mosei")              # the first seed's best.pt, checked
    test = run.split("test", "my_data")              # checked against the model
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
from torch import nn
from torch.utils.data import Dataset

from dhmd_graph.config import DHMDConfig, edge_name
from dhmd_graph.errors import UserError
from dhmd_graph.files import atomic_write
from dhmd_graph.inspect.spaces import SPACES, as_batches, collect_outputs

__all__ = ["predict_run", "predict_table", "write_predictions"]


def _columns(name: str, values: np.ndarray, names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """``{name: (N,)}``, or one ``name_<class>`` column per trailing entry of ``(N, C)``."""
    if values.ndim == 1:
        return {name: values}
    values = values.reshape(len(values), -1)  # (N, C)
    if names is None or len(names) != values.shape[1]:
        names = [str(c) for c in range(values.shape[1])]
    return {f"{name}_{label}": values[:, c] for c, label in enumerate(names)}


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
    r"""Per sample of ``data``: its id, the prediction, the label, the per-modality logits
    of both spaces and the edge weights of both graphs (the module docstring lists the
    columns).

    Args:
        model (nn.Module): A trained :class:`~dhmd_graph.DHMD`, on the device it should
            run on.
        data (Dataset): A :class:`~dhmd_graph.data.MultimodalDataset` with the model's
            modalities (an absent modality still needs its array, e.g. zeros).
        present (Iterable[str], optional): The observed modalities; the others are
            absent for every sample: they leave both graphs (their edges are empty) and
            their logits are empty. (default: :obj:`None`, all present)
        batch_size (int, optional): Samples per batch. (default: ``64``)

    Returns:
        dict[str, np.ndarray]: Columns of ``N`` values each, in order; ``id`` holds
        strings, the others floats (``nan`` for a missing value).

    Raises:
        ValueError: ``present`` names a modality the model does not have.
    """
    modalities = tuple(model.modalities)
    outputs = collect_outputs(model, as_batches(data, batch_size),
                              present=_check_present(modalities, present))
    names = getattr(data, "label_names", None)
    table = {"id": np.asarray(outputs.ids, dtype=object)}
    table |= _columns("prediction", outputs.prediction, names)
    table |= _columns("label", outputs.labels, names)
    for space in SPACES:
        for m, name in enumerate(modalities):
            table |= _columns(f"logit/{space}/{name}", outputs.spaces[space].logits[:, m],
                              names)
    for space in SPACES:
        values = outputs.spaces[space]
        pairs = _edge_pairs(model.config, space)
        for t, s in pairs:
            table[f"edge/{space}/{edge_name(modalities[t], modalities[s])}"] = \
                values.edge_weight[:, t, s]
        if values.edge_prior is not None:
            learned = values.edge_weight - values.edge_prior  # (N, M, M)
            for t, s in pairs:
                table[f"learned/{space}/{edge_name(modalities[t], modalities[s])}"] = \
                    learned[:, t, s]
    return table


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    return "" if math.isnan(value) else repr(value)


def write_predictions(table: Mapping[str, np.ndarray], path: str | os.PathLike, *,
                      overwrite: bool = False) -> Path:
    r"""Writes :func:`predict_table`'s columns as a CSV file, atomically
    (:func:`~dhmd_graph.files.atomic_write`): a header row, then one row per sample;
    floats written exactly (``repr``), missing values as empty cells.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is not set.
        OSError: The folder does not exist or cannot be written (naming ``path``).
    """
    path = Path(path)
    _check_out(path, overwrite)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table)
    writer.writerows(zip(*([_cell(v) for v in column] for column in table.values()),
                         strict=True))
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
                which: str = "best", device: str = "auto", overwrite: bool = False,
                batch_size: int = 64) -> Path:
    r"""Writes the predictions of a trained run for one split of a dataset as a CSV file
    (``dhmd predict``).

    Everything is checked before anything is written: the output (not an existing file
    unless ``overwrite``), the device, the checkpoint
    (:class:`~dhmd_graph.trained.TrainedRun`), the data against the model
    (:func:`~dhmd_graph.trained.check_data`) and ``present``.

    Args:
        target (str or PathLike): A run folder, one of its ``seed_<s>`` folders, or a
            ``.pt`` file.
        out (str or PathLike): The CSV file to write.
        data (str or PathLike, optional): Any dataset
            :func:`~dhmd_graph.data.load_dataset` reads; :obj:`None` uses the one the
            run was trained on. (default: :obj:`None`)
        split (str, optional): The split to predict. (default: ``"test"``)
        present (Iterable[str], optional): The observed modalities (see
            :func:`predict_table`). (default: :obj:`None`, all)
        seed (int, optional): The seed of a multi-seed run; :obj:`None` takes the first.
            (default: :obj:`None`)
        which (str, optional): ``"best"`` or ``"last"`` checkpoint. (default: ``"best"``)
        device (str, optional): ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            (default: ``"auto"``)
        overwrite (bool, optional): Replace an existing ``out``. (default: :obj:`False`)
        batch_size (int, optional): Samples per batch. (default: ``64``)

    Returns:
        Path: ``out``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is not set.
        ValueError: A bad device, checkpoint, split, ``present``, or data that does
            not fit the model (:class:`~dhmd_graph.data.DatasetError`).
    """
    from dhmd_graph.train.distributed import resolve_device
    from dhmd_graph.trained import TrainedRun

    out = Path(out)
    _check_out(out, overwrite)
    run = TrainedRun.load(target, seed=seed, which=which, device=resolve_device(device))
    dataset = run.split(split, data)  # checked against the model's inputs
    present = _check_present(run.model.modalities, present)
    table = predict_table(run.model, dataset, present=present, batch_size=batch_size)
    return write_predictions(table, out, overwrite=overwrite)
