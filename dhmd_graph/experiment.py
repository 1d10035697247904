r"""The experiment: what one ``dhmd train`` call trains, on what, and how — one typed object.

An :class:`Experiment` is the protocol (a name of :data:`dhmd_graph.protocols.PROTOCOLS`,
also the model preset), the alignment, the data path, the model configuration, the train
configuration, and the keys the user set explicitly. It is what a run's ``config.json``
and every checkpoint's meta hold, assembled once from the command line
(:meth:`Experiment.assemble`) or read back (:meth:`Experiment.load`), then fitted to the
data (:meth:`Experiment.fit`): each modality's input width or vocabulary
(:func:`fit_inputs`), the task from the labels (:func:`fit_task`), and the monitor of the
protocol — except where the user chose a value, which is kept and checked.

Data paths are stored resolved (absolute, symlinks followed), so a run resumes,
evaluates and predicts from any directory, and two spellings of one file are one file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhmd_graph import fields
from dhmd_graph.config import INPUT_FIELDS, DHMDConfig, field_error
from dhmd_graph.errors import ConfigError, DatasetError
from dhmd_graph.presets import preset
from dhmd_graph.protocols import check_label_kind, metric_kind
from dhmd_graph.tasks import task_of_labels, task_spec
from dhmd_graph.train.config import TrainConfig

__all__ = ["EXPERIMENT_KEYS", "INPUT_FIELDS", "TASK_FIELDS", "Experiment", "class_reports",
           "fit_inputs", "fit_steps", "fit_task", "load_splits", "resolve_data"]

TASK_FIELDS = ("task", "num_classes", "class_names")
"""The fields of :class:`~dhmd_graph.config.DHMDConfig` that :func:`fit_task` takes from
the data."""

EXPERIMENT_KEYS = {
    "preset": (str, "a preset name such as \"mosei\""),
    "aligned": (bool, "true or false"),
    "data": ((str, type(None)), "a dataset path or null"),
    "model": (dict, "an object of model settings (DHMDConfig)"),
    "train": (dict, "an object of training settings (TrainConfig)"),
}
"""The keys of a run's ``config.json``: type and description of each (all optional)."""


def _keys(config: DHMDConfig, overrides: Iterable[str]) -> set[str]:
    """The canonical dotted keys of ``overrides`` (``key=value`` strings or keys; list
    entries by name: ``modalities.0.vocab_size`` is ``modalities.text.vocab_size``)."""
    names = config.modality_names
    keys = set()
    for item in overrides:
        parts = item.partition("=")[0].strip().split(".")
        if len(parts) > 1 and parts[0] == "modalities" and parts[1].isdigit() \
                and parts[1] not in names and int(parts[1]) < len(names):
            parts[1] = names[int(parts[1])]
        keys.add(".".join(parts))
    return keys


def resolve_data(path: str | os.PathLike | None) -> str | None:
    """A data path as stored in an experiment: absolute, with symlinks followed."""
    return None if path is None else str(Path(path).expanduser().resolve())


def load_splits(path: str | os.PathLike, model: DHMDConfig, *, partial: bool = False) -> dict:
    """The splits of the dataset at ``path`` with the labels the model's task trains on.

    An MMSA pickle holds two kinds of label: a ``multiclass`` model reads its
    ``classification_labels`` (MMSA's 3-class sentiment), every other task its
    ``regression_labels``; every other format has one kind of label, read as it is.
    Likewise a model whose ``text`` has a ``bert_path`` reads an MMSA pickle's BERT
    tokens ``text_bert``, every other model its ``text`` features. The choice is the
    experiment's, not the reader's. With ``partial`` (to predict), a dataset of some
    splits only, or without labels, is read as it is (:func:`~dhmd_graph.data.load_dataset`).
    """
    from dhmd_graph.data.loading import load_dataset

    labels = "classification" if model.task == "multiclass" else "regression"
    bert = any(m.name == "text" and m.bert_path is not None for m in model.modalities)
    return load_dataset(path, mmsa_labels=labels, mmsa_text="bert" if bert else "features",
                        partial=partial)


