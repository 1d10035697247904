"""Array checks shared by the readers; each failure is a :class:`DatasetError`.

The checks walk large arrays in blocks of samples, so validating a multi-GB split
needs only a block's worth of temporary memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np

from dhmd_graph.data.errors import DatasetError

__all__ = ["Location", "check_finite", "check_labels", "float_features", "zero_negative_infinity"]

BLOCK = 1024  # samples per block when scanning large arrays


@dataclass(frozen=True)
class Location:
    """Where an array came from, for messages: the file and the split."""

    file: str | PathLike
    split: str

    def error(self, problem: str, field: str, expected: str, found: str, fix: str) -> DatasetError:
        return DatasetError(problem, file=self.file, split=self.split, field=field,
                            expected=expected, found=found, fix=fix)


def float_features(value, where: Location, field: str) -> np.ndarray:
    """``value`` as a float32 ``(N, T, d)`` array; a float32 input is not copied."""
    array = np.asarray(value)
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
