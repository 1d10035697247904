r"""A user's ``.npy`` file, read header first and memory-mapped.

:func:`open_npy` opens the file through :func:`~dhmd_graph.files.open_user_file` (a
regular file only, so a named pipe never blocks; a file that resolves outside the
dataset's folder is reported), then reads the header itself before any data: the magic
string ``\x93NUMPY`` (an empty file, an ``.npz`` archive, a pickle or a text file named
``.npy`` is refused by name), the format version, the dtype (plain numbers or booleans
of the kinds the caller allows: no objects, hence no pickles, no structured or complex
dtypes), the rank and the shape; and that the file holds every byte the header
declares. Only then is the data mapped, from the descriptor that was checked (the path
is not opened again).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dhmd_graph.errors import DatasetError
from dhmd_graph.files import open_user_file

__all__ = ["DTYPE_KINDS", "open_npy"]

DTYPE_KINDS = {"b": "booleans", "i": "integers", "u": "unsigned integers", "f": "floats"}
"""The dtype kinds (:attr:`numpy.dtype.kind`) a ``.npy`` file of a dataset may hold."""

_MAGIC = b"\x93NUMPY"
_SIGNATURES = ((b"PK\x03\x04", "a zip archive (an .npz file?)"),
               (b"\x80", "a Python pickle"), (b"\x89HDF", "an HDF5 file"))
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
_FIX = "Save the array with np.save(path, array, allow_pickle=False)"


def open_npy(path: str | os.PathLike, *, kinds: str = "iuf", ranks: Sequence[int] = (1, 2, 3),
             rows: int | None = None, root: str | os.PathLike | None = None,
             what: str = "a numeric array") -> np.ndarray:
    r"""The array of a ``.npy`` file, read-only and memory-mapped, after checking its header.

    Args:
        path (str or PathLike): The file.
        kinds (str, optional): The dtype kinds allowed, among :data:`DTYPE_KINDS`.
            (default: ``'iuf'``, integers and floats)
        ranks (Sequence[int], optional): The ranks allowed. (default: ``(1, 2, 3)``)
        rows (int, optional): The length of the first axis the array must have (the
            samples of the other files). (default: :obj:`None`, any)
        root (str or PathLike, optional): The dataset's folder (see
            :func:`~dhmd_graph.files.check_user_file`). (default: :obj:`None`)
        what (str, optional): What the array should be, for the messages.
            (default: ``'a numeric array'``)

    Returns:
        np.ndarray: ``np.memmap`` of the declared shape and dtype (an empty in-memory
        array when it has no elements).

    Raises:
        DatasetError: The file is not a regular file, not a ``.npy`` file, truncated, or
            of a dtype, rank or first axis other than allowed; naming the file, the
            field (``dtype``, ``shape``) and what to save instead.
    """
    path = Path(path)

    def fail(problem: str, field: str | None, expected: str, found: str,
             fix: str = _FIX) -> DatasetError:
        return DatasetError(problem, file=path, field=field, expected=expected, found=found,
                            fix=fix)

    with open_user_file(path, root=root, what=f"a .npy file of {what}") as file:
        start = file.read(len(_MAGIC) + 2)
        if not start.startswith(_MAGIC) or len(start) < len(_MAGIC) + 2:
            found = next((name for mark, name in _SIGNATURES if start.startswith(mark)),
                         "an empty file" if not start else f"a file starting {start[:8]!r}")
            raise fail("not a .npy file", None, f"a .npy file of {what}", found)
        version = tuple(start[len(_MAGIC):])
        if version not in _HEADER_READERS:
            raise fail("unsupported .npy version", None, "format version 1.0 or 2.0",
                       f"version {version}")
        try:
            shape, fortran, dtype = _HEADER_READERS[version](file)
        except (ValueError, SyntaxError, TypeError, OverflowError) as error:
            raise fail("malformed .npy header", None, "a header written by np.save",
                       f"{type(error).__name__}: {error}") from None
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None \
                or dtype.kind not in kinds:
            names = " or ".join(DTYPE_KINDS[kind] for kind in kinds)
            found = ("Python objects (a pickle)" if dtype.hasobject
                     else f"dtype {dtype.descr if dtype.fields else dtype}")
            raise fail("wrong dtype", "dtype", f"{what}: {names}", found,
                       "Save a plain numeric array (not strings or objects) with "
                       "np.save(path, array, allow_pickle=False)")
        if len(shape) not in ranks or (rows is not None and shape[0] != rows):
            axes = " or ".join(f"{rank}" for rank in ranks)
            first = "" if rows is None else f", {rows} rows (one per row of the labels)"
            raise fail("wrong shape", "shape", f"{what} of rank {axes}{first}",
                       f"shape {shape}", "Save row i of every array for sample i, e.g. "
                       "np.save(path, array) with array.shape[0] equal to the samples")
        offset = file.tell()
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        available = os.fstat(file.fileno()).st_size - offset
        if available < size:
            raise fail("truncated .npy file", "shape", f"{size:,} bytes of data for shape "
                       f"{shape}, dtype {dtype}", f"{available:,} bytes",
                       "Save the array again (the copy is incomplete)")
        if size == 0:
            return np.empty(shape, dtype=dtype)
        file.raw.name = str(path)  # the mapping's file name, to reopen it in workers
        return np.memmap(file, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")
