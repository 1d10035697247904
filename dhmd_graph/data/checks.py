"""Array checks shared by the readers; each failure is a :class:`DatasetError`.

The checks walk large arrays in blocks of samples, so validating a multi-GB split
needs only a block's worth of temporary memory.

**What a reader materialises is bounded by the size of its file.** A small file can
declare a huge result: a pickle whose rows are one shared list referenced a million
times, a pickled array header with a terabyte shape, an HDF5 dataset with a huge
declared shape, ragged samples that pad to a huge block. Every reader charges what it
is about to create beyond the file's own bytes to a :class:`Budget` of
:data:`EXPANSION_LIMIT` bytes per byte of the file (plus :data:`MIN_BUDGET`), and
refuses the file with a :class:`DatasetError` before allocating when the budget would be
exceeded. Real files stay far below it (their arrays are their bytes); to read a file
that legitimately expands more (e.g. a highly compressed ``.csd``), set the environment
variable ``DHMD_EXPANSION_LIMIT`` to a larger factor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.errors import ConfigError, DatasetError

__all__ = ["EXPANSION_LIMIT", "MIN_BUDGET", "Budget", "Location", "as_array", "check_finite",
           "check_labels", "check_splits", "float_features", "zero_negative_infinity"]

BLOCK = 1024  # samples per block when scanning large arrays

EXPANSION_LIMIT = 16.0
"""Bytes a reader may materialise per byte of the file it reads (see the module docstring);
the environment variable ``DHMD_EXPANSION_LIMIT`` overrides it."""

MIN_BUDGET = 64 << 20
"""Bytes every file may materialise whatever its size (64 MiB), so that tiny files with
honest padding are never refused."""

_MAX_DEPTH = 32  # numpy arrays have at most 64 dimensions; our fields at most 3


class Budget:
    r"""The bytes a reader may still materialise for one file (see the module docstring).

    Args:
        file (str or PathLike): The file (or folder of files) being read; its size sets
            the budget, ``EXPANSION_LIMIT * size + MIN_BUDGET`` bytes.
    """

    def __init__(self, file: str | PathLike) -> None:
        self.file = Path(file)
        size = (sum(p.stat().st_size for p in self.file.rglob("*") if p.is_file())
                if self.file.is_dir() else self.file.stat().st_size)
        self.total = int(expansion_limit() * size) + MIN_BUDGET
        self.left = self.total

    def spend(self, nbytes: int, what: str, split: str | None = None) -> None:
        """Charge ``nbytes`` for ``what``; raise a :class:`DatasetError` if the budget is spent."""
        if nbytes > self.left:
            raise DatasetError(
                "the file declares more data than it holds", file=self.file, split=split,
                field=what, expected=f"at most {self.total:,} bytes of arrays from this file "
                f"({expansion_limit():g} per byte of the file, plus {MIN_BUDGET >> 20} MiB)",
                found=f"{nbytes:,} more bytes declared ({self.total - self.left:,} already read)",
                fix="The file is corrupt or crafted (e.g. rows that are one shared list, or a "
                "huge declared shape). If you trust it, raise the limit with the environment "
                "variable DHMD_EXPANSION_LIMIT")
        self.left -= nbytes


def expansion_limit() -> float:
    """:data:`EXPANSION_LIMIT`, or the factor in ``$DHMD_EXPANSION_LIMIT``."""
    text = os.environ.get("DHMD_EXPANSION_LIMIT")
    if text is None:
        return EXPANSION_LIMIT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ConfigError(f"DHMD_EXPANSION_LIMIT: expected a positive number, found {text!r}. "
                          "Unset it or give a factor such as 64.")
    return value


@dataclass(frozen=True)
class Location:
    """Where an array came from, for messages and its :class:`Budget`: the file and the split."""

    file: str | PathLike
    split: str
    budget: Budget | None = None

    def error(self, problem: str, field: str, expected: str, found: str, fix: str) -> DatasetError:
        return DatasetError(problem, file=self.file, split=self.split, field=field,
                            expected=expected, found=found, fix=fix)


def _declared_elements(value, where: Location, field: str) -> int:
    """Scalars in a nested list/tuple as :func:`numpy.asarray` would expand it, counting a
    shared sub-list once per reference, in time linear in the *distinct* lists."""
    counts: dict[int, int] = {}
    open_lists: set[int] = set()

    def count(item, depth: int) -> int:
        if isinstance(item, np.ndarray):
            return item.size
        if not isinstance(item, (list, tuple)):
            return 1
        key = id(item)
        if key in counts:
            return counts[key]
        if key in open_lists or depth > _MAX_DEPTH:
            raise where.error("not an array", field, "nested lists of numbers",
                              "a list that contains itself or is nested more than "
                              f"{_MAX_DEPTH} deep", "Export the field as a numpy array")
        open_lists.add(key)
        counts[key] = sum(count(child, depth + 1) for child in item)
        open_lists.discard(key)
        return counts[key]

    return count(value, 0)


def as_array(value, where: Location, field: str) -> np.ndarray:
    """``value`` as a numpy array. An array is returned as it is; nested lists are first
    charged to ``where.budget`` (8 bytes per declared scalar, shared rows counted every
    time they appear), so a small pickle of shared rows is refused instead of expanded."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)) and where.budget is not None:
        where.budget.spend(8 * _declared_elements(value, where, field), field, where.split)
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RecursionError) as error:
        raise where.error("not an array", field, "a rectangular array of numbers",
                          f"{type(value).__name__} ({type(error).__name__}: {error})",
                          "Export the field as a numpy array") from None


