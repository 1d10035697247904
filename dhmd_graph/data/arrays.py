r"""One's own features as plain arrays: in Python, and as a folder on disk.

In Python, :meth:`MultimodalDataset.from_arrays` (:func:`dataset_from_arrays`) builds a
split from any named modalities, each given as one padded array or as a list of
per-sample sequences of different lengths, with any kind of label (or none).

On disk, a dataset is a folder (:func:`load_arrays` reads it, :func:`write_arrays`
writes it)::

    labels.csv               one row per sample: id, split, the labels (header required)
    <modality>.npy           (N, T_m, d_m) float features, row i = row i of labels.csv;
                             or (N, d_m) float, one vector per sample (read as T_m = 1);
                             or (N, T_m) integer token ids (id 0 is padding)
    <modality>_lengths.npy   (N,) integer true lengths in [1, T_m]   (optional: all T_m)
    extra.<name>.npy         (N, ...) a per-sample extra that models do not read, e.g.
                             the synthetic data's modality_reliability (optional)
    vocabulary.json          the words of the token ids, a JSON list  (optional)
    labels.npy               (N, C) multi-hot labels of 0/1           (optional)
    dataset.json             the kind of the labels and the class names (optional)

``labels.csv`` has the columns ``id`` (unique within a split) and ``split`` (``train``,
``valid`` or ``test``), then the labels: a ``label`` column of scores or classes, or one
``label_<name>`` column of 0/1 per multi-hot label, or none (see
:mod:`dhmd_graph.data.folder_labels` for the kinds, ``dataset.json`` and what is
inferred). It may add ``raw_text`` (the utterance) and ``<modality>_label`` (a unimodal
score, as CH-SIMS has). Any other column is an error, so that a misspelt one is not
silently ignored. Every ``<name>.npy`` that is not ``labels.npy``, a ``*_lengths.npy``
or an ``extra.*.npy`` file is a modality; the modalities are taken in the order of their
names.

**Training needs every split labelled; prediction does not.** By default
:func:`load_arrays` requires samples of all three splits and labels; with
``partial=True`` a folder of one or two splits, or without labels, is read as it is:
each split present becomes a dataset (unlabelled: ``labels`` is :obj:`None`, see
:attr:`MultimodalDataset.labelled`).

**Files are read as untrusted input.** Each is opened only if it is a regular file (a
named pipe or a device is an error, never a read that blocks); a file that resolves
outside the folder (a symbolic link) is read with an
:class:`~dhmd_graph.files.OutsideFolderWarning` naming where it leads, as every reader
does (see :mod:`dhmd_graph.files`). ``labels.csv`` is UTF-8 (a byte-order mark is
dropped; a NUL byte is an error naming the line); ``vocabulary.json`` and
``dataset.json`` are parsed with a nesting limit. A ``.npy`` file's header is read and
checked before its data (:func:`~dhmd_graph.data.npy.open_npy`: magic, dtype without
objects, rank, one row per row of ``labels.csv``, no missing bytes), then its data is
memory-mapped; a split whose rows are contiguous in the file stays memory-mapped, others
are copied. Token ids must be non-negative, and below the vocabulary's size when there
is a vocabulary (an unsigned id too large for int64 is refused, not wrapped).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.checks import Location, check_finite, check_labels, float_features
from dhmd_graph.data.folder_labels import (
    DESCRIPTION_FILE,
    LABEL_COLUMN,
    LABEL_PREFIX,
    LABELS_ARRAY,
    LABELS_FILE,
    number_column,
    read_folder_labels,
)
from dhmd_graph.data.npy import open_npy
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import MAX_JSON_BYTES, read_user_csv, read_user_json

__all__ = ["LABELS_FILE", "dataset_from_arrays", "load_arrays", "write_arrays"]

VOCABULARY_FILE = "vocabulary.json"
SPLITS = ("train", "valid", "test")
_LENGTHS = "_lengths"
_EXTRA = "extra."
_UNIMODAL = "_label"
_INT64_MAX = np.iinfo(np.int64).max


def dataset_from_arrays(
    features: Mapping[str, Any],
    labels: Any,
    *,
    lengths: Mapping[str, Any] | None = None,
    ids: Sequence[str] | None = None,
    dataset_type: type[MultimodalDataset] = MultimodalDataset,
    **options: Any,
) -> MultimodalDataset:
    r"""A :class:`MultimodalDataset` from plain arrays .

    Args:
        features (Mapping[str, array or Sequence]): Per modality name, in order, either
            one array — ``(N, T, d)`` float features, ``(N, d)`` float (one step per
            sample) or ``(N, T)`` integer token ids — or a sequence of ``N`` per-sample
            arrays ``(T_i, d)`` float / ``(T_i,)`` integer, padded here with zeros.
        labels (array-like or None): ``(N,)`` or ``(N, C)`` labels of the kind
            ``label_kind`` says (an option), passed on to :class:`MultimodalDataset`;
            :obj:`None` for unlabelled data.
        lengths (Mapping[str, array-like], optional): ``(N,)`` true lengths of the
            modalities given as one padded array (default: their full length); those
            given as sequences take their lengths from the sequences.
            (default: :obj:`None`)
        ids (Sequence[str], optional): ``N`` sample ids. (default: ``'0'``, ``'1'``, ...)
        dataset_type (type, optional): The class to build. (default:
            :class:`MultimodalDataset`)
        **options: Passed on to the class (``label_kind``, ``num_classes``,
            ``label_names``, ``unimodal_labels``, ``raw_text``, ``extras``,
            ``vocabulary``, ``source``, ``split``).

    Raises:
        DatasetError: An array of the wrong rank or type, non-finite features, a negative
            token id (or an unsigned one too large for int64), a token id outside the
            ``vocabulary``, an empty sequence, lengths given for a modality given as
            sequences, or any check of :class:`MultimodalDataset`.
    """
    where = Location(options.get("source") or None, options.get("split") or None)
    lengths = dict(lengths or {})
    unknown = sorted(set(lengths) - set(features))
    if unknown:
        raise where.error("lengths for an unknown modality", f"{unknown[0]}_lengths",
                          f"modalities {list(features)}", f"'{unknown[0]}'",
                          "Give lengths only for the modalities in features")
    arrays = {}
    for name, value in features.items():
        if isinstance(value, np.ndarray):
            arrays[name] = _padded_array(value, where, name)
            lengths.setdefault(name, np.full(len(value), arrays[name].shape[1], dtype=np.int64))
        else:
            if name in lengths:
                raise where.error("lengths given twice", f"{name}_lengths",
                                  "lengths only for a modality given as one padded array",
                                  "a sequence of per-sample arrays and lengths",
                                  "Drop the lengths: they are taken from the sequences")
            arrays[name], lengths[name] = _pad(value, where, name)
        if arrays[name].dtype == np.float32:
            check_finite(arrays[name], where, name, ids)
        else:
            _check_vocabulary(arrays[name], options.get("vocabulary"), where, name, ids)
    if ids is None:
        count = len(np.asarray(labels)) if labels is not None else len(next(iter(arrays.values())))
        ids = [str(i) for i in range(count)]
    return dataset_type(arrays, lengths, labels, ids, **options)


def _check_token_ids(value: np.ndarray, where: Location, name: str) -> None:
    """Integer token ids must be >= 0 and fit int64 (an unsigned id must not wrap)."""
    if not value.size:
        return
    if value.dtype.kind == "u" and value.dtype.itemsize == 8 and int(value.max()) > _INT64_MAX:
        raise where.error("token id too large", name, f"token ids in [0, {_INT64_MAX}]",
                          f"{int(value.max())} (it would wrap around to a negative int64)",
                          "Save the token ids as int64 indices into the vocabulary")
    if value.dtype.kind == "i" and int(value.min()) < 0:
        sample = int(np.argwhere(value < 0)[0][0])
        raise where.error("negative token id", name, "token ids >= 0 (0 is padding)",
                          f"{int(value.min())}, e.g. in sample {sample}",
                          "Save the token ids as indices into the vocabulary")


def _check_vocabulary(tokens: np.ndarray, vocabulary: Sequence[str] | None, where: Location,
                      name: str, ids: Sequence[str] | None) -> None:
    """``(N, T)`` token ids must index the vocabulary, when there is one."""
    if vocabulary is None or not tokens.size:
        return
    largest = int(tokens.max())
    if largest >= len(vocabulary):
        sample = int(np.argwhere(tokens == largest)[0][0])
        label = f" ('{ids[sample]}')" if ids is not None else ""
        raise where.error("token id outside the vocabulary", name,
                          f"token ids below the vocabulary's size, {len(vocabulary)}",
                          f"id {largest} in sample {sample}{label}",
                          f"Give {VOCABULARY_FILE} one word per id (the full vocabulary the "
                          "ids were made with), or tokenise again")


def _padded_array(value: np.ndarray, where: Location, name: str) -> np.ndarray:
    """One modality's padded array: float32 ``(N, T, d)`` or int64 ``(N, T)``."""
    integer = np.issubdtype(value.dtype, np.integer)
    if value.ndim == 2 and integer:
        _check_token_ids(value, where, name)
        return value.astype(np.int64, copy=False)  # (N, T) token ids
    if value.ndim == 2 and np.issubdtype(value.dtype, np.floating):
        value = value[:, None, :]  # (N, 1, d): one vector per sample
    if value.ndim != 3:
        raise where.error("wrong rank", name, "(N, T, d) features, (N, d) vectors or (N, T) "
                          "integer token ids", f"shape {value.shape}, dtype {value.dtype}",
                          "Reshape the array, or pass a list of per-sample arrays")
    if value.dtype == np.float32:
        return value  # as it is: a memory map stays one
    return float_features(value, where, name)