def fit_inputs(config: DHMDConfig, inputs: Mapping[str, tuple[int | None, int | None]],
               overrides: Iterable[str] = ()) -> DHMDConfig:
    r"""A copy of ``config`` whose modalities take their input from the data.

    A modality with float features of width :math:`d` gets ``input_dim=d`` (and no
    vocabulary); one with token ids gets ``input_dim=None`` and the ``vocab_size`` the
    data needs; one with BERT token ids ``(N, T, 3)`` needs a configured ``bert_path``
    and gets neither. A field set by one of ``overrides`` (the ``apply_overrides`` strings
    that built ``config``, e.g. ``"modalities.text.vocab_size=30000"``) is the user's
    choice: it is kept, and checked against the data. Everything else (widths, kernels,
    the embedding width) stays as configured.

    Args:
        config (DHMDConfig): The configuration, e.g. a :func:`preset`.
        inputs (Mapping[str, tuple]): Per modality of the data, ``(input_dim,
            vocab_size)`` or ``(input_dim, vocab_size, bert_tokens)`` as from
            :func:`~dhmd_graph.data.loading.modality_inputs`: ``input_dim`` is
            :obj:`None` for token ids, ``vocab_size`` (the largest id + 1 at least) is
            :obj:`None` for float features and BERT tokens, ``bert_tokens`` is
            :obj:`True` for BERT token ids.
        overrides (Iterable[str], optional): The keys the user set (as
            :func:`~dhmd_graph.fields.apply_overrides` returns them, or the override
            strings themselves); their input fields are kept. (default: ``()``)

    Raises:
        ConfigError: If the data's modalities are not the configured ones, a kept
            ``input_dim`` differs from the data, a kept ``vocab_size`` is too small
            for the data's token ids, or BERT tokens meet a modality without
            ``bert_path`` (or other input a modality with one).
    """
    names, found = config.modality_names, list(inputs)
    if sorted(names) != sorted(found):
        raise field_error(config, "modalities", f"the data's modalities {found}", names,
                    "Choose the dataset's preset, or configure a modality for each of the "
                    "data's")
    kept = {tuple(key.split('.')[1:]) for key in _keys(config, overrides)
            if key.startswith('modalities.') and key.count('.') == 2}
    modalities = []
    for modality in config.modalities:
        name = modality.name
        input_dim, vocab_size, *kind = inputs[name]
        where = f"modalities.{name}"
        bert_tokens = bool(kind and kind[0])
        if bert_tokens != (modality.bert_path is not None):
            data = ("BERT token ids (ids, mask, segments)" if bert_tokens
                    else "token ids" if input_dim is None else f"features of width {input_dim}")
            raise field_error(config, f"{where}.bert_path",
                        f"{'a local BERT folder' if bert_tokens else 'null'} (the data's "
                        f"'{name}' holds {data})", modality.bert_path,
                        f"Set {where}.bert_path to a BERT folder, or read the features"
                        if bert_tokens else
                        "Read the BERT token ids (load_mmsa(..., text='bert')), or drop "
                        f"{where}.bert_path")
        if bert_tokens:
            modalities.append(modality)
            continue
        if (name, "input_dim") in kept and modality.input_dim != input_dim:
            data = "token ids" if input_dim is None else f"features of width {input_dim}"
            raise field_error(config, f"{where}.input_dim", f"{input_dim} (the data holds {data})",
                        modality.input_dim, f"Drop the override of {where}.input_dim; it is "
                        "taken from the data")
        if (name, "vocab_size") in kept and input_dim is None:
            if modality.vocab_size is None or modality.vocab_size < vocab_size:
                raise field_error(config, f"{where}.vocab_size",
                            f"at least {vocab_size} (the data's vocabulary: token ids up to "
                            f"{vocab_size - 1})", modality.vocab_size,
                            f"Raise it, or drop the override of {where}.vocab_size to take "
                            "it from the data")
            vocab_size = modality.vocab_size
        modalities.append(dataclasses.replace(modality, input_dim=input_dim,
                                              vocab_size=vocab_size))
    return dataclasses.replace(config, modalities=modalities)


def fit_steps(config: DHMDConfig, steps: Mapping[str, int], overrides: Iterable[str] = ()
              ) -> tuple[DHMDConfig, list[str]]:
    r"""A copy of ``config`` whose temporal projections fit the data's sequence lengths,
    and what changed.

    * A kernel longer than the data's longest sequence :math:`T_m` becomes :math:`T_m`
      (1 for a modality without a time axis or read as a bag of words). This is exact:
      the projection zero-pads a sequence shorter than its kernel at the end, so only the
      first :math:`T_m` taps ever meet data, and the one output step is what a kernel of
      :math:`T_m` computes with those taps (on one step: the first tap alone, a linear map
      of the one vector; the kernel is not centred). What changes is that no parameter is left without gradient,
      and the initial weights have the scale of a projection of the steps that exist
      (PyTorch draws a kernel of :math:`k` taps over :math:`C` channels with bound
      :math:`1/\sqrt{kC}`).
    * A modality with one step and a ``sequence_length`` above 1 (the DMD reference mode
      pads to its benchmark's 50 or more steps) gets ``sequence_length=1``: without a time
      axis there is nothing to pad, and without length masks the padding would count as
      valid steps.

    Sequences at least as long as the kernel, and every other field, are left as they
    are, so results on data with a time axis do not change. A ``kernel_size`` or
    ``sequence_length`` set by one of ``overrides`` (``"modalities.audio.kernel_size=5"``)
    is the user's choice and kept. The position encoding is not changed: on one step it
    is the encoding of the first position, the same vector for every sample.

    Args:
        config (DHMDConfig): The configuration, e.g. a :func:`preset`.
        steps (Mapping[str, int]): Per modality the longest true length in the data
            (:func:`~dhmd_graph.data.loading.modality_steps`).
        overrides (Iterable[str], optional): Overrides whose fields are kept.
            (default: ``()``)

    Returns:
        tuple[DHMDConfig, list[str]]: The config and one line per change, saying why.
    """
    kept = {tuple(key.split(".")[1:]) for key in _keys(config, overrides)
            if key.startswith("modalities.") and key.count(".") == 2}
    modalities, notes = [], []
    for modality in config.modalities:
        length = steps.get(modality.name)
        projected = 1 if modality.bag_of_words else length  # a bag is one step
        changes: dict[str, int] = {}
        if projected is not None and modality.kernel_size > projected \
                and (modality.name, "kernel_size") not in kept:
            changes["kernel_size"] = projected
        if length == 1 and (modality.sequence_length or 1) > 1 \
                and (modality.name, "sequence_length") not in kept:
            changes["sequence_length"] = 1
        for name, value in changes.items():
            why = ("a bag of words is one step" if name == "kernel_size" and
                   modality.bag_of_words else f"the data's '{modality.name}' has at most "
                   f"{length} step{'s' if length > 1 else ''}")
            notes.append(f"modalities.{modality.name}.{name}: {getattr(modality, name)} -> "
                         f"{value} ({why})")
        modalities.append(dataclasses.replace(modality, **changes) if changes else modality)
    return dataclasses.replace(config, modalities=modalities), notes


