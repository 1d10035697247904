"""Reader for CMU-MultimodalSDK computational sequences (``.csd``, HDF5).

A ``.csd`` file holds one top group named after the sequence::

    <name>/data/<entry>/features    (m, n)  one feature row per interval
    <name>/data/<entry>/intervals   (m, 2)  start and end, in seconds
    <name>/metadata/<key>           one-element dataset holding a JSON string

:func:`read_csd` reads a whole sequence into memory; :class:`CSDReader` reads it entry by
entry (what :mod:`dhmd_graph.data.align` uses, so that frame-level sequences of many
gigabytes never have to fit in memory). Reading needs ``h5py``, an optional extra
(``pip install 'dhmd_graph[csd]'``).

A ``.csd`` file is untrusted input: its layout is checked as it is read (groups where
groups belong, numeric datasets where datasets belong, UTF-8 metadata), nothing that
reads another file is followed (HDF5 external links, external storage, virtual
datasets), and every dataset's declared size is charged to the file's
:class:`~dhmd_graph.data.checks.Budget` before it is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.data.checks import Budget
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import check_user_file

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
    r"""Read a ``.csd`` computational sequence fully into memory, through
    :class:`CSDReader` (so with its checks).

    Args:
        path (str or PathLike): The ``.csd`` file.

    Returns:
        ComputationalSequence: The sequence's entries and metadata.

    Raises:
        ImportError: ``h5py`` is not installed.
        DatasetError: As :class:`CSDReader` and :meth:`CSDReader.entry`.
    """
    with CSDReader(path) as reader:
        entries = {key: reader.entry(key) for key in reader.entry_ids}
        return ComputationalSequence(name=reader.name, entries=entries, metadata=reader.metadata)


_FIX = "Pass a .csd file written by the CMU-MultimodalSDK"


class CSDReader:
    r"""A ``.csd`` file opened for reading entry by entry, so that a sequence of many
    gigabytes (e.g. frame-level audio features) never has to fit in memory at once.

    Use it as a context manager; :func:`read_csd` reads every entry through it. Opening
    checks the layout down to the entries and reads the metadata; :meth:`entry` checks
    an entry's layout, storage and declared size before reading it (see the module
    docstring).

    Args:
        path (str or PathLike): The ``.csd`` file.

    Attributes:
        path (Path): The file.
        name (str): The sequence's name (its top HDF5 group).
        entry_ids (list[str]): The ids of its entries, in the file's order.
        metadata (dict[str, Any]): The metadata, JSON-decoded.

    Raises:
        ImportError: ``h5py`` is not installed.
        DatasetError: The file is missing or not HDF5, has no ``data`` group, its layout
            is not that of a computational sequence, a member refers to another file,
            or metadata is not UTF-8.
    """

    def __init__(self, path: str | PathLike) -> None:
        self._h5py = _import_h5py()
        self.path = Path(path)
        if self.path.exists():  # a FIFO or device is refused, never read (a missing file below)
            check_user_file(self.path, what="an HDF5 .csd file")
        try:
            self._handle = self._h5py.File(self.path, "r")
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
        self._budget = Budget(path)
        self._charged: set[str] = set()  # datasets already charged to the budget
        if len(handle) != 1:
            raise DatasetError("not a computational sequence", file=path,
                               expected="one top group named after the sequence",
                               found=f"groups {sorted(handle)}", fix=_FIX)
        self.name = next(iter(handle))
        group = self._member(handle, self.name, "group")
        if "data" not in group:
            raise DatasetError("computational sequence without data", file=path,
                               field=f"{self.name}/data", expected="a 'data' group of entries",
                               found=f"keys {sorted(group)}", fix=_FIX)
        self._data = self._member(group, "data", "group")
        self.entry_ids = list(self._data)
        self.metadata = {}
        if "metadata" in group:
            folder = self._member(group, "metadata", "group")
            self.metadata = {key: self._metadata(folder, key) for key in folder}

    def entry(self, key: str) -> CSDEntry:
        """Read one entry's features and intervals.

        Raises:
            DatasetError: The entry is not a group of two numeric datasets ``features``
                ``(m, n)`` and ``intervals`` ``(m, 2)``, refers to another file, or
                declares more data than the file's budget allows.
        """
        group = self._member(self._data, key, "group")
        where = group.name.strip("/")
        missing = [name for name in ("features", "intervals") if name not in group]
        if missing:
            raise self._error("incomplete entry", f"{where}/{missing[0]}",
                              "datasets 'features' and 'intervals'", f"keys {sorted(group)}")
        features, intervals = (self._member(group, name, "dataset")
                               for name in ("features", "intervals"))
        for name, dataset in (("features", features), ("intervals", intervals)):
            if not np.issubdtype(dataset.dtype, np.number):
                raise self._error(f"{name} are not numeric", f"{where}/{name}",
                                  "a numeric dataset", f"dtype {dataset.dtype}",
                                  "Pass a sequence of feature vectors (e.g. the word vectors, "
                                  "not the words)" if name == "features" else _FIX)
        if len(features.shape) != 2 or intervals.shape != (features.shape[0], 2):
            raise self._error("features and intervals do not match", where,
                              "features (m, n) and intervals (m, 2)",
                              f"features {features.shape}, intervals {intervals.shape}")
        return CSDEntry(features=features[()], intervals=intervals[()])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> CSDReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}('{self.path}', name={self.name!r}, "
                f"entries={len(self.entry_ids)})")

    def _error(self, problem: str, field: str, expected: str, found: str,
               fix: str = _FIX) -> DatasetError:
        return DatasetError(problem, file=self.path, field=field, expected=expected,
                            found=found, fix=fix)

    def _member(self, parent, key: str, kind: str):
        """``parent[key]``, refused if it is a link to another file or not a ``kind``
        (``"group"`` or ``"dataset"``); a dataset is also checked for its storage and
        charged its declared size."""
        where = f"{parent.name.strip('/')}/{key}".strip("/")
        link = parent.get(key, getlink=True)
        if isinstance(link, self._h5py.ExternalLink):
            raise self._error("a link to another file", where, f"a {kind} inside this file",
                              f"an external link to '{link.filename}'",
                              "Refusing to read other files through a .csd; " + _FIX)
        item = parent[key]
        wanted = self._h5py.Group if kind == "group" else self._h5py.Dataset
        if not isinstance(item, wanted):
            found = "a group" if isinstance(item, self._h5py.Group) else "a dataset"
            raise self._error(f"a {kind} expected", where, f"a {kind}", found)
        if kind == "dataset":
            self._check_dataset(item, where)
        return item

    def _check_dataset(self, dataset, where: str) -> None:
        if dataset.external or dataset.is_virtual:
            raise self._error("a dataset stored in other files", where,
                              "data stored inside this file",
                              "external storage" if dataset.external else "a virtual dataset",
                              "Refusing to read other files through a .csd; " + _FIX)
        if where not in self._charged:
            self._budget.spend(
                int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize, where)
            self._charged.add(where)

    def _metadata(self, group, key: str) -> Any:
        dataset = self._member(group, key, "dataset")
        try:
            return _decode(dataset[()])
        except UnicodeDecodeError as error:
            raise self._error("metadata is not UTF-8 text", dataset.name.strip("/"),
                              "UTF-8 text (JSON)", f"{error.reason} at byte {error.start}",
                              "Re-export the metadata as UTF-8") from None


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
