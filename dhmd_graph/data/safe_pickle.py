"""Restricted unpickling: numpy arrays and plain Python data, nothing else.

A pickle is a small program: loading one can call any importable function, so a
dataset file from an unknown source can run code on the reader's machine. The
:func:`load_pickle` function admits only the globals that numpy's own pickles
reference (``ndarray``, ``dtype``, ``_reconstruct``, ``scalar``, ``_frombuffer``,
under both the numpy 1 ``numpy.core`` and the numpy 2 ``numpy._core`` spelling)
and a few builtin container constructors. Dicts, lists, tuples, strings, bytes
and numbers need no global at all. Anything else is refused before it is called,
with a :class:`~dhmd_graph.data.errors.DatasetError` naming the global and the file.
"""

from __future__ import annotations

import codecs
import collections
import pickle
import struct
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.data.errors import DatasetError

__all__ = ["RestrictedUnpickler", "load_pickle"]

_BUILTIN_CONTAINERS = {
    "set": set,
    "frozenset": frozenset,
    "complex": complex,
    "bytearray": bytearray,
    "slice": slice,
}


@cache
def allowed_globals() -> dict[tuple[str, str], Any]:
    """The ``(module, name) -> object`` table of globals a pickle may reference."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2 without the numpy._core alias
        from numpy.core import multiarray, numeric

    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    # Pickles written under numpy 1 name numpy.core, those under numpy 2 numpy._core;
    # both resolve to the installed numpy's functions (without importing the
    # deprecated numpy.core shim).
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for module in ("builtins", "__builtin__"):  # Python 3 and Python 2 spellings
        table |= {(module, name): obj for name, obj in _BUILTIN_CONTAINERS.items()}
    table[("_codecs", "encode")] = codecs.encode  # how protocol 2 stores bytes
    table[("collections", "OrderedDict")] = collections.OrderedDict
    return table


class RestrictedUnpickler(pickle.Unpickler):
    r"""A :class:`pickle.Unpickler` that resolves only the globals in :func:`allowed_globals`.

    Args:
        file (BinaryIO): The open pickle file.
        source (str, optional): The file's path, for messages. (default: ``""``)
    """

    def __init__(self, file, *, source: str = "") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return allowed_globals()[(module, name)]
        except KeyError:
            raise DatasetError(
                "refused to load a pickle that references a forbidden global",
                file=self.source or None,
                expected="only numpy arrays, dtypes, scalars and plain Python containers",
                found=f"global '{module}.{name}'",
                fix="Such a global can run code when loaded. If you trust the file, "
                "re-export its contents as numpy arrays in dicts and lists",
            ) from None


def load_pickle(path: str | PathLike) -> Any:
    """Load a pickle file with :class:`RestrictedUnpickler`.

    Args:
        path (str or PathLike): The pickle file.

    Raises:
        DatasetError: The file is missing, refers to a forbidden global, or is not a
            complete pickle (truncated, corrupt or another format).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("no such file", file=path, expected="a pickle file",
                           found="nothing" if not path.exists() else "a directory",
                           fix="Check the path")
    try:
        with path.open("rb") as file:
            return RestrictedUnpickler(file, source=str(path)).load()
    except DatasetError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, struct.error) as error:
        raise DatasetError(
            "cannot read the file as a pickle", file=path, expected="a complete pickle",
            found=f"{type(error).__name__}: {error}",
            fix="The file is truncated, corrupt or not a pickle; download or export it again",
        ) from error