def fit_task(config: DHMDConfig, label_kind: str, num_classes: int | None,
             overrides: Iterable[str] = (), label_names: Sequence[str] | None = None
             ) -> DHMDConfig:
    r"""A copy of ``config`` whose task fits the data's labels.

    :attr:`DHMDConfig.task` and :attr:`DHMDConfig.num_classes` are taken from the labels
    (:func:`task_of_labels`), except a field named by one of ``overrides`` (the
    :func:`~dhmd_graph.fields.apply_overrides` strings that built ``config``, e.g.
    ``"num_classes=6"``, or just the key): that one is the user's choice, kept and checked against the data. A
    two-class dataset fits ``binary`` (one logit) and ``multiclass`` with ``C = 2``.

    Args:
        config (DHMDConfig): The configuration, e.g. a :func:`preset`.
        label_kind (str): The data's ``'score'``, ``'class'`` or ``'multi_hot'``.
        num_classes (int, optional): The data's classes or labels (:obj:`None` for
            scores).
        overrides (Iterable[str], optional): The keys the user set; their task fields
            are kept.
            (default: ``()``)
        label_names (Sequence[str], optional): The data's class or label names; they
            become :attr:`DHMDConfig.class_names` where there is one per class of the
            fitted task (a kept ``class_names`` stays). (default: :obj:`None`)

    Raises:
        ConfigError: Naming ``DHMDConfig.task`` or ``DHMDConfig.num_classes``, when a kept
            field does not fit the data (e.g. a 6-class model on 4-class data).
    """
    kept = _keys(config, overrides) & set(TASK_FIELDS)
    task, classes = task_of_labels(label_kind, num_classes)
    found = (f"{num_classes} classes" if label_kind == "class" else
             f"{num_classes} labels (multi-hot)" if label_kind == "multi_hot" else "scores")
    if "task" in kept:
        task = config.task
        if task_spec(task).label_kind != label_kind or (task == "binary" and num_classes != 2):
            raise field_error(config, "task", f"a task for the data's labels ({found}): "
                        f"{task_of_labels(label_kind, num_classes)[0]!r}", task,
                        "Drop the task override to take it from the data, or use data "
                        "with labels of this task")
        classes = None if task == "binary" else num_classes
    if "num_classes" in kept and config.num_classes is not None:
        if label_kind == "score" or config.num_classes != num_classes:
            raise field_error(config, "num_classes", f"{num_classes} (the data has {found})",
                        config.num_classes, "Drop the num_classes override to take it from "
                        "the data, or train on data with that many classes")
        if "task" not in kept and task == "binary":  # C = 2 chosen: two softmax logits
            task, classes = "multiclass", num_classes
    weights = config.class_weights
    if weights is not None and len(weights) != (classes or 1):
        raise field_error(config, "class_weights", f"{classes or 1} weights for the data's "
                    f"{found} (task {task!r})", weights, "Give one weight per output, or "
                    "drop class_weights")
    names = config.class_names
    if "class_names" not in kept:
        count = 2 if task == "binary" else classes
        names = (list(label_names) if label_names is not None and task != "regression"
                 and len(label_names) == count else None)
    return dataclasses.replace(config, task=task, num_classes=classes, class_names=names)


