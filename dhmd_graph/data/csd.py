"""Reader for CMU-MultimodalSDK computational sequences (``.csd``, HDF5).

A ``.csd`` file holds one top group named after the sequence::

    <name>/data/<entry>/features    (m, n)  one feature row per interval
    <name>/data/<entry>/intervals   (m, 2)  start and end, in seconds
    <name>/metadata/<key>           one-element dataset holding a JSON string

:func:`read_csd` reads a whole sequence into memory; :class:`CSDReader` reads it entry by
entry (what :mod:`dhmd_graph.data.align` uses, so that frame-level sequences of many
gigabytes never have to fit in memory). Reading needs ``h5py``, an optional extra
(``pip install 'dhmd_graph[csd]'``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.data.errors import DatasetError

__all__ = ["CSDEntry", "CSDReader", "ComputationalSequence", "read_csd"]


@dataclass
class CSDEntry:
    """One video (or segment) of a computational sequence.

    Attributes:
        features (np.ndarray): ``(m, n)`` one feature row per interval.
        intervals (np.ndarray): ``(m, 2)`` start and end times in seconds.
    """

    features: np.ndarray
    intervals: np.ndarray


@dataclass
class ComputationalSequence:
    """A computational sequence: named entries of timed features, and metadata.

    Attributes:
        name (str): The sequence's name (its top HDF5 group).
        entries (dict[str, CSDEntry]): The entries by id (a video id, or ``video[segment]``
            after alignment).
        metadata (dict[str, Any]): The metadata, JSON-decoded.
    """

    name: str
    entries: dict[str, CSDEntry] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def _import_h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError("Reading .csd files needs h5py: pip install 'dhmd_graph[csd]'") from error
    return h5py


def read_csd(path: str | PathLike) -> ComputationalSequence:
    r"""Read a ``.csd`` computational sequence fully into memory.

    Args:
        path (str or PathLike): The ``.csd`` file.

    Returns:
        ComputationalSequence: The sequence's entries and metadata.

    Raises:
        ImportError: ``h5py`` is not installed.
        DatasetError: The file is missing or not HDF5, has no ``data`` group, or an
            entry's features and intervals do not match.
    """
    with CSDReader(path) as reader:
        entries = {key: reader.entry(key) for key in reader.entry_ids}
        return ComputationalSequence(name=reader.name, entries=entries, metadata=reader.metadata)


class CSDReader:
    r"""A ``.csd`` file opened for reading entry by entry, so that a sequence of many
    gigabytes (e.g. frame-level audio features) never has to fit in memory at once.

    Use it as a context manager; :func:`read_csd` reads every entry through it.

    Args:
        path (str or PathLike): The ``.csd`` file.

    Attributes:
        path (Path): The file.
        name (str): The sequence's name (its top HDF5 group).
        entry_ids (list[str]): The ids of its entries, in the file's order.
        metadata (dict[str, Any]): The metadata, JSON-decoded.

    Raises:
        ImportError: ``h5py`` is not installed.
        DatasetError: The file is missing or not HDF5, or has no ``data`` group.
    """

    def __init__(self, path: str | PathLike) -> None:
        h5py = _import_h5py()
        self.path = Path(path)
        try:
            self._handle = h5py.File(self.path, "r")
        except (OSError, ValueError) as error:
            raise DatasetError("cannot open the computational sequence", file=self.path,
                               expected="an HDF5 .csd file",
                               found=f"{type(error).__name__}: {error}",
                               fix="Check the path, or download the .csd file again") from error
        try:
            self._open()
        except BaseException:
            self._handle.close()
            raise

    def _open(self) -> None:
        handle, path = self._handle, self.path
        if len(handle) != 1:
            raise DatasetError("not a computational sequence", file=path,
                               expected="one top group named after the sequence",
                               found=f"groups {sorted(handle)}",
                               fix="Pass a .csd file written by the CMU-MultimodalSDK")
        self.name = next(iter(handle))
        group = handle[self.name]
        if "data" not in group:
            raise DatasetError("computational sequence without data", file=path,
                               field=f"{self.name}/data", expected="a 'data' group of entries",
                               found=f"keys {sorted(group)}",
                               fix="Pass a .csd file written by the CMU-MultimodalSDK")
        self._data = group["data"]
        self.entry_ids = list(self._data)
        self.metadata = {key: _decode(value[()])
                         for key, value in group.get("metadata", {}).items()}

    def entry(self, key: str) -> CSDEntry:
        """Read one entry's features and intervals."""
        return _read_entry(self.path, f"{self.name}/data/{key}", self._data[key])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> CSDReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}('{self.path}', name={self.name!r}, "
                f"entries={len(self.entry_ids)})")


def _read_entry(path: Path, where: str, group) -> CSDEntry:
    missing = [key for key in ("features", "intervals") if key not in group]
    if missing:
        raise DatasetError("incomplete entry", file=path, field=f"{where}/{missing[0]}",
                           expected="datasets 'features' and 'intervals'",
                           found=f"keys {sorted(group)}",
                           fix="Pass a .csd file written by the CMU-MultimodalSDK")
    features, intervals = np.asarray(group["features"]), np.asarray(group["intervals"])
    if features.ndim != 2 or intervals.shape != (len(features), 2):
        raise DatasetError("features and intervals do not match", file=path, field=where,
                           expected="features (m, n) and intervals (m, 2)",
                           found=f"features {features.shape}, intervals {intervals.shape}",
                           fix="Pass a .csd file written by the CMU-MultimodalSDK")
    return CSDEntry(features=features, intervals=intervals)


def _decode(value: Any) -> Any:
    """A metadata value: the one element, bytes decoded, JSON parsed where it parses."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value
