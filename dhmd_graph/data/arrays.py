r"""One's own features as plain arrays: in Python, and as a folder on disk.

In Python, :meth:`MultimodalDataset.from_arrays` (:func:`dataset_from_arrays`) builds a
split from any named modalities, each given as one padded array or as a list of
per-sample sequences of different lengths.

On disk, a dataset is a folder (:func:`load_arrays` reads it, :func:`write_arrays`
writes it)::

    labels.csv               one row per sample: id, split, label (header required)
    <modality>.npy           (N, T_m, d_m) float features, row i = row i of labels.csv;
                             or (N, d_m) float, one vector per sample (read as T_m = 1);
                             or (N, T_m) integer token ids (id 0 is padding)
    <modality>_lengths.npy   (N,) integer true lengths in [1, T_m]   (optional: all T_m)
    extra.<name>.npy         (N, ...) a per-sample extra that models do not read, e.g.
                             the synthetic data's modality_reliability (optional)
    vocabulary.json          the words of the token ids, a JSON list  (optional)

``labels.csv`` has the columns ``id`` (unique within a split), ``split`` (``train``, ``valid`` or
``test``; each must have a sample) and ``label`` (a float, e.g. a sentiment score), and
may add ``raw_text`` (the utterance) and ``<modality>_label`` (a unimodal float label,
as CH-SIMS has). Any other column is an error, so that a misspelt one is not silently
ignored. Every ``<name>.npy`` that is not a ``*_lengths.npy`` or ``extra.*.npy`` file is
a modality; the modalities are taken in the order of their names. The arrays are opened memory-mapped
and saved without pickles (``np.save(path, array, allow_pickle=False)``); a split
whose rows are contiguous in the file stays memory-mapped, others are copied.

Labels are float scores today. :func:`dataset_from_arrays` passes ``labels`` on to the
dataset unchanged, so it takes every label kind the dataset accepts; a new kind (a class
index, a multi-hot vector) needs only its columns read in :func:`load_arrays` (e.g. one
``label`` column of integers, or one column per class) and written in
:func:`write_arrays`.
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
from dhmd_graph.data.errors import DatasetError

__all__ = ["LABELS_FILE", "dataset_from_arrays", "load_arrays", "write_arrays"]

LABELS_FILE = "labels.csv"
VOCABULARY_FILE = "vocabulary.json"
SPLITS = ("train", "valid", "test")
_LENGTHS = "_lengths"
_EXTRA = "extra."
_UNIMODAL = "_label"


def dataset_from_arrays(
    features: Mapping[str, Any],
    labels: Any,
    *,
    lengths: Mapping[str, Any] | None = None,
    ids: Sequence[str] | None = None,
    dataset_type: type[MultimodalDataset] = MultimodalDataset,
    **options: Any,
) -> MultimodalDataset:
    r"""A :class:`MultimodalDataset` from plain arrays (see
    :meth:`MultimodalDataset.from_arrays`, which calls this).

    Args:
        features (Mapping[str, array or Sequence]): Per modality name, in order, either
            one array — ``(N, T, d)`` float features, ``(N, d)`` float (one step per
            sample) or ``(N, T)`` integer token ids — or a sequence of ``N`` per-sample
            arrays ``(T_i, d)`` float / ``(T_i,)`` integer, padded here with zeros.
        labels (array-like): ``(N,)`` labels, passed on to :class:`MultimodalDataset`.
        lengths (Mapping[str, array-like], optional): ``(N,)`` true lengths of the
            modalities given as one padded array (default: their full length); those
            given as sequences take their lengths from the sequences.
            (default: :obj:`None`)
        ids (Sequence[str], optional): ``N`` sample ids. (default: ``'0'``, ``'1'``, ...)
        dataset_type (type, optional): The class to build. (default:
            :class:`MultimodalDataset`)
        **options: Passed on to the class (``unimodal_labels``, ``raw_text``,
            ``extras``, ``vocabulary``, ``source``, ``split``).

    Raises:
        DatasetError: An array of the wrong rank or type, non-finite features, an empty
            sequence, lengths given for a modality given as sequences, or any check of
            :class:`MultimodalDataset`.
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
    if ids is None:
        ids = [str(i) for i in range(len(np.asarray(labels)))]
    return dataset_type(arrays, lengths, labels, ids, **options)


def _padded_array(value: np.ndarray, where: Location, name: str) -> np.ndarray:
    """One modality's padded array: float32 ``(N, T, d)`` or int64 ``(N, T)``."""
    integer = np.issubdtype(value.dtype, np.integer)
    if value.ndim == 2 and integer:
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
        padded[i, : len(item)] = item
    return padded, lengths