@dataclass
class Experiment:
    r"""One experiment: protocol, alignment, data, model, training, and the user's choices.

    Args:
        preset (str): The benchmark protocol and model preset, e.g. ``"mosei"`` (see
            :data:`dhmd_graph.protocols.PROTOCOLS`); it decides the metrics reported.
        aligned (bool): Whether the data is word-aligned.
        data (str, optional): The dataset, as a resolved path (:func:`resolve_data`);
            :obj:`None` until it is chosen.
        model (DHMDConfig): The model configuration.
        train (TrainConfig): The training configuration.
        explicit (frozenset[str]): The dotted keys the user set (``"model.width"``,
            ``"train.monitor"``, ``"model.modalities.text.vocab_size"``, ``"model"``
            for a whole model given in a file, ``"preset"`` for a protocol named with
            ``--preset`` or in the file). Fitting to the data keeps these and
            checks them; everything else may be taken from the data.
    """

    preset: str
    aligned: bool
    data: str | None
    model: DHMDConfig
    train: TrainConfig
    explicit: frozenset[str] = field(default_factory=frozenset)
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What fitting to the data changed beyond the inputs and the task, one line each (not
    saved)."""

    def __post_init__(self) -> None:
        self.data = resolve_data(self.data)

    # Building ----------------------------------------------------------------------

    @classmethod
    def assemble(cls, *, preset_name: str | None = None, aligned: bool | None = None,
                 reference: str | None = None, file: str | os.PathLike | None = None,
                 overrides: Sequence[str] = (), seeds: Sequence[int] | None = None,
                 data: str | os.PathLike | None = None) -> Experiment:
        r"""The experiment of a ``dhmd train`` call: a ``--config`` file, the preset (or
        its DMD reference mode), ``--set`` overrides and ``--seeds``, checked together.

        Args:
            preset_name (str, optional): The preset; :obj:`None` takes the file's, or
                ``"mosei"``.
            aligned (bool, optional): :obj:`None` takes the file's, or :obj:`True`.
            reference (str, optional): ``"dmd"`` for the DMD reference mode (model and
                schedule). (default: :obj:`None`)
            file (str or PathLike, optional): A JSON file with the keys of
                :data:`EXPERIMENT_KEYS` (all optional).
            overrides (Sequence[str], optional): ``model.KEY=VALUE`` and
                ``train.KEY=VALUE`` strings.
            seeds (Sequence[int], optional): Replace ``train.seeds``.
            data (str or PathLike, optional): The dataset; :obj:`None` takes the file's.

        Raises:
            ConfigError: Naming the file, key or override that is not valid.
        """
        return cls._from_saved(_read(file) if file is not None else {}, file,
                               preset_name=preset_name, aligned=aligned, reference=reference,
                               overrides=overrides, seeds=seeds, data=data)

    @classmethod
    def _from_saved(cls, saved: Mapping[str, Any], file: str | os.PathLike | None, *,
                    preset_name: str | None = None, aligned: bool | None = None,
                    reference: str | None = None, overrides: Sequence[str] = (),
                    seeds: Sequence[int] | None = None,
                    data: str | os.PathLike | None = None) -> Experiment:
        """:meth:`assemble` on the checked contents ``saved`` of ``file``."""
        name = preset_name or saved.get("preset", "mosei")
        aligned = saved.get("aligned", True) if aligned is None else aligned
        if reference and "model" in saved:
            raise ConfigError(f"--reference {reference} builds the model from the preset, "
                              f"but {file} has a 'model' section: drop one of the two.")
        explicit = {f"train.{key}" for key in saved.get("train", {})}
        if preset_name or "preset" in saved:
            explicit.add("preset")
        if "model" in saved:
            model = fields.from_dict(DHMDConfig, saved["model"])
            explicit.add("model")
        else:
            model = preset(name, aligned, reference=reference)
        train_settings = saved.get("train", {})
        train = (dataclasses.replace(TrainConfig.preset(reference), **train_settings)
                 if reference else fields.from_dict(TrainConfig, train_settings))
        split: dict[str, list[str]] = {"model": [], "train": []}
        for item in overrides:
            section, _, rest = item.partition(".")
            if section not in split or not rest:
                raise ConfigError(f"--set {item!r}: keys start with 'model.' or 'train.', "
                                  "e.g. --set model.width=48 train.lr=3e-4")
            split[section].append(rest)
        model, model_keys = fields.apply_overrides(model, split["model"])
        train, train_keys = fields.apply_overrides(train, split["train"])
        explicit |= {f"model.{key}" for key in model_keys}
        explicit |= {f"train.{key}" for key in train_keys}
        if seeds is not None:
            train = dataclasses.replace(train, seeds=list(seeds))
            explicit.add("train.seeds")
        return cls(name, aligned, data if data is not None else saved.get("data"), model,
                   train, frozenset(explicit))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Experiment:
        """The experiment of a run's ``config.json``, as it was trained. The explicit keys
        are not saved: a saved model and schedule are complete, so every field counts as
        chosen (a resumed run keeps its inputs, task and monitor, checked against the
        data).

        Raises:
            ConfigError: The file is not JSON, or a key or value is not valid, naming
                the file and the key.
        """
        saved = _read(path)
        if "model" not in saved or "train" not in saved:
            raise ConfigError(f"'{path}': a run's configuration needs the keys 'model' and "
                              f"'train', found {sorted(saved)}; restore the file or start "
                              "a new run.")
        experiment = cls._from_saved(saved, path)
        fitted = {f"model.modalities.{name}.{item}" for name in experiment.model.modality_names
                  for item in INPUT_FIELDS} | {f"model.{item}" for item in TASK_FIELDS}
        return dataclasses.replace(experiment, explicit=experiment.explicit | fitted)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a run's ``config.json`` and every checkpoint's meta hold it,
        without ``train`` (which the trainer writes beside it): preset, aligned, data,
        model."""
        return {"preset": self.preset, "aligned": self.aligned, "data": self.data,
                "model": fields.to_dict(self.model)}

    def chose(self, key: str) -> bool:
        """Whether the user set ``key`` (a dotted key such as ``"train.monitor"``)."""
        return key in self.explicit

    # Fitting to the data --------------------------------------------------------------

    def fit(self, splits: Mapping[str, Any]) -> Experiment:
        r"""The experiment fitted to the data, checked by one training step on two samples.

        Every modality takes its input width or vocabulary size from the data
        (:func:`fit_inputs`), the task and :math:`C` come from the labels
        (:func:`fit_task`), and the protocol's monitor selects checkpoints — except where
        :attr:`explicit` names the field (a whole model from a file keeps its task).
        A protocol the user chose must read the data's kind of label
        (:func:`~dhmd_graph.protocols.check_label_kind`) unless the task is chosen too.
        Nothing is written: a mismatch raises first.

        Raises:
            ConfigError: A chosen value does not fit the data, the chosen protocol's task
                reads another kind of label than the data's, or ``train.monitor`` is not
                one of the metrics reported.
            DatasetError: The model fails on the data's first batch, naming the file.
        """
        from dhmd_graph.metrics import default_monitor, task_metrics

        model_keys = {key.removeprefix("model.") for key in self.explicit
                      if key.startswith("model.")}
        if self.chose("model"):
            model_keys |= set(TASK_FIELDS)
        from dhmd_graph.data.loading import modality_inputs, modality_steps

        train_split = splits["train"]
        if self.chose("preset") and "task" not in model_keys:
            check_label_kind(self.preset, train_split.label_kind, train_split.num_classes,
                             self.data)
        model = fit_inputs(self.model, modality_inputs(splits), model_keys)
        model, notes = fit_steps(model, modality_steps(splits), model_keys)
        model = fit_task(model, train_split.label_kind, train_split.num_classes, model_keys,
                         train_split.label_names)
        train = self.train
        kind = metric_kind(model.task, model.num_classes, self.preset)
        if not self.chose("train.monitor"):
            train = dataclasses.replace(train, monitor=default_monitor(kind))
        metrics = task_metrics(model.task, model.num_classes, self.preset,
                               train_split.label_names)
        valid = splits["valid"].labels
        train.check_monitor(metrics(valid, valid))
        _check_runs(model, train_split, self.data)
        return dataclasses.replace(self, model=model, train=train, notes=tuple(notes))

    def summary(self, splits: Mapping[str, Any], out: str | os.PathLike) -> str:
        """One paragraph before training: the data, the model's inputs, the schedule, the
        run folder."""
        sizes = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
        inputs = ", ".join(
            f"{m.name} BERT tokens (bert_path={m.bert_path})" if m.bert_path is not None
            else f"{m.name} input_dim={m.input_dim}" if m.input_dim is not None
            else f"{m.name} token ids (vocab_size={m.vocab_size})" for m in self.model.modalities)
        train, seeds = self.train, self.train.seeds
        fitted = "".join(f"fitted to the data: {note}\n" for note in self.notes)
        return (f"{fitted}data: {self.data} ({sizes})\nmodel inputs (from the data): {inputs}\n"
                f"schedule: up to {train.max_epochs} epochs (early stop after "
                f"{train.early_stop_patience} without improvement) for each of {len(seeds)} "
                f"seed(s) {', '.join(map(str, seeds))}, device {train.device}\n"
                f"run folder: {out}")

    def header(self, splits: Mapping[str, Any], world_size: int = 1) -> str:
        """The schedule line before training (:func:`~dhmd_graph.schedule.schedule_header`:
        lr, batch, accumulation, optimiser steps per epoch, device), with a warning when an
        epoch has too few optimiser steps."""
        from dhmd_graph.schedule import schedule_header
        from dhmd_graph.train.distributed import resolve_device

        device = resolve_device(self.train.device, int(os.environ.get("LOCAL_RANK", "0")))
        return schedule_header(self.train, len(splits["train"]), str(device),
                               world_size=world_size)

    def metrics(self, label_names: Sequence[str] | None = None):
        """The metric function of this experiment's protocol and task."""
        from dhmd_graph.metrics import task_metrics

        return task_metrics(self.model.task, self.model.num_classes, self.preset, label_names)


