"""Atomic file writes, shared by the dataset cache, the synthetic data and the run folder.

Every file the library writes goes through :func:`atomic_write`: the content is written
to a *unique* temporary file that is created exclusively (``O_CREAT | O_EXCL``, mode
``0600``, :func:`tempfile.mkstemp`) in the target's own folder, flushed to disk, and then
moved onto the target with :func:`os.replace`. So a reader sees the old file or the new
one, never half of one; a file or symbolic link planted at a predictable temporary name
cannot redirect the write; and a failed or interrupted write (including ``Ctrl-C``)
removes its temporary file. A process killed with ``SIGKILL`` cannot clean up after
itself: its temporary files are named ``.<target>.<random>.tmp`` and
:func:`remove_leftovers` deletes them (``dhmd train --resume`` does, under the run's lock).

An :class:`OSError` raised while writing (a full disk, a read-only folder) carries the
path of the file being written, so that the message names it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMPORARY_SUFFIX", "atomic_write", "naming_file", "remove_leftovers"]

TEMPORARY_SUFFIX = ".tmp"
"""Suffix of the temporary files of :func:`atomic_write` (their prefix is ``.<target>.``)."""


@contextmanager
def naming_file(path: str | os.PathLike, *, replace: bool = False) -> Iterator[None]:
    """Re-raise an :class:`OSError` without a file name (or, with ``replace``, with any
    other name, such as a temporary file's) as the same error naming ``path``."""
    try:
        yield
    except OSError as error:
        if error.errno is None or (error.filename is not None and not replace) \
                or error.filename == str(path):
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], None]
                 ) -> Path:
    r"""Write ``content`` to ``path`` atomically (see the module docstring).

    Args:
        path (str or PathLike): The file to write; its folder must exist.
        content (bytes, str or Callable[[BinaryIO], None]): The bytes, a text (written as
            UTF-8), or a function that writes into the open binary file (e.g.
            ``lambda file: torch.save(state, file)``).

    Returns:
        Path: ``path``.

    Raises:
        OSError: If the folder cannot be written (naming ``path``); the temporary file is
            removed and ``path`` keeps its old content.
    """
    path = Path(path)
    with naming_file(path, replace=True):
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX,
                                             dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                if callable(content):
                    content(file)
                else:
                    file.write(content.encode() if isinstance(content, str) else content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk, where the platform allows it."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write` calls left in ``folder``.

    Only names of the form ``.<name>.<random>.tmp`` directly in ``folder`` are removed
    (a symbolic link is removed itself, never followed). Call it only while no other
    process writes into ``folder`` (under the run's lock).

    Returns:
        list[Path]: The removed files.
    """
    removed = []
    for path in sorted(Path(folder).glob(f".*{TEMPORARY_SUFFIX}")):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