def _pad(sequences: Any, where: Location, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample arrays ``(T_i, d)`` / ``(T_i,)`` padded to ``(N, T, d)`` / ``(N, T)``."""
    items = [np.asarray(item) for item in sequences]
    if not items:
        raise where.error("no samples", name, "one array per sample", "an empty sequence",
                          "Give at least one sample")
    first = items[0]
    integer = first.ndim == 1 and np.issubdtype(first.dtype, np.integer)
    if first.ndim == 1 and not integer:
        items = [item[None] for item in items]  # one vector per sample
    for i, item in enumerate(items):
        shape = (item.ndim, item.shape[1:]) if item.ndim else (0, ())
        if shape != (items[0].ndim, items[0].shape[1:]) or len(item) == 0 or not (
                np.issubdtype(item.dtype, np.number)):
            raise where.error("malformed sequence", f"{name}[{i}]",
                              f"a numeric array shaped like the first, {items[0].shape[1:]} per "
                              "step, with at least one step",
                              f"shape {item.shape}, dtype {item.dtype}",
                              "Give every sample of a modality the same width")
    lengths = np.array([len(item) for item in items], dtype=np.int64)
    dtype = np.int64 if integer else np.float32
    padded = np.zeros((len(items), int(lengths.max()), *items[0].shape[1:]), dtype=dtype)
    for i, item in enumerate(items):
        if integer:
            _check_token_ids(item, where, f"{name}[{i}]")
        padded[i, : len(item)] = item
    return padded, lengths


def load_arrays(folder: str | PathLike, *, label_range: tuple[float, float] | None = None,
                partial: bool = False) -> dict[str, MultimodalDataset]:
    r"""Read a plain-arrays folder (the layout in the module's documentation).

    Args:
        folder (str or PathLike): The folder with ``labels.csv``.
        label_range (tuple[float, float], optional): Inclusive range every score label
            must lie in; :obj:`None` checks only that labels are finite. (default: :obj:`None`)
        partial (bool, optional): Read a folder without labels, or without samples of
            some split, as it is (for describing and predicting); by default both are
            errors, as training needs them. (default: :obj:`False`)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'`` (with
        ``partial``, those with samples), all with the same kind of label, or all
        unlabelled.

    Raises:
        DatasetError: A missing or malformed ``labels.csv``, ``dataset.json`` or
            ``vocabulary.json``, labels that are missing (unless ``partial``) or bad, a
            file that is not a regular file, an array that is not a plain numeric
            ``.npy`` file with one row per label row, token ids outside the
            vocabulary, or any check of :class:`MultimodalDataset`.
    """
    folder = Path(folder)
    label_file = folder / LABELS_FILE
    header, table = _read_table(label_file, folder)
    count = len(table["id"])
    names = sorted(p.stem for p in folder.glob("*.npy")
                   if not (p.stem.endswith(_LENGTHS) or p.stem.startswith(_EXTRA)
                           or p.name == LABELS_ARRAY))
    if not names:
        raise DatasetError("no modality", file=folder, expected="one <modality>.npy per modality",
                           found=f"files {sorted(p.name for p in folder.iterdir())}",
                           fix="Save each modality with np.save(folder / 'text.npy', array)")
    columns = {"id", "split", LABEL_COLUMN, "raw_text", *(f"{n}{_UNIMODAL}" for n in names)}
    unknown = [name for name in header if name not in columns
               and not name.startswith(LABEL_PREFIX)]
    if unknown:
        raise DatasetError("unknown column", file=label_file, field=unknown[0],
                           expected=f"columns among {sorted(columns)} and '{LABEL_PREFIX}<name>' "
                           "(multi-hot labels)", found=f"columns {header}",
                           fix="Rename or remove the column (a unimodal label is "
                           "'<modality>_label' for a modality with a <modality>.npy)")
    labels = read_folder_labels(folder, header, table, count)
    if labels.values is None and not partial:
        raise DatasetError(
            "no labels", file=label_file, expected=f"a '{LABEL_COLUMN}' column (scores or "
            f"classes), '{LABEL_PREFIX}<name>' columns or {LABELS_ARRAY} (multi-hot), to "
            "train on", found=f"the columns {header}",
            fix="Add the labels to train on this folder; a folder without labels can be "
            "described and predicted on, not trained on")
    splits = _splits(table, label_file, partial)
    features = {name: _open(folder, f"{name}.npy", count, "modality") for name in names}
    lengths = {name: _open(folder, f"{name}{_LENGTHS}.npy", count, "lengths")
               for name in names if _present(folder / f"{name}{_LENGTHS}.npy")}
    extras = {p.stem.removeprefix(_EXTRA): _open(folder, p.name, count, "extra")
              for p in sorted(folder.glob(f"{_EXTRA}*.npy"))}
    vocabulary = _read_vocabulary(folder)
    unimodal = {name: number_column(table[f"{name}{_UNIMODAL}"], label_file,
                                    f"{name}{_UNIMODAL}")
                for name in names if f"{name}{_UNIMODAL}" in table}
    datasets = {}
    for split in splits:
        rows = _rows(np.array(table["split"]) == split)
        ids = [table["id"][i] for i in _indices(rows, count)]
        dataset = dataset_from_arrays(
            {name: array[rows] for name, array in features.items()},
            None if labels.values is None else labels.values[rows],
            lengths={name: array[rows] for name, array in lengths.items()}, ids=ids,
            unimodal_labels={name: values[rows] for name, values in unimodal.items()},
            extras={name: values[rows] for name, values in extras.items()},
            raw_text=None if "raw_text" not in table else [table["raw_text"][i]
                                                           for i in _indices(rows, count)],
            vocabulary=vocabulary, label_kind=labels.kind or "score",
            num_classes=labels.num_classes, label_names=labels.names, label_field=labels.field,
            source=str(folder), split=split)
        where = Location(label_file, split)
        if labels.kind == "score":
            check_labels(dataset.labels, label_range or (-np.inf, np.inf), where, LABEL_COLUMN,
                         ids)
        for name in unimodal:
            check_labels(dataset.unimodal_labels[name], label_range or (-np.inf, np.inf),
                         where, f"{name}{_UNIMODAL}", ids)
        datasets[split] = dataset
    return datasets


def _present(path: Path) -> bool:
    """Whether anything is at ``path`` (a broken link too, so that it is named)."""
    return path.exists() or path.is_symlink()


def _read_table(path: Path, folder: Path) -> tuple[list[str], dict[str, list[str]]]:
    """``labels.csv``: its header and its columns of strings, with ids unique within a
    split and every split known."""
    def fail(problem: str, field: str | None, expected: str, found: str, fix: str
             ) -> DatasetError:
        return DatasetError(problem, file=path, field=field, expected=expected, found=found,
                            fix=fix)

    if not _present(path):
        raise fail("cannot read the labels", None, "a UTF-8 CSV file with a header row",
                   "no such file", f"Write {LABELS_FILE} with the columns id, split and the "
                   "labels")
    try:
        rows = read_user_csv(path, root=folder)
    except OSError as error:
        raise fail("cannot read the labels", None, "a UTF-8 CSV file with a header row",
                   f"{type(error).__name__}: {error}",
                   f"Write {LABELS_FILE} with the columns id, split and the labels") from error
    header = rows[0] if rows else []
    missing = [name for name in ("id", "split") if name not in header]
    if missing:
        found = f"the header {header}" if rows else "an empty file"
        raise fail(f"missing column{'s' if len(missing) > 1 else ''} "
                   + ", ".join(f"'{name}'" for name in missing), None,
                   "a first row naming the columns: id, split, then the labels (e.g. "
                   "id,split,label)", found,
                   f"Add the column{'s' if len(missing) > 1 else ''} "
                   + " and ".join(missing) + (" (the first row is the header)" if rows else ""))
    body = rows[1:]
    if len(set(header)) != len(header):
        raise fail("repeated column", None, "each column once", f"header {header}",
                   "Remove the repeated column")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise fail("wrong number of cells", f"line {line}", f"{len(header)} cells",
                       f"{len(row)} cells", "Quote cells that hold commas")
    if not body:
        raise fail("no samples", None, "one row per sample after the header", "the header only",
                   "Add a row per sample")
    table = {name: [row[i] for row in body] for i, name in enumerate(header)}
    seen: dict[tuple[str, str], int] = {}
    for line, (sample, split) in enumerate(zip(table["id"], table["split"], strict=True),
                                           start=2):
        if split not in SPLITS:
            raise fail("unknown split", f"line {line}", f"one of {list(SPLITS)}", repr(split),
                       "Name the split train, valid or test")
        if seen.setdefault((sample, split), line) != line:
            raise fail("repeated id", f"line {line}", "ids unique within a split",
                       f"'{sample}' on lines {seen[sample, split]} and {line}",
                       "Give every sample its id")
    return header, table


def _splits(table: dict[str, list[str]], path: Path, partial: bool) -> list[str]:
    """The splits with samples: all three, or (with ``partial``) at least one."""
    present = [split for split in SPLITS if split in table["split"]]
    absent = [split for split in SPLITS if split not in present]
    if absent and not partial:
        raise DatasetError("empty split", file=path, field="split",
                           expected=f"samples of each of {list(SPLITS)}, to train on",
                           found=f"none of '{absent[0]}'",
                           fix="Put some samples in every split to train on this folder; a "
                           "folder of some splits only can be described and predicted on")
    return present


_ROLES = {  # what each kind of .npy file may hold: dtype kinds, ranks, in words
    "modality": ("iuf", (2, 3), "(N, T, d) or (N, d) float features, or (N, T) integer "
                 "token ids"),
    "lengths": ("iu", (1,), "(N,) integer lengths"),
    "extra": ("biuf", (1, 2, 3, 4), "a per-sample (N, ...) array of numbers or booleans"),
}


def _open(folder: Path, name: str, count: int, role: str) -> np.ndarray:
    """A ``.npy`` file of the folder, header checked, memory-mapped, one row per sample."""
    kinds, ranks, what = _ROLES[role]
    try:
        return open_npy(folder / name, kinds=kinds, ranks=ranks, rows=count, root=folder,
                        what=what)
    except OSError as error:
        raise DatasetError("cannot read an array", file=folder / name, expected=what,
                           found=f"{type(error).__name__}: {error}",
                           fix="Check the file's permissions, or save it again") from error


def _read_vocabulary(folder: Path) -> list[str] | None:
    path = folder / VOCABULARY_FILE
    if not _present(path):
        return None
    try:
        words = read_user_json(path, root=folder, max_bytes=MAX_JSON_BYTES, max_depth=1,
                               what="a JSON list of words")
    except OSError as error:
        words = error
    if not (isinstance(words, list) and all(isinstance(word, str) for word in words)):
        raise DatasetError("malformed vocabulary", file=path, expected="a JSON list of words",
                           found=str(words)[:80], fix="Write the words by id as a JSON list")
    return words


def _rows(selected: np.ndarray) -> slice | np.ndarray:
    """The selected rows: a slice where they are contiguous (a memory map stays one)."""
    indices = np.flatnonzero(selected)
    if indices[-1] - indices[0] + 1 == len(indices):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


def _indices(rows: slice | np.ndarray, count: int) -> range | np.ndarray:
    return range(count)[rows] if isinstance(rows, slice) else rows


def write_arrays(datasets: Mapping[str, MultimodalDataset], folder: str | PathLike) -> Path:
    r"""Write datasets as a plain-arrays folder that :func:`load_arrays` reads back.

    Every kind of label is written, with ``dataset.json`` declaring it: scores and class
    indices as the ``label`` column (class names as ``classes``), multi-hot rows as
    ``labels.npy`` (label names as ``classes``); unlabelled splits get no label column.
    Extras are written with their dtype (booleans included). The splits are written one
    after the other; each modality is padded to its longest sample over all splits. The
    folder is written beside its destination and renamed into place when complete.

    Args:
        datasets (Mapping[str, MultimodalDataset]): Some of the splits ``'train'``,
            ``'valid'``, ``'test'`` (a folder of fewer than three is read back with
            ``partial=True``), with the same modalities, widths and kind of label.
        folder (str or PathLike): A new or empty folder.

    Returns:
        Path: ``folder``.

    Raises:
        DatasetError: ``folder`` holds files, no split or an unknown split is given, or
            the splits differ in modalities, widths or labels.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DatasetError("refusing to write into a folder that is not empty", file=folder,
                           expected="a new or empty folder", found="other files",
                           fix="Choose a new folder")
    unknown = [split for split in datasets if split not in SPLITS]
    if unknown or not datasets:
        raise DatasetError("unknown split" if unknown else "no split",
                           split=unknown[0] if unknown else None,
                           expected=f"some of the splits {list(SPLITS)}",
                           found=f"splits {list(datasets)}", fix="Name the splits train, "
                           "valid and test")
    splits = {split: datasets[split] for split in SPLITS if split in datasets}
    first = next(iter(splits.values()))
    for dataset in splits.values():
        for what, ours, theirs in (
                ("modalities or widths", dataset.feature_dims, first.feature_dims),
                ("labels", _label_description(dataset), _label_description(first)),
                ("unimodal labels", sorted(dataset.unimodal_labels),
                 sorted(first.unimodal_labels)),
                ("extras", sorted(dataset.extras), sorted(first.extras))):
            if ours != theirs:
                raise DatasetError(f"splits differ in {what}", split=dataset.split,
                                   expected=str(theirs), found=str(ours),
                                   fix="Write splits of one dataset")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name in first.modalities:
            steps = max(dataset.features[name].shape[1] for dataset in splits.values())
            array = np.concatenate([_pad_steps(dataset.features[name], steps)
                                    for dataset in splits.values()])
            np.save(work / f"{name}.npy", array, allow_pickle=False)
            np.save(work / f"{name}{_LENGTHS}.npy",
                    np.concatenate([dataset.lengths[name] for dataset in splits.values()]),
                    allow_pickle=False)
        for name in first.extras:
            np.save(work / f"{_EXTRA}{name}.npy",
                    np.concatenate([dataset.extras[name] for dataset in splits.values()]),
                    allow_pickle=False)
        if first.label_kind == "multi_hot":
            np.save(work / LABELS_ARRAY,
                    np.concatenate([dataset.labels for dataset in splits.values()]),
                    allow_pickle=False)
        description = _label_description(first)
        if description:
            (work / DESCRIPTION_FILE).write_text(json.dumps(description), encoding="utf-8")
        _write_table(work / LABELS_FILE, splits)
        if first.vocabulary is not None:
            (work / VOCABULARY_FILE).write_text(json.dumps(first.vocabulary), encoding="utf-8")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return folder


def _label_description(dataset: MultimodalDataset) -> dict[str, Any]:
    """The ``dataset.json`` that declares a split's labels (empty when unlabelled)."""
    if not dataset.labelled:
        return {}
    description: dict[str, Any] = {"label_kind": dataset.label_kind}
    if dataset.label_names is not None:
        description["classes"] = list(dataset.label_names)
    elif dataset.label_kind == "class":
        description["num_classes"] = dataset.num_classes
    return description


def _pad_steps(array: np.ndarray, steps: int) -> np.ndarray:
    padding = [(0, 0), (0, steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(np.asarray(array), padding)


def _write_table(path: Path, splits: dict[str, MultimodalDataset]) -> None:
    first = next(iter(splits.values()))
    unimodal = list(first.unimodal_labels)
    text = all(dataset.raw_text is not None for dataset in splits.values())
    column = first.label_kind in ("score", "class")
    header = ["id", "split", *[LABEL_COLUMN] * column, *(f"{n}{_UNIMODAL}" for n in unimodal)]
    header += ["raw_text"] if text else []
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for split, dataset in splits.items():
            for i, sample in enumerate(dataset.ids):
                row = [sample, split]
                if column:
                    value = dataset.labels[i]
                    row.append(str(int(value)) if first.label_kind == "class"
                               else repr(float(value)))
                row += [repr(float(dataset.unimodal_labels[n][i])) for n in unimodal]
                row += [dataset.raw_text[i]] if text else []
                writer.writerow(row)