def _check_runs(model: DHMDConfig, train: Any, data: str | None) -> None:
    """One training step of ``model`` on the first two samples of ``train``, or a
    :class:`DatasetError` naming the data (a shape or index error deep inside the model
    means the configuration does not fit the data; a :class:`ValueError` that is not a
    :class:`~dhmd_graph.errors.DHMDError` is a bug and propagates)."""
    import torch

    from dhmd_graph.data import collate
    from dhmd_graph.model import DHMD

    batch = collate([train[i] for i in range(min(2, len(train)))])
    try:
        with torch.no_grad():
            DHMD(model).eval().training_step(batch)
    except (RuntimeError, IndexError, TypeError) as error:  # shapes, token ids, dtypes
        raise DatasetError(
            "the model cannot run on the data", file=data, split="train",
            expected="a model configuration that fits the data (dhmd describe shows its "
            "modalities, widths and token ids)", found=f"{type(error).__name__}: {error}",
            fix="Check the --set model.* overrides against the data") from error


def _read(path: str | os.PathLike) -> dict[str, Any]:
    """A ``config.json`` or ``--config`` file as checked plain data: a JSON object with
    only :data:`EXPERIMENT_KEYS` of the right types, and valid model and train settings;
    every error names the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"'{path}': no such file; check the path (a run folder holds "
                          "config.json).") from None
    except ValueError as error:  # JSON or UTF-8
        raise ConfigError(f"'{path}': not a JSON file ({error}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"'{path}': expected a JSON object with the keys "
                          f"{list(EXPERIMENT_KEYS)}, found a {type(data).__name__}.")
    unknown = sorted(set(data) - set(EXPERIMENT_KEYS), key=str)
    if unknown:
        raise ConfigError(f"'{path}': unknown key(s) {unknown}; valid keys: "
                          f"{list(EXPERIMENT_KEYS)}.")
    for key, value in data.items():
        kind, expected = EXPERIMENT_KEYS[key]
        if not isinstance(value, kind):
            raise ConfigError(f"'{path}': key '{key}': expected {expected}, found {value!r} "
                              f"({type(value).__name__}).")
    try:
        if "model" in data:
            fields.from_dict(DHMDConfig, data["model"])
        fields.from_dict(TrainConfig, data.get("train", {}))
    except ConfigError as error:
        raise ConfigError(f"'{path}': {error}") from None
    return data


def default_out(preset_name: str | None, reference: str | None, aligned: bool) -> Path:
    """``runs/<preset>-[<reference>-]<aligned|unaligned>``, the run folder by default."""
    return Path(f"runs/{preset_name or 'mosei'}-{reference + '-' if reference else ''}"
                f"{'aligned' if aligned else 'unaligned'}")


def default_data(name: str, aligned: bool, say: bool) -> Path:
    """Without ``--data``: the protocol's embedded synthetic data at the example's size,
    generated once (said first when ``say``)."""
    from dhmd_graph.data.synthetic import DEMO_SIZES, default_dataset_path
    from dhmd_graph.data.synthetic_tasks import default_task_dataset_path
    from dhmd_graph.protocols import protocol

    if say:
        print(f"dhmd train: no --data given: using synthetic {name}-profile data of "
              f"{'/'.join(map(str, DEMO_SIZES.values()))} train/valid/test samples (generated "
              "once; see docs/guide/synthetic.md). Pass --data PATH for your own data, or "
              f"write the full-size synthetic set with 'dhmd synth OUT.pkl --profile {name}' "
              "and pass it.", flush=True)
    family = protocol(name).synthetic
    default = default_dataset_path if family == "sentiment" else default_task_dataset_path
    return default(name, aligned, sizes=DEMO_SIZES)


def train_experiment(*, preset_name: str | None = None, unaligned: bool = False,
                     reference: str | None = None, config: str | os.PathLike | None = None,
                     overrides: Sequence[str] = (), seeds: str | None = None,
                     data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                     resume: bool = False, overwrite: bool = False,
                     paper_schedule: bool = False, baselines: bool = True,
                     bert: str | os.PathLike | None = None,
                     word_vectors: str | os.PathLike | None = None,
                     freeze_text: bool = False) -> tuple[dict | None, Path]:
    r"""What ``dhmd train`` does: assemble (or, with ``resume``, load) the experiment, read
    and fit the data, say what runs, and train one run per seed
    (:func:`~dhmd_graph.train.run_seeds`). Nothing is written before the experiment is
    known to fit the data.

    On data the user gave (``data``, or the ``--config`` file's) that is small or has no
    time axis (:func:`~dhmd_graph.schedule.small_data_reason`), the small-data recipe
    (:class:`~dhmd_graph.config.SmallDataRecipe`) replaces the preset's values of the
    fields the user did not set, and says so; ``paper_schedule``, ``reference``,
    ``resume`` and the embedded demonstration data keep the preset's. With
    ``baselines``, the trivial and linear baselines of :mod:`dhmd_graph.baselines` are
    fitted on the same splits and added to the results (``results["baselines"]``,
    :func:`~dhmd_graph.baselines.baseline_report`).

    Args:
        seeds (str, optional): Comma-separated seeds, as typed.
        paper_schedule (bool, optional): Keep the preset's model and schedule on small
            data. (default: :obj:`False`)
        baselines (bool, optional): Fit and report the baselines. (default: :obj:`True`)
        bert (str or PathLike, optional): A local BERT folder for the ``text`` modality
            (an MMSA pickle's ``text_bert`` tokens are read). (default: :obj:`None`)
        word_vectors (str or PathLike, optional): A local word-vectors file starting the
            ``text`` token embedding (its width becomes ``embedding_dim``).
            (default: :obj:`None`)
        freeze_text (bool, optional): Do not train BERT or the word vectors.
            (default: :obj:`False`)
        Others: As the options of ``dhmd train``.

    Returns:
        tuple: The results (:func:`~dhmd_graph.train.summarize`; :obj:`None` in every
        process but the main one of a distributed run) and the run folder.

    Raises:
        UserError: For every bad option, file, value or dataset, before anything is written.
    """
    from dhmd_graph.data import collate
    from dhmd_graph.schedule import EpochTimer
    from dhmd_graph.train import run_seeds
    from dhmd_graph.train.distributed import teardown_distributed
    from dhmd_graph.train.run_folder import RunFolder

    text = text_overrides(bert=bert, word_vectors=word_vectors, freeze_text=freeze_text)
    if resume and (config or overrides or seeds or preset_name or unaligned or reference
                   or text or paper_schedule):
        raise ConfigError("--resume continues a run with the configuration saved in "
                          "RUN_DIR/config.json; drop --config/--set/--seeds/--preset/"
                          "--unaligned/--reference/--bert/--word-vectors/--freeze-text/"
                          "--paper-schedule.")
    out = Path(out) if out is not None else default_out(preset_name, reference, not unaligned)
    if resume:
        run = RunFolder(out)
        run.read_config()  # refuses a missing folder or config.json before anything is written
        experiment = Experiment.load(run.config_path)
        if data is not None:  # the same file under any spelling; another file is refused
            experiment = dataclasses.replace(experiment, data=data)
    else:
        experiment = Experiment.assemble(
            preset_name=preset_name, aligned=False if unaligned else None, reference=reference,
            file=config, overrides=[*overrides, *text], seeds=_parse_seeds(seeds), data=data)
    main_process = int(os.environ.get("RANK", "0")) == 0
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    recipe = not (resume or paper_schedule or reference or experiment.data is None)
    if experiment.data is None:
        experiment = dataclasses.replace(
            experiment, data=default_data(experiment.preset, experiment.aligned, main_process))
    splits = load_splits(experiment.data, experiment.model)
    recipe_line = ""
    if recipe:
        experiment, recipe_line = small_data(experiment, splits, world_size=world_size)
    experiment = experiment.fit(splits)
    build = model_builder(experiment, splits, say=main_process)  # reads word vectors once
    fitted = _fit_baselines(experiment, splits) if baselines and main_process else None
    if main_process:
        print("\n".join(filter(None, [recipe_line, experiment.summary(splits, out),
                                       experiment.header(splits, world_size)])), flush=True)

    def report(results: dict) -> dict:
        classes = class_reports(experiment, splits["test"], out)
        if fitted is None:
            return classes
        if isinstance(fitted, str):
            return {**classes, "baselines": {"error": fitted}}
        from dhmd_graph.baselines import baseline_report

        return {**classes, "baselines": baseline_report(fitted, results["mean"],
                                                        monitor=experiment.train.monitor)}

    callbacks = [EpochTimer()] if main_process and experiment.train.progress else []
    try:
        results = run_seeds(build, splits, experiment.train, out,
                            metrics=experiment.metrics(splits["train"].label_names),
                            collate_fn=collate, meta=experiment.to_dict(), resume=resume,
                            overwrite=overwrite, callbacks=callbacks, report=report)
    finally:
        teardown_distributed()
    return (results if main_process else None), out


def text_overrides(*, bert: str | os.PathLike | None = None,
                   word_vectors: str | os.PathLike | None = None,
                   freeze_text: bool = False) -> list[str]:
    """The ``model.modalities.text.*`` overrides of ``--bert``, ``--word-vectors`` and
    ``--freeze-text`` (paths resolved, so that a run resumes from any folder).

    Raises:
        ConfigError: Both a BERT folder and word vectors, or ``freeze_text`` alone.
        DatasetError: A word-vectors file that is missing or not one.
    """
    if bert is not None and word_vectors is not None:
        raise ConfigError("--bert and --word-vectors: the text modality reads either BERT "
                          "tokens or token ids with word vectors; give one of the two.")
    if freeze_text and bert is None and word_vectors is None:
        raise ConfigError("--freeze-text freezes the BERT model of --bert or the vectors of "
                          "--word-vectors; give one of them, or drop --freeze-text.")
    where = "model.modalities.text"
    if bert is not None:
        return [f"{where}.bert_path={resolve_data(bert)}", f"{where}.input_dim=none",
                f"{where}.vocab_size=none", f"{where}.bert_finetune={str(not freeze_text).lower()}"]
    if word_vectors is not None:
        from dhmd_graph.nn.word_vectors import vector_width

        path = resolve_data(word_vectors)
        return [f"{where}.word_vectors={path}", f"{where}.embedding_dim={vector_width(path)}",
                f"{where}.word_vectors_finetune={str(not freeze_text).lower()}"]
    return []


def small_data(experiment: Experiment, splits: Mapping[str, Any], *, world_size: int = 1
               ) -> tuple[Experiment, str]:
    """The experiment with the small-data recipe where the data is small or one-step
    (:func:`~dhmd_graph.schedule.apply_small_data_recipe`), and the line saying what it
    changed and why (empty when it changed nothing)."""
    from dhmd_graph.data.loading import modality_inputs, modality_steps
    from dhmd_graph.schedule import apply_small_data_recipe, small_data_reason

    samples = len(splits["train"])
    reason = small_data_reason(samples, modality_steps(splits))
    if reason is None:
        return experiment, ""
    tokens = {name for name, given in modality_inputs(splits).items()
              if given.input_dim is None and not given.bert_tokens}
    model, train, line = apply_small_data_recipe(
        experiment.model, experiment.train, train_samples=samples, token_modalities=tokens,
        explicit=experiment.explicit, reason=reason, world_size=world_size)
    return dataclasses.replace(experiment, model=model, train=train), line


def model_builder(experiment: Experiment, splits: Mapping[str, Any], *, say: bool = True):
    """``build_model()`` for :func:`~dhmd_graph.train.run_seeds`: a new DHMD, its token
    embeddings started from the word vectors of the configuration and its bags of words
    given the training split's inverse document frequencies (both computed once, here,
    so that a bad file fails before anything is written; the coverage printed when
    ``say``).

    Raises:
        ConfigError: Word vectors for data without a vocabulary, or of another width.
        DatasetError: A missing or malformed vectors file.
    """
    from dhmd_graph.model import DHMD
    from dhmd_graph.nn.word_vectors import coverage_line

    config = experiment.model
    with_vectors = any(m.word_vectors is not None for m in config.modalities)
    if not with_vectors and not any(m.bag_of_words for m in config.modalities):
        return lambda: DHMD(config)
    first = DHMD(config)
    vectors = {}
    if with_vectors:
        vocabulary = splits["train"].vocabulary
        if vocabulary is None:
            raise ConfigError(f"model.modalities.*.word_vectors: expected data with a "
                              f"vocabulary (the words of the token ids, e.g. vocabulary.json "
                              f"in a plain-arrays folder), found none in '{experiment.data}'. "
                              "Add the vocabulary, or drop the word vectors.")
        coverage = first.load_word_vectors(vocabulary)
        vectors = {i: first.projections[i].embedding.weight[:len(vocabulary)].detach().clone()
                   for i, m in enumerate(config.modalities) if m.word_vectors is not None}
        if say:
            for modality in config.modalities:
                if modality.name in coverage:
                    print(coverage_line(modality.name, modality.word_vectors,
                                        coverage[modality.name], len(vocabulary) - 2),
                          flush=True)
    first.fit_bag_of_words(splits["train"])
    idf = {i: first.projections[i].idf.clone()
           for i, m in enumerate(config.modalities) if m.bag_of_words}

    def build():
        model = DHMD(config)
        for index, table in vectors.items():  # (V, E), as load_word_vectors copies them
            model.projections[index].load_embedding(table)
        for index, values in idf.items():  # (V,), as fit_bag_of_words computes them
            model.projections[index].set_idf(values)
        return model

    return build


def _fit_baselines(experiment: Experiment, splits: Mapping[str, Any]):
    """The baselines on the experiment's splits, or why they could not be fitted (a
    linear model needs two classes in training, for one)."""
    from dhmd_graph.baselines import fit_baselines

    try:
        return fit_baselines(splits, preset=experiment.preset)
    except ValueError as error:  # scikit-learn refuses data it cannot fit
        print(f"baselines: not fitted ({error})", flush=True)
        return f"not fitted: {error}"


def class_reports(experiment: Experiment, test: Any, out: str | os.PathLike) -> dict:
    r"""``results.json``'s per-class section of a class task (``multiclass``,
    ``binary``): the test split's :func:`~dhmd_graph.metrics.class_report` of every
    seed's best checkpoint in the run folder ``out`` (the checkpoint the test metrics
    were computed with, predicted again in this process, in order) and their
    :func:`~dhmd_graph.metrics.mean_class_report`; ``{}`` for other tasks.

    Returns:
        dict: ``{"classes": {"test": mean report, "seeds": {seed: report}}}`` or ``{}``.
    """
    import torch

    from dhmd_graph.data import collate
    from dhmd_graph.metrics import class_report, mean_class_report
    from dhmd_graph.model import DHMD
    from dhmd_graph.train.distributed import resolve_device
    from dhmd_graph.train.run_folder import RunFolder

    config = experiment.model
    if config.task not in ("multiclass", "binary"):
        return {}
    device, run, reports = resolve_device(experiment.train.device), RunFolder(out), {}
    loader = torch.utils.data.DataLoader(test, batch_size=experiment.train.batch_size,
                                         collate_fn=collate)
    for seed in experiment.train.seeds:
        model = DHMD.from_checkpoint(run.seed(seed).checkpoint("best"))[0].to(device)
        with torch.no_grad():
            pairs = [model.predict_step(batch.to(device)) for batch in loader]
        pred = torch.cat([p for p, _ in pairs]).cpu().numpy()  # (N, C) or (N,)
        label = torch.cat([y for _, y in pairs]).cpu().numpy()  # (N,)
        reports[str(seed)] = class_report(config.task, config.num_classes, pred, label,
                                          config.class_names or test.label_names)
    return {"classes": {"test": mean_class_report(list(reports.values())), "seeds": reports}}


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers such as 1111,1112, "
                          f"found {text!r}") from None


def format_results(results: Mapping[str, Any]) -> str:
    """A run's results as ``dhmd train`` prints them: the test metrics per seed
    (:func:`~dhmd_graph.train.format_table`), then the baselines beside the model's mean
    and the verdict (:func:`~dhmd_graph.baselines.format_report`), where fitted."""
    from dhmd_graph.train import format_table

    text = format_table(results)
    record = results.get("baselines")
    if record is None:
        return text
    if "results" not in record:
        return f"{text}\nbaselines: {record['error']}"
    from dhmd_graph.baselines import format_report

    return f"{text}\n\n{format_report(record, results['mean'])}"
