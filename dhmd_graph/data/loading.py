"""One entry point for every dataset on disk, and conversion to the cache.

:func:`load_dataset` picks the reader from what the path is (or from its ``format``
argument):

=====================================================  =======================  ==========
path                                                   reader                   ``format``
=====================================================  =======================  ==========
a folder with ``manifest.json``                        :func:`load_cache`       ``cache``
a folder with ``train.pkl``, ``dev.pkl``, ``test.pkl``  :func:`load_misa`        ``misa``
a folder with ``labels.csv`` and ``<modality>.npy``     :func:`load_arrays`      ``arrays``
a ``.json`` alignment recipe of ``.csd`` files          :func:`load_alignment`   ``csd``
a ``.pkl`` file whose splits hold ``labels``           :func:`load_mult`        ``mult``
(and no ``regression_labels``)
any other ``.pkl`` file                                :func:`load_mmsa`        ``mmsa``
=====================================================  =======================  ==========

A pickle is read once, then handed to the reader of its format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dhmd_graph.data.align import alignment_files, load_alignment, recipe_label_range
from dhmd_graph.data.arrays import LABELS_FILE, load_arrays
from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.cache import (
    MANIFEST,
    load_cache,
    read_manifest,
    remove_stale_work,
    sha256_file,
    source_digest,
    write_cache,
)
from dhmd_graph.data.checks import check_splits
from dhmd_graph.data.misa import MISA_FILES, load_misa
from dhmd_graph.data.mmsa import SENTIMENT_RANGE, SIMS_RANGE, read_mmsa
from dhmd_graph.data.mult import read_mult
from dhmd_graph.data.safe_pickle import load_pickle
from dhmd_graph.errors import ConfigError, DatasetError

__all__ = ["FORMATS", "ModalityInput", "convert_to_cache", "describe", "label_kind_line",
           "load_dataset", "modality_inputs", "modality_steps", "pickle_format"]

FORMATS = ("arrays", "cache", "csd", "misa", "mmsa", "mult")
_PICKLE_READERS = {"mmsa": read_mmsa, "mult": read_mult}

_KNOWN = ("an MMSA .pkl file, a cache folder with manifest.json, "
          "a MISA folder with train.pkl, dev.pkl and test.pkl, "
          "a plain-arrays folder with labels.csv and <modality>.npy files, "
          "or a .json alignment recipe of .csd files")


def load_dataset(path: str | PathLike, *, format: str | None = None,
                 label_range: tuple[float, float] | None = None, verify: bool = False,
                 mmsa_labels: str = "regression", mmsa_text: str = "features",
                 partial: bool = False, **options: Any) -> dict[str, MultimodalDataset]:
    r"""Read any supported dataset into one :class:`MultimodalDataset` per split.

    Whatever the reader, the result has the splits ``train``, ``valid`` and ``test``
    with the same modalities and feature widths, or a :class:`DatasetError` says which
    split differs, before any training starts. With ``partial``, for describing and
    predicting, a plain-arrays folder may also hold only some splits, or no labels
    (:attr:`MultimodalDataset.labelled` is then :obj:`False`).

    Args:
        path (str or PathLike): An MMSA or MulT pickle, a cache folder, a MISA folder, a
            plain-arrays folder (see :mod:`dhmd_graph.data.arrays`) or an alignment
            recipe (see :mod:`dhmd_graph.data.align`).
        format (str, optional): One of :data:`FORMATS`; :obj:`None` tells it from the
            path and, for a pickle, from its fields (see the module docstring).
            (default: :obj:`None`)
        label_range (tuple[float, float], optional): Inclusive range of valid labels for
            the pickle readers; :obj:`None` keeps each reader's default. A cache checks
            the range it was converted with. (default: :obj:`None`)
        verify (bool, optional): For a cache, also check the checksums and every value
            (see :func:`~dhmd_graph.data.load_cache`); the other readers always check
            every value. (default: :obj:`False`)
        mmsa_labels (str, optional): Which of an MMSA pickle's two label arrays to read:
            ``'regression'`` (scores) or ``'classification'`` (MMSA's 3-class sentiment);
            every other format has one kind of label and ignores it.
            (default: ``'regression'``)
        mmsa_text (str, optional): An MMSA pickle's ``text``: ``'features'`` or
            ``'bert'`` (its BERT tokens ``text_bert``, for a model with ``bert_path``);
            every other format ignores it. (default: ``'features'``)
        partial (bool, optional): Accept data that cannot be trained on: some splits
            only, or no labels (a plain-arrays folder; the other formats always have all
            three labelled splits). (default: :obj:`False`)
        **options: Passed to the pickle reader: ``labels='classification'`` for
            :func:`~dhmd_graph.data.load_mmsa`; ``label_kind``, ``label_names`` for
            :func:`~dhmd_graph.data.load_mult`.

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'`` (with
        ``partial``, those present).

    Raises:
        DatasetError: The path does not exist, is of no known kind, or holds bad data.
        ValueError: An unknown ``format``, or ``options`` for a folder format.
    """
    if format is not None and format not in FORMATS:
        raise ConfigError(f"load_dataset: format must be one of {list(FORMATS)} or None; "
                          f"found {format!r}.")
    path = Path(path)
    datasets = _read(path, format, label_range, verify, mmsa_labels, mmsa_text, partial,
                     options)
    folder = path.is_dir() and not (path / MANIFEST).is_file()  # a cache keeps every split
    check_splits(datasets, path,
                 required=() if partial and folder else ("train", "valid", "test"))
    return datasets


def _read(path: Path, format: str | None, label_range: tuple[float, float] | None,
          verify: bool, mmsa_labels: str, mmsa_text: str, partial: bool,
          options: dict[str, Any]) -> dict[str, MultimodalDataset]:
    """The splits from the reader that ``path`` and ``format`` select."""
    range_option = {} if label_range is None else {"label_range": label_range}
    if (path.is_dir() or path.suffix == ".json") and options:
        raise ConfigError(f"load_dataset: options {sorted(options)} apply to pickle files "
                          f"only; '{path}' is not one.")
    if path.is_dir() and format in (None, "arrays", "cache", "misa"):
        if format in (None, "cache") and (path / MANIFEST).is_file():
            return load_cache(path, verify=verify)
        if format in (None, "misa") and all((path / name).is_file()
                                            for name in MISA_FILES.values()):
            return load_misa(path, **range_option)
        labels = path / LABELS_FILE  # anything there, so that a pipe or a link is named
        if format in (None, "arrays") and (labels.exists() or labels.is_symlink()):
            return load_arrays(path, partial=partial, **range_option)
    elif path.is_file() and path.suffix == ".pkl" and format in (None, "mmsa", "mult"):
        data = load_pickle(path)
        kind = format or pickle_format(data)
        if kind == "mmsa" and mmsa_labels != "regression":
            options = {"labels": mmsa_labels, **options}
        if kind == "mmsa" and mmsa_text != "features":
            options = {"text": mmsa_text, **options}
        return _PICKLE_READERS[kind](data, path, **range_option, **options)
    elif path.is_file() and path.suffix == ".json" and format in (None, "csd"):
        return load_alignment(path, **range_option)
    raise DatasetError("unrecognised dataset path", file=path, expected=_KNOWN,
                       found=_describe(path),
                       fix="Point to one of these (.csd files are aligned through a recipe, "
                       "see dhmd_graph.data.align)"
                       + ("" if format is None else f", or drop format={format!r}"))


def pickle_format(data: object) -> str:
    """``'mult'`` when the train split holds ``labels`` and no ``regression_labels`` (a
    MulT file), else ``'mmsa'`` (whose reader explains what is wrong with other data)."""
    train = data.get("train") if isinstance(data, dict) else None
    if isinstance(train, dict) and "labels" in train and "regression_labels" not in train:
        return "mult"
    return "mmsa"


def _describe(path: Path) -> str:
    if not path.exists():
        return "nothing at this path"
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        return f"a folder with {names[:8]}" + (" ..." if len(names) > 8 else "")
    return f"a '{path.suffix}' file"


def convert_to_cache(pickle_path: str | PathLike, cache_dir: str | PathLike, *,
                     overwrite: bool = False, label_range: tuple[float, float] | None = None,
                     format: str | None = None, **options: Any) -> Path:
    r"""Convert a dataset once into a memory-mapped cache (see :mod:`dhmd_graph.data.cache`).

    The source is read once and validated by its reader, then written array by array
    with the range its score labels were checked against (``label_range`` or the
    reader's default), which every read of the cache checks again. Unless
    ``overwrite`` is set, a cache of the same source (same sha256, read with the same
    ``format`` and ``options``) already at ``cache_dir`` is kept, after checking its
    checksums and values (``load_cache(..., verify=True)``), and the source is not read.

    Args:
        pickle_path (str or PathLike): An MMSA or MulT pickle, or a MISA folder of pickles.
        cache_dir (str or PathLike): The cache folder to create.
        overwrite (bool, optional): Replace a cache of another source at ``cache_dir``.
            (default: :obj:`False`)
        label_range (tuple[float, float], optional): Passed to the reader.
            (default: :obj:`None`)
        format (str, optional): As for :func:`load_dataset`. (default: :obj:`None`)
        **options: Passed to the reader, as for :func:`load_dataset`.

    Returns:
        Path: ``cache_dir``.

    Raises:
        DatasetError: The source holds bad data, the existing cache of this source is
            damaged, or ``cache_dir`` holds something else and ``overwrite`` is :obj:`False`.
    """
    cache_dir = Path(cache_dir)
    remove_stale_work(cache_dir)  # what killed conversions left (cache module docstring)
    digest = _source_digest(Path(pickle_path)) if Path(pickle_path).exists() else None
    reader = {"format": format, **options} if format or options else None
    if digest is not None and reader is not None:
        digest["reader"] = json.loads(json.dumps(reader))  # as it reads back from JSON
    if digest is not None and not overwrite and (cache_dir / MANIFEST).is_file():
        existing = read_manifest(cache_dir).get("source") or {}
        if isinstance(existing, dict) and (existing.get("sha256"), existing.get("reader")) \
                == (digest["sha256"], digest.get("reader")):
            load_dataset(cache_dir, verify=True)
            return cache_dir
    source = Path(pickle_path)
    datasets = load_dataset(source, format=format, label_range=label_range, **options)
    return write_cache(datasets, cache_dir, source=digest, overwrite=overwrite,
                       label_range=_checked_label_range(source, datasets, label_range))


def _checked_label_range(source: Path, datasets: Mapping[str, MultimodalDataset],
                        label_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """The range the reader checked the score labels of ``source`` against, which the
    cache records and checks on every read: ``label_range`` when given, else the reader's
    default (CH-SIMS ``(-1, 1)`` when there are unimodal labels, else ``(-3, 3)``; a
    recipe's ``label_range``); :obj:`None` (finite labels only) for class and multi-hot
    labels, which every :class:`MultimodalDataset` checks itself, and for the
    plain-arrays format, which takes any finite score."""
    if datasets["train"].label_kind != "score":
        return None
    if label_range is not None:
        return label_range
    if source.is_dir() and (source / MANIFEST).is_file():
        recorded = read_manifest(source).get("label_range")
        return None if recorded is None else tuple(recorded)
    if source.is_file() and source.suffix == ".json":
        return recipe_label_range(source)
    if source.is_dir() and not all((source / name).is_file() for name in MISA_FILES.values()):
        return None  # a plain-arrays folder
    return SIMS_RANGE if datasets["train"].unimodal_labels else SENTIMENT_RANGE


def _source_digest(source: Path) -> dict:
    """:func:`source_digest`; for a recipe, over the recipe and the files it names."""
    digest = source_digest(source)
    if not (source.is_file() and source.suffix == ".json"):
        return digest
    files = alignment_files(source)
    if not all(file.is_file() for file in files):
        return digest  # the reader names the missing file
    combined = hashlib.sha256(digest["sha256"].encode())
    for file in files:
        combined.update(f"{file.resolve()}\0{sha256_file(file)}\n".encode())
    return {"path": digest["path"], "bytes": digest["bytes"] + sum(f.stat().st_size for f in files),
            "sha256": combined.hexdigest(), "files": [str(f) for f in files]}

class ModalityInput(NamedTuple):
    r"""What a model needs to know of one modality's input.

    Attributes:
        input_dim (int or None): The feature width :math:`d_m` of ``(N, T, d_m)`` float
            features; :obj:`None` for ``(N, T)`` token ids.
        vocab_size (int or None): For token ids, the number of ids an embedding must
            hold: the vocabulary's size, and at least the largest id in any split + 1;
            :obj:`None` for float features and BERT tokens.
        bert_tokens (bool): :obj:`True` for ``(N, T, 3)`` integer BERT tokens (ids,
            attention mask, segment ids; ``load_mmsa(..., text="bert")``), which a
            model reads with a BERT encoder (``bert_path``), not as 3-wide features.
            (default: :obj:`False`)
    """

    input_dim: int | None
    vocab_size: int | None
    bert_tokens: bool = False


def modality_inputs(datasets: Mapping[str, MultimodalDataset]) -> dict[str, ModalityInput]:
    r"""Per modality, the input width or vocabulary size the data needs, over all splits.

    Args:
        datasets (Mapping[str, MultimodalDataset]): The splits, e.g. from
            :func:`load_dataset`.
    """
    first = next(iter(datasets.values()))
    inputs = {}
    for name, array in first.features.items():
        if array.ndim == 3 and array.dtype.kind in "iu" and array.shape[2] == 3:
            inputs[name] = ModalityInput(None, None, bert_tokens=True)
            continue
        if array.ndim == 3:
            inputs[name] = ModalityInput(int(array.shape[2]), None)
            continue
        largest = max(int(split.features[name].max()) for split in datasets.values())
        known = max((len(split.vocabulary) for split in datasets.values()
                     if split.vocabulary is not None), default=0)
        inputs[name] = ModalityInput(None, max(largest + 1, known, 2))
    return inputs


def modality_steps(datasets: Mapping[str, MultimodalDataset]) -> dict[str, int]:
    r"""Per modality, the longest true length over all splits: 1 for a modality without
    a time axis (``(N, d)`` or ``(N, 1, d)`` features, one vector per sample).

    Args:
        datasets (Mapping[str, MultimodalDataset]): The splits, e.g. from
            :func:`load_dataset`.
    """
    first = next(iter(datasets.values()))
    return {name: max(int(split.lengths[name].max()) for split in datasets.values())
            for name in first.features}


def describe(datasets: dict[str, MultimodalDataset], *, width: int = 40) -> str:
    r"""A text summary of each split: sizes, shapes, length ranges and labels.

    The first line names the kind of label (:func:`label_kind_line`). The label histogram counts scores rounded to the nearest integer
    (the 7 sentiment classes of MOSI/MOSEI), or to steps of 0.2 when all labels lie in
    [-1, 1] (the grid of CH-SIMS); class labels are counted per class and multi-hot
    labels per label (the samples where it is present). The last lines give :func:`modality_inputs`: the
    input of each modality that ``dhmd train`` builds the model with.

    Args:
        datasets (dict[str, MultimodalDataset]): The splits, e.g. from :func:`load_dataset`.
        width (int, optional): Characters of the longest histogram bar. (default: :obj:`40`)
    """
    lines = [label_kind_line(next(iter(datasets.values())))]
    for split, dataset in datasets.items():
        lines.append(f"{split}: {len(dataset)} samples")
        for name, array in dataset.features.items():
            length = dataset.lengths[name]
            kind = str(array.dtype)
            if array.ndim == 2 and dataset.vocabulary is not None:
                kind = f"token ids over {len(dataset.vocabulary)} words"
            lines.append(f"  {name:<8} shape {tuple(array.shape)} {kind}, length "
                         f"{length.min()}..{length.max()} (mean {length.mean():.1f})")
        lines += _label_summary(dataset, width)
    lines.append("model inputs (taken from the data by 'dhmd train'):")
    for name, (input_dim, vocab_size, bert_tokens) in modality_inputs(datasets).items():
        built = ("BERT token ids: bert_path=<a BERT folder>" if bert_tokens
                 else f"input_dim={input_dim}" if input_dim is not None
                 else f"token ids: input_dim=None, vocab_size={vocab_size}")
        lines.append(f"  {name:<8} {built}")
    return "\n".join(lines)


def label_kind_line(dataset: MultimodalDataset) -> str:
    """One line naming a dataset's kind of label, e.g. ``label kind: class (3 classes:
    negative, neutral, positive)``, or ``label kind: none (unlabelled: ...)``."""
    if not dataset.labelled:
        return "label kind: none (unlabelled: for describing and predicting, not training)"
    if dataset.label_kind == "score":
        return "label kind: score (one number per sample)"
    noun = "classes" if dataset.label_kind == "class" else "labels"
    names = dataset.label_names
    shown = "" if names is None else ": " + ", ".join(names[:12]) + (
        ", ..." if len(names) > 12 else "")
    return f"label kind: {dataset.label_kind} ({dataset.num_classes} {noun}{shown})"


def _label_summary(dataset: MultimodalDataset, width: int) -> list[str]:
    labels = dataset.labels
    if not dataset.labelled:
        return ["  labels   none"]
    if dataset.label_kind == "score":
        step = 1.0 if np.abs(labels).max() > 1 else 0.2
        grid = np.round(labels / step) * step + 0.0  # + 0.0 turns -0 into 0
        values, counts = np.unique(grid, return_counts=True)
        names = [f"{value:>+6.1f}" for value in values]
        head = (f"  labels   mean {labels.mean():.3f}, std {labels.std():.3f}, "
                f"range [{labels.min():.2f}, {labels.max():.2f}]")
    else:
        classes = dataset.num_classes
        counts = (np.bincount(labels, minlength=classes) if dataset.label_kind == "class"
                  else labels.sum(axis=0).astype(np.int64))
        names = list(dataset.label_names or (str(c) for c in range(classes)))
        head = (f"  labels   {classes} classes, one per sample" if dataset.label_kind == "class"
                else f"  labels   {classes} multi-hot labels, {labels.sum(1).mean():.2f} "
                     "present per sample")
    widest = max(len(name) for name in names)
    bars = [f"  {name:>{widest}} | {'#' * max(1, round(width * count / max(counts.max(), 1)))} "
            f"{count}" for name, count in zip(names, counts, strict=True)]
    return [head, *bars]
