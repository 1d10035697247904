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

    Args:
        path (str or PathLike): The ``.csd`` file.

    Returns:
        ComputationalSequence: The sequence's entries and metadata.

    Raises:
        ImportError: ``h5py`` is not installed.
        DatasetError: The file is missing or not HDF5, has no ``data`` group, or an
            entry's features and intervals do not match.
    """
    h5py = _import_h5py()
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise DatasetError("cannot open the computational sequence", file=path,
                           expected="an HDF5 .csd file", found=f"{type(error).__name__}: {error}",
                           fix="Check the path, or download the .csd file again") from error
    with handle:
        if len(handle) != 1:
            raise DatasetError("not a computational sequence", file=path,
                               expected="one top group named after the sequence",
                               found=f"groups {sorted(handle)}",
                               fix="Pass a .csd file written by the CMU-MultimodalSDK")
        name = next(iter(handle))
        group = handle[name]
        if "data" not in group:
            raise DatasetError("computational sequence without data", file=path, field=f"{name}/data",
                               expected="a 'data' group of entries", found=f"keys {sorted(group)}",
                               fix="Pass a .csd file written by the CMU-MultimodalSDK")
        entries = {key: _read_entry(path, f"{name}/data/{key}", group["data"][key])
                   for key in group["data"]}
        metadata = {key: _decode(value[()]) for key, value in group.get("metadata", {}).items()}
    return ComputationalSequence(name=name, entries=entries, metadata=metadata)


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