def load_arrays(folder: str | PathLike, *, label_range: tuple[float, float] | None = None
                ) -> dict[str, MultimodalDataset]:
    r"""Read a plain-arrays folder (the layout in the module's documentation).

    Args:
        folder (str or PathLike): The folder with ``labels.csv``.
        label_range (tuple[float, float], optional): Inclusive range every label must lie
            in; :obj:`None` checks only that labels are finite. (default: :obj:`None`)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'``.

    Raises:
        DatasetError: A missing or malformed ``labels.csv``, an array that is not
            numeric, not saved without pickles, or does not have one row per label row,
            or any check of :class:`MultimodalDataset`.
    """
    folder = Path(folder)
    table = _read_table(folder / LABELS_FILE)
    count = len(table["id"])
    names = sorted(p.stem for p in folder.glob("*.npy")
                   if not (p.stem.endswith(_LENGTHS) or p.stem.startswith(_EXTRA)))
    if not names:
        raise DatasetError("no modality", file=folder, expected="one <modality>.npy per modality",
                           found=f"files {sorted(p.name for p in folder.iterdir())}",
                           fix="Save each modality with np.save(folder / 'text.npy', array)")
    columns = {"id", "split", "label", "raw_text", *(f"{n}{_UNIMODAL}" for n in names)}
    unknown = sorted(set(table) - columns)
    if unknown:
        raise DatasetError("unknown column", file=folder / LABELS_FILE, field=unknown[0],
                           expected=f"columns among {sorted(columns)}",
                           found=f"columns {list(table)}",
                           fix="Rename or remove the column (a unimodal label is "
                           "'<modality>_label' for a modality with a <modality>.npy)")
    features = {name: _open(folder / f"{name}.npy", count) for name in names}
    lengths = {name: _open(folder / f"{name}{_LENGTHS}.npy", count)
               for name in names if (folder / f"{name}{_LENGTHS}.npy").is_file()}
    extras = {p.stem.removeprefix(_EXTRA): _open(p, count)
              for p in sorted(folder.glob(f"{_EXTRA}*.npy"))}
    vocabulary = _read_vocabulary(folder / VOCABULARY_FILE)
    label_file = folder / LABELS_FILE
    labels = _floats(table, "label", label_file)
    unimodal = {name: _floats(table, f"{name}{_UNIMODAL}", label_file)
                for name in names if f"{name}{_UNIMODAL}" in table}
    datasets = {}
    for split in SPLITS:
        rows = _rows(np.array(table["split"]) == split)
        ids = [table["id"][i] for i in _indices(rows, count)]
        dataset = dataset_from_arrays(
            {name: array[rows] for name, array in features.items()}, labels[rows],
            lengths={name: array[rows] for name, array in lengths.items()}, ids=ids,
            unimodal_labels={name: values[rows] for name, values in unimodal.items()},
            extras={name: values[rows] for name, values in extras.items()},
            raw_text=None if "raw_text" not in table else [table["raw_text"][i]
                                                           for i in _indices(rows, count)],
            vocabulary=vocabulary, label_field="label", source=str(folder), split=split)
        where = Location(label_file, split)
        check_labels(dataset.labels, label_range or (-np.inf, np.inf), where, "label", ids)
        for name in unimodal:
            check_labels(dataset.unimodal_labels[name], label_range or (-np.inf, np.inf),
                         where, f"{name}{_UNIMODAL}", ids)
        datasets[split] = dataset
    return datasets


def _read_table(path: Path) -> dict[str, list[str]]:
    """``labels.csv`` as columns of strings, with ids unique and splits known and present."""
    def fail(problem: str, field: str | None, expected: str, found: str, fix: str
             ) -> DatasetError:
        return DatasetError(problem, file=path, field=field, expected=expected, found=found,
                            fix=fix)

    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise fail("cannot read the labels", None, "a UTF-8 CSV file with a header row",
                   f"{type(error).__name__}: {error}",
                   f"Write {LABELS_FILE} with the columns id, split, label") from error
    if not rows or not {"id", "split", "label"} <= set(rows[0]):
        raise fail("missing columns", None, "a header with the columns id, split, label",
                   f"header {rows[0] if rows else 'none'}", "Add the header row")
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise fail("repeated column", None, "each column once", f"header {header}",
                   "Remove the repeated column")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise fail("wrong number of cells", f"line {line}", f"{len(header)} cells",
                       f"{len(row)} cells", "Quote cells that hold commas")
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
    for split in SPLITS:
        if split not in table["split"]:
            raise fail("empty split", "split", f"samples of each of {list(SPLITS)}",
                       f"none of '{split}'", "Put some samples in every split")
    return table


