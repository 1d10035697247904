"""Restricted unpickling: numpy arrays and plain Python data, nothing else.

A pickle is a small program: loading one can call any importable function, so a
dataset file from an unknown source can run code on the reader's machine. The
:func:`load_pickle` function admits only the globals that numpy's own pickles
reference (``ndarray``, ``dtype``, ``_reconstruct``, ``scalar``, ``_frombuffer``,
under both the numpy 1 ``numpy.core`` and the numpy 2 ``numpy._core`` spelling)
and a few builtin container constructors. Dicts, lists, tuples, strings, bytes
and numbers need no global at all. Anything else is refused before it is called,
with a :class:`~dhmd_graph.data.errors.DatasetError` naming the global and the file.

The admitted globals that allocate (an array of a declared shape, a byte array of a
declared length, a copy of a string, bytes or set that the pickle may reference again
and again) charge what they create to the file's
:class:`~dhmd_graph.data.checks.Budget`, so a small pickle cannot make the reader
allocate terabytes: it is refused before the allocation.
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

from dhmd_graph.data.checks import Budget
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import open_user_file

__all__ = ["RestrictedUnpickler", "load_pickle"]

_BUILTIN_CONTAINERS = {
    "set": set,
    "frozenset": frozenset,
    "complex": complex,
    "bytearray": bytearray,
    "slice": slice,
}
ALLOCATING = ("set", "frozenset", "bytearray")  # copy or allocate their argument's length


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


class _BudgetedArray(np.ndarray):
    """The ``numpy.ndarray`` a pickle gets: every array it builds (by calling the class,
    through ``_reconstruct`` or by ``__setstate__``) is charged to the file's budget.
    :func:`load_pickle` hands out plain :class:`numpy.ndarray` views of them."""

    budget: Budget

    def __new__(cls, shape, dtype=float, *args, **kwargs):
        cls.budget.spend(_nbytes(shape, dtype), "an array")
        return super().__new__(cls, shape, dtype, *args, **kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:  # (version, shape, dtype, F, data)
            self.budget.spend(_nbytes(state[1], state[2]), "an array")
        return super().__setstate__(state)


def _nbytes(shape, dtype) -> int:
    """The bytes of an array of ``shape`` and ``dtype``, without allocating it."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise ValueError(f"bad array shape {shape!r}")
    return int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize


def _charged(function, budget: Budget, size):
    """``function`` charging ``size(*args)`` bytes to ``budget`` before each call."""
    def call(*args, **kwargs):
        budget.spend(size(*args), f"{function.__name__}()")
        return function(*args, **kwargs)
    return call


def _length(value=b"", *_) -> int:
    """What a copy of ``value`` costs: its declared length for an int, else its length."""
    if isinstance(value, int):
        return value
    return len(value) if hasattr(value, "__len__") else 0


def _plain(value: Any, seen: dict[int, Any] | None = None) -> Any:
    """``value`` with every :class:`_BudgetedArray` in it replaced by a plain ndarray view
    (containers rebuilt where needed; shared objects stay shared)."""
    seen = {} if seen is None else seen
    key = id(value)
    if key in seen:
        return seen[key]
    if isinstance(value, _BudgetedArray):
        result = value.view(np.ndarray)
        if result.dtype == object:
            seen[key] = result
            for index, item in enumerate(result.flat):
                result.flat[index] = _plain(item, seen)
    elif isinstance(value, dict):
        result = seen[key] = value
        for name, item in value.items():
            value[name] = _plain(item, seen)
    elif isinstance(value, list):
        result = seen[key] = value
        value[:] = [_plain(item, seen) for item in value]
    elif isinstance(value, tuple):
        result = tuple(_plain(item, seen) for item in value)
    else:
        result = value
    seen[key] = result
    return result


class RestrictedUnpickler(pickle.Unpickler):
    r"""A :class:`pickle.Unpickler` that resolves only the globals in :func:`allowed_globals`,
    charging what they allocate to ``budget``.

    Args:
        file (BinaryIO): The open pickle file.
        source (str, optional): The file's path, for messages. (default: ``""``)
        budget (Budget, optional): The bytes the pickle may allocate beyond its own;
            :obj:`None` makes one for ``source``. (default: :obj:`None`)
    """

    def __init__(self, file, *, source: str = "", budget: Budget | None = None) -> None:
        super().__init__(file)
        self.source = source
        self.budget = budget if budget is not None else Budget(source)
        self.array_type = type("ndarray", (_BudgetedArray,), {"budget": self.budget})
        reconstruct = allowed_globals()[("numpy._core.multiarray", "_reconstruct")]
        self.charged = {
            "ndarray": self.array_type,
            "_reconstruct": _charged(reconstruct, self.budget,
                                     lambda subtype, shape, dtype, *_: _nbytes(shape, dtype)),
            **{name: _charged(obj, self.budget, _length)
               for name, obj in _BUILTIN_CONTAINERS.items() if name in ALLOCATING},
            "encode": _charged(codecs.encode, self.budget, _length),
            "OrderedDict": _charged(collections.OrderedDict, self.budget, _length),
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            allowed_globals()[(module, name)]
            return self.charged.get(name, allowed_globals()[(module, name)])
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
        DatasetError: The file is missing, refers to a forbidden global, declares more
            data than its size allows (see :class:`~dhmd_graph.data.checks.Budget`), or is
            not a complete pickle (truncated, corrupt or another format).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("no such file", file=path, expected="a pickle file",
                           found="nothing", fix="Check the path")
    try:
        with open_user_file(path, what="a pickle file") as file:  # no FIFO, device, folder
            return _plain(RestrictedUnpickler(file, source=str(path)).load())
    except DatasetError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, struct.error, MemoryError,
            RecursionError) as error:
        raise DatasetError(
            "cannot read the file as a pickle", file=path, expected="a complete pickle",
            found=f"{type(error).__name__}: {error}",
            fix="The file is truncated, corrupt or not a pickle; download or export it again",
        ) from error
