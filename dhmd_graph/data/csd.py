"""Reader for CMU-MultimodalSDK computational sequences (``.csd``, HDF5).

A ``.csd`` file holds one top group named after the sequence::

    <name>/data/<entry>/features    (m, n)  one feature row per interval
    <name>/data/<entry>/intervals   (m, 2)  start and end, in seconds
    <name>/metadata/<key>           one-element dataset holding a JSON string

Reading needs ``h5py``, an optional extra (``pip install 'dhmd_graph[csd]'``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.data.checks import Budget
from dhmd_graph.data.errors import DatasetError

__all__ = ["CSDEntry", "ComputationalSequence", "read_csd"]


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

    The layout is checked before anything is read: groups where groups belong,
    numeric datasets where datasets belong, no link or dataset that reads another
    file (HDF5 external links, external storage, virtual datasets), and declared sizes
    within the file's :class:`~dhmd_graph.data.checks.Budget`.

    Args:
        path (str or PathLike): The ``.csd`` file.

    Returns:
        ComputationalSequence: The sequence's entries and metadata.

    Raises:
        ImportError: ``h5py`` is not installed.
        DatasetError: The file is missing or not HDF5, has no ``data`` group, an entry's
            features and intervals do not match, the layout is not that of a
            computational sequence, a dataset refers to another file or declares more
            data than the file can hold, or metadata is not UTF-8.
    """
    h5py = _import_h5py()
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise DatasetError("cannot open the computational sequence", file=path,
                           expected="an HDF5 .csd file", found=f"{type(error).__name__}: {error}",
                           fix="Check the path, or download the .csd file again") from error
    reader = _Reader(h5py, path)
    with handle:
        if len(handle) != 1:
            raise DatasetError("not a computational sequence", file=path,
                               expected="one top group named after the sequence",
                               found=f"groups {sorted(handle)}",
                               fix="Pass a .csd file written by the CMU-MultimodalSDK")
        name = next(iter(handle))
        group = reader.member(handle, name, "group")
        if "data" not in group:
            raise DatasetError("computational sequence without data", file=path, field=f"{name}/data",
                               expected="a 'data' group of entries", found=f"keys {sorted(group)}",
                               fix="Pass a .csd file written by the CMU-MultimodalSDK")
        data = reader.member(group, "data", "group")
        entries = {key: reader.entry(data, key) for key in data}
        metadata = {}
        if "metadata" in group:
            folder = reader.member(group, "metadata", "group")
            metadata = {key: reader.metadata(folder, key) for key in folder}
    return ComputationalSequence(name=name, entries=entries, metadata=metadata)


_FIX = "Pass a .csd file written by the CMU-MultimodalSDK"


class _Reader:
    """The checks of one ``.csd`` file: layout, links, storage and declared sizes."""

    def __init__(self, h5py, path: Path) -> None:
        self.h5py = h5py
        self.path = path
        self.budget = Budget(path)

    def error(self, problem: str, field: str, expected: str, found: str,
              fix: str = _FIX) -> DatasetError:
        return DatasetError(problem, file=self.path, field=field, expected=expected,
                            found=found, fix=fix)

    def member(self, parent, key: str, kind: str):
        """``parent[key]``, refused if it is a link to another file or not a ``kind``
        (``"group"`` or ``"dataset"``); a dataset is also checked for its storage,
        dtype and declared size."""
        where = f"{parent.name.strip('/')}/{key}".strip("/")
        link = parent.get(key, getlink=True)
        if isinstance(link, self.h5py.ExternalLink):
            raise self.error("a link to another file", where, f"a {kind} inside this file",
                             f"an external link to '{link.filename}'",
                             "Refusing to read other files through a .csd; " + _FIX)
        item = parent[key]
        wanted = self.h5py.Group if kind == "group" else self.h5py.Dataset
        if not isinstance(item, wanted):
            found = "a group" if isinstance(item, self.h5py.Group) else "a dataset"
            raise self.error(f"a {kind} expected", where, f"a {kind}", found)
        if kind == "dataset":
            self._check_dataset(item, where)
        return item

    def _check_dataset(self, dataset, where: str) -> None:
        if dataset.external or dataset.is_virtual:
            raise self.error("a dataset stored in other files", where,
                             "data stored inside this file",
                             "external storage" if dataset.external else "a virtual dataset",
                             "Refusing to read other files through a .csd; " + _FIX)
        self.budget.spend(int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize,
                          where)

    def entry(self, data, key: str) -> CSDEntry:
        group = self.member(data, key, "group")
        where = group.name.strip("/")
        missing = [name for name in ("features", "intervals") if name not in group]
        if missing:
            raise self.error("incomplete entry", f"{where}/{missing[0]}",
                             "datasets 'features' and 'intervals'", f"keys {sorted(group)}")
        features, intervals = (self.member(group, name, "dataset")
                               for name in ("features", "intervals"))
        for name, dataset in (("features", features), ("intervals", intervals)):
            if not np.issubdtype(dataset.dtype, np.number):
                raise self.error("not numbers", f"{where}/{name}", "a numeric dataset",
                                 f"dtype {dataset.dtype}")
        if len(features.shape) != 2 or intervals.shape != (features.shape[0], 2):
            raise self.error("features and intervals do not match", where,
                             "features (m, n) and intervals (m, 2)",
                             f"features {features.shape}, intervals {intervals.shape}")
        return CSDEntry(features=features[()], intervals=intervals[()])

    def metadata(self, group, key: str) -> Any:
        dataset = self.member(group, key, "dataset")
        try:
            return _decode(dataset[()])
        except UnicodeDecodeError as error:
            raise self.error("metadata is not UTF-8 text", dataset.name.strip("/"),
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