def _floats(table: dict[str, list[str]], column: str, path: Path) -> np.ndarray:
    values = np.empty(len(table[column]), dtype=np.float32)
    for i, text in enumerate(table[column]):
        try:
            values[i] = float(text)
        except ValueError:
            raise DatasetError("label is not a number", file=path, field=f"{column}, line {i + 2}",
                               expected="a float", found=repr(text),
                               fix="Write one number per cell") from None
    return values


def _open(path: Path, count: int) -> np.ndarray:
    """A ``.npy`` file, memory-mapped, with one row per sample."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError("cannot read an array", file=path,
                           expected="a numeric .npy file saved with allow_pickle=False",
                           found=f"{type(error).__name__}: {error}",
                           fix="Save a numeric array (pad ragged sequences and give "
                           "<modality>_lengths.npy) with np.save") from error
    if not np.issubdtype(array.dtype, np.number) or array.ndim == 0 or len(array) != count:
        raise DatasetError("array does not match the labels", file=path,
                           expected=f"a numeric array with one row per label row ({count})",
                           found=f"shape {array.shape}, dtype {array.dtype}",
                           fix=f"Save row i of every array for row i of {LABELS_FILE}")
    if path.stem.endswith(_LENGTHS) and (array.ndim != 1
                                         or not np.issubdtype(array.dtype, np.integer)):
        raise DatasetError("wrong lengths", file=path, expected="a (N,) integer array",
                           found=f"shape {array.shape}, dtype {array.dtype}",
                           fix="Save one integer length per sample")
    return array


def _read_vocabulary(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        words = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
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

    The splits are written one after the other; each modality is padded to its longest
    sample over all splits. The folder is written beside its destination and renamed
    into place when complete.

    Args:
        datasets (Mapping[str, MultimodalDataset]): The splits ``'train'``, ``'valid'``,
            ``'test'``, with the same modalities and widths.
        folder (str or PathLike): A new or empty folder.

    Returns:
        Path: ``folder``.

    Raises:
        DatasetError: ``folder`` holds files, a split is missing, or the splits differ
            in modalities or widths.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DatasetError("refusing to write into a folder that is not empty", file=folder,
                           expected="a new or empty folder", found="other files",
                           fix="Choose a new folder")
    missing = [split for split in SPLITS if split not in datasets]
    if missing:
        raise DatasetError("missing split", split=missing[0], expected=f"splits {list(SPLITS)}",
                           found=f"splits {list(datasets)}", fix="Give all three splits")
    splits = [datasets[split] for split in SPLITS]
    first = splits[0]
    for dataset in splits[1:]:
        if dataset.feature_dims != first.feature_dims:
            raise DatasetError("splits differ in modalities or widths", split=dataset.split,
                               expected=str(first.feature_dims), found=str(dataset.feature_dims),
                               fix="Write splits of one dataset")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name in first.modalities:
            steps = max(dataset.features[name].shape[1] for dataset in splits)
            array = np.concatenate([_pad_steps(dataset.features[name], steps)
                                    for dataset in splits])
            np.save(work / f"{name}.npy", array, allow_pickle=False)
            np.save(work / f"{name}{_LENGTHS}.npy",
                    np.concatenate([dataset.lengths[name] for dataset in splits]),
                    allow_pickle=False)
        for name in first.extras:
            np.save(work / f"{_EXTRA}{name}.npy",
                    np.concatenate([dataset.extras[name] for dataset in splits]),
                    allow_pickle=False)
        _write_table(work / LABELS_FILE, dict(zip(SPLITS, splits, strict=True)))
        if first.vocabulary is not None:
            (work / VOCABULARY_FILE).write_text(json.dumps(first.vocabulary), encoding="utf-8")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return folder


def _pad_steps(array: np.ndarray, steps: int) -> np.ndarray:
    padding = [(0, 0), (0, steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(np.asarray(array), padding)


def _write_table(path: Path, splits: dict[str, MultimodalDataset]) -> None:
    first = splits["train"]
    unimodal = list(first.unimodal_labels)
    text = all(dataset.raw_text is not None for dataset in splits.values())
    header = ["id", "split", "label", *(f"{n}{_UNIMODAL}" for n in unimodal)]
    header += ["raw_text"] if text else []
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for split, dataset in splits.items():
            for i, sample in enumerate(dataset.ids):
                row = [sample, split, repr(float(dataset.labels[i]))]
                row += [repr(float(dataset.unimodal_labels[n][i])) for n in unimodal]
                row += [dataset.raw_text[i]] if text else []
                writer.writerow(row)
