r"""A finished run, loaded once: the one recipe "checkpoint → meta → data → split check →
metrics" that ``dhmd eval``, ``dhmd predict`` and ``dhmd inspect`` share.

A :class:`TrainedRun` is a trained :class:`~dhmd_graph.DHMD` (in evaluation mode) with its
checkpoint's meta (the :class:`~dhmd_graph.experiment.Experiment` it was trained with,
plus its epoch and seed) and the checkpoint it came from. :meth:`TrainedRun.load` treats
the checkpoint as untrusted input (:meth:`DHMD.from_checkpoint
<dhmd_graph.DHMD.from_checkpoint>`) and, inside a run folder, checks that it declares the
run's model; :meth:`TrainedRun.split` reads a dataset with the labels of the model's task
and checks that the model's inputs fit it, before anything is computed or written.

Example (what ``dhmd eval`` does):

.. code-block:: python

    from dhmd_graph.trained import TrainedRun

    for run in TrainedRun.load_all("runs/mosei-aligned"):   # every seed's best.pt
        test = run.split("test")                             # the run's data, checked
        print(run.seed, run.metrics(test))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dhmd_graph.errors import DatasetError, UserError
from dhmd_graph.experiment import load_splits, resolve_data
from dhmd_graph.train.run_folder import RunFolder, SeedFolder, find_checkpoints

__all__ = ["TrainedRun", "check_data"]


class TrainedRun:
    r"""A trained model of a run, its meta and its checkpoint.

    Args:
        model (nn.Module): The :class:`~dhmd_graph.DHMD`, in evaluation mode.
        meta (dict): The checkpoint's meta (``preset``, ``aligned``, ``data``, ``model``,
            ``epoch``, ``seed``).
        checkpoint (Path): The checkpoint file it was read from.
        datasets (dict, optional): Datasets already read, by resolved path, shared with
            other runs (:meth:`load_all`). (default: :obj:`None`)
    """

    def __init__(self, model: nn.Module, meta: dict, checkpoint: Path,
                 datasets: dict[str, dict] | None = None) -> None:
        self.model = model
        self.meta = meta
        self.checkpoint = Path(checkpoint)
        self._splits = {} if datasets is None else datasets  # data path -> splits

    @classmethod
    def load(cls, target: str | os.PathLike, *, seed: int | None = None, which: str = "best",
             device: str | torch.device = "cpu") -> TrainedRun:
        r"""The trained model of a run folder, seed folder or ``.pt`` file.

        Args:
            target (str or PathLike): A run folder, one of its ``seed_<s>`` folders, or a
                ``.pt`` file.
            seed (int, optional): The seed of a run folder; :obj:`None` takes the first.
                (default: :obj:`None`)
            which (str, optional): ``"best"`` (selected on validation) or ``"last"``.
                (default: ``"best"``)
            device (str or torch.device, optional): Where to put the model (the checkpoint
                is read and checked on the CPU). (default: ``"cpu"``)

        Raises:
            RunFolderError: There is no such checkpoint.
            CheckpointError: The checkpoint is unreadable, unsafe, not of this model, or
                declares a model other than its run folder's ``config.json``.
        """
        return cls._from(find_checkpoints(target, seed, which)[0], device, {})

    @classmethod
    def load_all(cls, target: str | os.PathLike, *, which: str = "best",
                 device: str | torch.device = "cpu") -> list[TrainedRun]:
        """Every seed's trained model of a run folder (or the one of a seed folder or
        ``.pt`` file), in seed order; they read each dataset once between them."""
        datasets: dict[str, dict] = {}
        return [cls._from(path, device, datasets)
                for path in find_checkpoints(target, which=which)]

    @classmethod
    def _from(cls, path: Path, device: str | torch.device, datasets: dict) -> TrainedRun:
        from dhmd_graph.model import DHMD

        model, meta = DHMD.from_checkpoint(path, expected=_run_model(path))
        return cls(model.to(device), meta, path, datasets)

    @property
    def preset(self) -> str:
        """The protocol the run was trained under (its metrics)."""
        return self.meta.get("preset") or "mosei"

    @property
    def seed(self) -> int | None:
        """The seed of the run this checkpoint belongs to."""
        return self.meta.get("seed")

    @property
    def epoch(self) -> int | None:
        """The epoch the checkpoint was written after."""
        return self.meta.get("epoch")

    def _source(self, data: str | os.PathLike | None) -> str:
        """``data`` resolved, or the dataset the run was trained on.

        Raises:
            UserError: The checkpoint names no dataset and ``data`` is not given.
        """
        source = resolve_data(data) if data is not None else self.meta.get("data")
        if source is None:
            raise UserError(f"'{self.checkpoint}' does not name the dataset it was trained "
                            "on; pass --data")
        return source

    def splits(self, data: str | os.PathLike | None = None) -> dict:
        """Every split of ``data`` (default: the dataset the run was trained on), read once
        with the labels of the model's task; a dataset of some splits only, or without
        labels, is read as it is (to predict on).

        Raises:
            UserError: The checkpoint names no dataset and ``data`` is not given.
        """
        source = self._source(data)
        if source not in self._splits:
            self._splits[source] = load_splits(source, self.model.config, partial=True)
        return self._splits[source]

    def split(self, name: str, data: str | os.PathLike | None = None, *,
              labelled: bool = True):
        """The split ``name`` of ``data``, checked against the model's inputs
        (:func:`check_data`), and labelled unless ``labelled`` is :obj:`False` (for
        predictions).

        Raises:
            UserError: The dataset has no such split.
            DatasetError: The data does not fit the model, naming the file and modality,
                or has no labels and ``labelled`` is set.
        """
        source = self._source(data)
        splits = self.splits(source)
        if name not in splits:
            raise UserError(f"split {name!r}: the dataset '{source}' has the splits "
                            f"{sorted(splits)}; choose one of them with --split")
        if labelled and not splits[name].labelled:
            raise DatasetError("no labels", file=source, split=name,
                               expected="labelled samples, to compute metrics",
                               found="a dataset without labels",
                               fix="Add the labels, or write predictions with "
                               "'dhmd predict RUN --data PATH'")
        check_data(self.model.config, splits[name], source)
        return splits[name]

    def metric_function(self, dataset: Any):
        """The metrics of the run's protocol and task, with the dataset's label names."""
        from dhmd_graph.metrics import task_metrics

        config = self.model.config
        return task_metrics(config.task, config.num_classes, self.preset,
                            getattr(dataset, "label_names", None) or config.class_names)

    def class_report(self, dataset: Any, pred: np.ndarray, label: np.ndarray) -> dict | None:
        """The per-class metrics and confusion matrix of :meth:`predict`'s ``pred`` and
        ``label`` (:func:`~dhmd_graph.metrics.class_report`), for a ``multiclass`` or
        ``binary`` run; :obj:`None` for other tasks."""
        from dhmd_graph.metrics import class_report

        config = self.model.config
        return class_report(config.task, config.num_classes, pred, label,
                            config.class_names or getattr(dataset, "label_names", None))

    def monitor(self) -> str:
        """The validation metric of the run's protocol and task."""
        from dhmd_graph.metrics import default_monitor, task_metric_kind

        config = self.model.config
        return default_monitor(task_metric_kind(config.task, config.num_classes, self.preset))

    def predict(self, dataset: Any, context: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and labels of every sample of ``dataset``, in order."""
        from dhmd_graph.data import collate
        from dhmd_graph.train import predict
        from dhmd_graph.train.distributed import setup_distributed

        context = context or setup_distributed(str(next(self.model.parameters()).device))
        return predict(self.model, dataset, context, collate_fn=collate)

    def metrics(self, dataset: Any, context: Any = None) -> dict[str, float]:
        """:meth:`metric_function` of :meth:`predict`."""
        return self.metric_function(dataset)(*self.predict(dataset, context))

    def log(self) -> list[dict] | None:
        """The ``log.jsonl`` records of the seed folder beside the checkpoint, if any."""
        files = SeedFolder(self.checkpoint.parent)
        return files.read_log() if files.log.is_file() else None


def _run_model(path: Path) -> dict | None:
    """The model of ``RUN/config.json`` for a checkpoint inside ``RUN/seed_<s>/``, else
    :obj:`None`."""
    run = RunFolder(path.parent.parent)
    if path.parent.name not in {f"seed_{s}" for s in run.seeds()} or not run.config_path.is_file():
        return None
    saved = run.read_config().get("model")
    return saved if isinstance(saved, dict) else None


def check_data(config: Any, dataset: Any, source: str | os.PathLike | None = "") -> None:
    r"""Checks that a trained model's inputs fit a dataset: every configured modality is
    in the data, with features of the configured width (or token ids within the
    vocabulary, for a modality of token ids).

    Raises:
        DatasetError: Naming the file, split and modality, the width the run was trained
            with and the data's.
    """
    for modality in config.modalities:
        name = modality.name
        fail = {"file": source, "split": dataset.split, "field": name}
        if name not in dataset.features:
            raise DatasetError(
                "the data lacks a modality of the trained model", **fail,
                expected=f"the run's modalities {config.modality_names}",
                found=f"{list(dataset.features)}",
                fix="Give data with every modality of the run (zeros for one you do not "
                    "have, with --present naming the others)")
        array = dataset.features[name]
        if modality.bert_path is not None:
            if array.ndim == 3 and array.dtype.kind in "iu" and array.shape[2] == 3:
                continue
            found = f"{array.dtype} of shape {tuple(array.shape)}"
            expected = (f"(N, T, 3) BERT tokens (the run's modalities.{name}.bert_path is set; "
                        "read them with load_mmsa(..., text='bert'))")
        elif modality.input_dim is not None:
            if array.ndim == 3 and array.shape[2] == modality.input_dim:
                continue
            found = (f"features of width {array.shape[2]}" if array.ndim == 3
                     else f"token ids of shape {tuple(array.shape)}")
            expected = (f"(N, T, {modality.input_dim}) features (the run's "
                        f"modalities.{name}.input_dim={modality.input_dim})")
        else:
            if array.ndim == 2 and (array.size == 0 or int(array.max()) < modality.vocab_size):
                continue
            found = (f"features of width {array.shape[2]}" if array.ndim == 3
                     else f"token ids up to {int(array.max())}")
            expected = (f"(N, T) token ids below the run's modalities.{name}.vocab_size="
                        f"{modality.vocab_size}")
        raise DatasetError("the data does not fit the trained model", **fail, expected=expected,
                           found=found, fix="Predict on data with the features the run was "
                           "trained on ('dhmd describe' shows the data's widths)")