def float_features(value, where: Location, field: str) -> np.ndarray:
    """``value`` as a float32 ``(N, T, d)`` array; a float32 input is not copied."""
    array = as_array(value, where, field)
    if array.ndim != 3:
        raise where.error("wrong rank", field, "a (N, T, d) array", f"shape {array.shape}",
                          "Re-export the field with one (T, d) matrix per sample")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise where.error("features are not numeric", field, "a float array",
                          f"dtype {array.dtype}", "Re-export the field as a float array")
    return array.astype(np.float32, copy=False)


def zero_negative_infinity(array: np.ndarray) -> np.ndarray:
    """Set ``-inf`` entries to 0 (COVAREP audio holds them), in place where possible."""
    if not array.flags.writeable:
        array = array.copy()
    for start in range(0, len(array), BLOCK):
        block = array[start : start + BLOCK]
        block[np.isneginf(block)] = 0.0
    return array


def check_finite(array: np.ndarray, where: Location, field: str, ids=None) -> None:
    """Raise if any entry is NaN or infinite, naming the first bad sample."""
    for start in range(0, len(array), BLOCK):
        block = array[start : start + BLOCK]
        bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if bad.any():
            index = start + int(np.argmax(bad))
            name = f" ('{ids[index]}')" if ids is not None else ""
            raise where.error("NaN or infinite values", field, "finite numbers",
                              f"a non-finite value in sample {index}{name}",
                              "Clean the features (e.g. np.nan_to_num) and export again")


def check_labels(labels: np.ndarray, label_range: tuple[float, float], where: Location,
                 field: str, ids=None) -> None:
    """Raise if a label is NaN or outside ``label_range`` (inclusive)."""
    low, high = label_range
    bad = np.flatnonzero(~((labels >= low) & (labels <= high)))
    if len(bad):
        index = int(bad[0])
        name = f" ('{ids[index]}')" if ids is not None else ""
        raise where.error("label outside the label range", field, f"labels in [{low}, {high}]",
                          f"{labels[index]} at sample {index}{name} ({len(bad)} such labels)",
                          "Fix the labels, or pass label_range=(low, high) for another scale")


def check_splits(datasets: dict, file: str | PathLike, required=("train", "valid", "test")
                 ) -> None:
    """Raise unless ``datasets`` has every split of ``required`` and all splits agree on the
    modalities, their kind (features or token ids), their feature widths and the
    unimodal labels, so that a mismatch fails when the data is read, not after an epoch."""
    if not datasets:
        raise DatasetError("no split", file=file, expected=f"splits {list(required)}",
                           found="none", fix="Give a dataset with all three splits")
    missing = [split for split in required if split not in datasets]
    if missing:
        raise DatasetError("missing split", file=file, split=missing[0],
                           expected=f"splits {list(required)}", found=f"splits {list(datasets)}",
                           fix="Give a dataset with all three splits")
    first, reference = next(iter(datasets.items()))
    for split, dataset in datasets.items():
        for name, ours, theirs in (
            ("modalities", list(dataset.modalities), list(reference.modalities)),
            ("feature widths", dataset.feature_dims, reference.feature_dims),
            ("unimodal labels", sorted(dataset.unimodal_labels), sorted(reference.unimodal_labels)),
        ):
            if ours != theirs:
                raise DatasetError(
                    f"the splits disagree on their {name}", file=file, split=split,
                    expected=f"{name} {theirs} (as in split '{first}')", found=str(ours),
                    fix="Every split needs the same modalities and feature widths; export "
                    "the splits from one feature extraction")
