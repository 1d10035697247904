"""Files in and out: guarded reads of user files, and atomic writes.

**Reading a user file.** Every file a user hands the library (a dataset file, a recipe, a
vocabulary, a BERT folder's ``config.json`` and weights) is opened through
:func:`open_user_file` or one of the readers built on it (:func:`read_user_bytes`,
:func:`read_user_text`, :func:`read_user_json`, :func:`read_user_csv`):

* **Regular files only.** The path is checked with :func:`os.stat` before it is opened; a
  named pipe (FIFO), a device, a socket or a folder is a :class:`DatasetError` naming the
  path, never a read that blocks. The file is then opened with ``O_NONBLOCK`` and checked
  again on the open descriptor, so a path swapped for a pipe in between cannot block either.
* **A size budget.** A reader states the most bytes it will read (``max_bytes``); a larger
  file is refused before anything is read.
* **Symbolic links are reported, not refused.** A file that resolves (through a symbolic
  link or ``..``) outside the dataset's folder (``root``) is read, with an
  :class:`OutsideFolderWarning` naming the file and where it leads. Links are how clusters
  share large files, and how the Hugging Face cache lays out a model folder, so refusing
  them would refuse good data; the warning makes sure no file is read from elsewhere
  without a word. The same policy holds for every reader.
* **Text** is UTF-8: a UTF-8 byte-order mark is dropped, a UTF-16/UTF-32 one, a NUL byte
  or bytes that are not UTF-8 are errors naming the line.
* **JSON** is parsed with a nesting limit (``max_depth``; never a :class:`RecursionError`),
  without ``NaN``/``Infinity`` and without repeated keys; :func:`check_object` then checks
  an object against a table of :class:`Key` s: every key's type, unknown keys refused and
  a missing key named.

**Writing.** Every file the library writes goes through :func:`atomic_write`: the
content is written to a *unique* temporary file that is created exclusively (``O_CREAT |
O_EXCL``, mode ``0600``, :func:`tempfile.mkstemp`) in the target's own folder, flushed to
disk, and then moved onto the target with :func:`os.replace`. So a reader sees the old file or the new
one, never half of one; a file or symbolic link planted at a predictable temporary name
cannot redirect the write; and a failed or interrupted write (including ``Ctrl-C``)
removes its temporary file. A process killed with ``SIGKILL`` cannot clean up after
itself: its temporary files are named ``.<target>.<random>.tmp`` and
:func:`remove_leftovers` deletes them (``dhmd train --resume`` does, under the run's lock).

An :class:`OSError` raised while writing (a full disk, a read-only folder) carries the
path of the file being written, so that the message names it.

**One writer.** :func:`exclusive_lock` holds an exclusive :func:`fcntl.flock` on a lock
file for as long as a process writes (a run folder's ``.dhmd.lock``, a predictions
file's ``.<name>.lock``); a second writer is refused at once, never queued. The kernel
releases the lock when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dhmd_graph.errors import DatasetError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer is then the user's duty
    fcntl = None

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_TEXT_BYTES",
    "SAFE_NAME",
    "TEMPORARY_SUFFIX",
    "Key",
    "OutsideFolderWarning",
    "atomic_write",
    "check_object",
    "check_user_file",
    "decode_text",
    "exclusive_lock",
    "is_safe_name",
    "naming_file",
    "open_user_file",
    "parse_json",
    "read_user_bytes",
    "read_user_csv",
    "read_user_json",
    "read_user_text",
    "remove_leftovers",
]

MAX_JSON_BYTES = 64 << 20
"""The default budget of a JSON file (a recipe, a vocabulary, a ``config.json``): 64 MiB."""
MAX_JSON_DEPTH = 32
"""The default nesting limit of a JSON file (``[[1]]`` is nested 2 deep)."""
MAX_TEXT_BYTES = 1 << 30
"""The default budget of a text table (a ``.csv``): 1 GiB."""
SAFE_NAME = ("a name of letters, digits, '_', '-' and '.' (at most 100, not starting with "
             "'.' or '-')")
"""What :func:`is_safe_name` admits, in words, for messages."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")

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


@contextmanager
def exclusive_lock(path: str | os.PathLike, busy: Callable[[str], Exception], *,
                   remove: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while in the block.

    The holder's pid is written into the file. A lock another process holds raises
    ``busy(pid)`` at once. With ``remove`` the file is deleted before the lock is
    released (a lock beside a user's file leaves nothing behind); a process that locked
    the file just before it was deleted sees that it holds a deleted file and tries
    again on the new one, so two processes never both hold the lock. Without
    :mod:`fcntl` (Windows) the block runs unlocked.

    Raises:
        Exception: ``busy(pid)`` when another process holds the lock.
        OSError: The lock file cannot be created (naming it).
    """
    if fcntl is None:
        yield
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    while True:
        with naming_file(path):
            handle = os.open(path, flags, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip()
            os.close(handle)
            raise busy(holder or "unknown") from None
        try:
            same = os.path.samestat(os.fstat(handle), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)  # locked a file another holder has just deleted: take the new one
    try:
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.close(handle)  # releases the lock


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


def is_safe_name(name: object) -> bool:
    """Whether a name read from a user's file (a modality, an extra) may become part of a
    file name the library writes (``features.<name>.npy``): see :data:`SAFE_NAME`; never a
    path such as ``../../evil``."""
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


# -- guarded reads of user files ---------------------------------------------------------

class OutsideFolderWarning(UserWarning):
    """A file of a dataset (or model folder) resolves outside that folder (see the module
    docstring); it is read all the same."""


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
_NONBLOCKING = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_BINARY", 0)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_user_file(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                    max_bytes: int | None = None, what: str = "a file") -> os.stat_result:
    """Check that ``path`` is a regular file within the budget, without opening it.

    Args:
        path (str or PathLike): The file.
        root (str or PathLike, optional): The dataset's (or model's) folder: a file that
            resolves outside it is reported with an :class:`OutsideFolderWarning`.
            (default: :obj:`None`, no check)
        max_bytes (int, optional): The most bytes the caller will read. (default:
            :obj:`None`, no budget)
        what (str, optional): What the file should be, for the message. (default: ``"a file"``)

    Returns:
        os.stat_result: The file's status (symbolic links followed).

    Raises:
        DatasetError: ``path`` is a folder, a FIFO, a device or a socket, or is larger
            than ``max_bytes``.
        OSError: ``path`` does not exist or cannot be read (naming it).
    """
    path = Path(path)
    with naming_file(path):
        info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise DatasetError("not a regular file", file=path, expected=what,
                           found=_kind(info.st_mode),
                           fix="Point at the file itself (a copy, not a pipe or device)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise DatasetError("file too large", file=path, expected=f"{what} of at most "
                           f"{max_bytes:,} bytes", found=f"{info.st_size:,} bytes",
                           fix="Check that this is the right file")
    if root is not None:
        _report_outside(path, Path(root))
    return info


def _report_outside(path: Path, root: Path) -> None:
    target, folder = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if not target.is_relative_to(folder):
        warnings.warn(f"'{path}' resolves to '{target}', outside the folder '{root}'; it is "
                      "read all the same (copy it into the folder to silence this)",
                      OutsideFolderWarning, stacklevel=3)


def open_user_file(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                   max_bytes: int | None = None, what: str = "a file") -> BinaryIO:
    """Open a user file for binary reading, after :func:`check_user_file`.

    The file is opened without blocking (``O_NONBLOCK``) and checked again on the open
    descriptor, so that a path swapped for a pipe between the check and the open fails
    rather than blocks. Arguments as :func:`check_user_file`.

    Returns:
        BinaryIO: The open file (use it in a ``with`` block).
    """
    path = Path(path)
    before = check_user_file(path, root=root, max_bytes=max_bytes, what=what)
    with naming_file(path):
        handle = os.open(path, _NONBLOCKING)
    try:
        after = os.fstat(handle)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
                before.st_dev, before.st_ino):
            raise DatasetError("file replaced while being opened", file=path, expected=what,
                               found=_kind(after.st_mode) if not stat.S_ISREG(after.st_mode)
                               else "another file", fix="Run the command again")
        return os.fdopen(handle, "rb")
    except BaseException:
        os.close(handle)
        raise


def read_user_bytes(path: str | os.PathLike, *, max_bytes: int,
                    root: str | os.PathLike | None = None, what: str = "a file") -> bytes:
    """The bytes of a user file of at most ``max_bytes`` (see :func:`open_user_file`); a
    file that grows past the budget while read is refused too."""
    with open_user_file(path, root=root, max_bytes=max_bytes, what=what) as file, \
            naming_file(path):
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DatasetError("file too large", file=path, expected=f"{what} of at most "
                           f"{max_bytes:,} bytes", found="more (it grew while being read)",
                           fix="Check that this is the right file")
    return data


_WIDE_MARKS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
               (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))


def decode_text(data: bytes, file: str | os.PathLike, what: str = "UTF-8 text") -> str:
    """``data`` as UTF-8 text: a leading UTF-8 byte-order mark dropped; a UTF-16/32 mark,
    a NUL byte or invalid UTF-8 a :class:`DatasetError` naming ``file`` and the line."""
    fix = "Save the file as UTF-8 text"
    for mark, encoding in _WIDE_MARKS:
        if data.startswith(mark):
            raise DatasetError("not UTF-8 text", file=file, expected=what,
                               found=f"a {encoding} byte-order mark", fix=fix)
    data = data.removeprefix(b"\xef\xbb\xbf")
    nul = data.find(b"\0")
    if nul >= 0:
        raise DatasetError("a NUL byte in a text file", file=file, field=_line(data, nul),
                           expected=what, found="a NUL byte (binary or damaged content)",
                           fix=fix)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError("not UTF-8 text", file=file, field=_line(data, error.start),
                           expected=what, found=f"the bytes {data[error.start:error.end]!r}",
                           fix=fix) from None


_NEWLINE = b"\n"


def _line(data: bytes, offset: int) -> str:
    return f"line {data.count(_NEWLINE, 0, offset) + 1}"


def read_user_text(path: str | os.PathLike, *, max_bytes: int = MAX_TEXT_BYTES,
                   root: str | os.PathLike | None = None, what: str = "UTF-8 text") -> str:
    """A user file's text (see :func:`read_user_bytes` and :func:`decode_text`)."""
    return decode_text(read_user_bytes(path, max_bytes=max_bytes, root=root, what=what),
                       path, what)


def read_user_csv(path: str | os.PathLike, *, max_bytes: int = MAX_TEXT_BYTES,
                  root: str | os.PathLike | None = None) -> list[list[str]]:
    """The rows of a UTF-8 CSV file (header included) as lists of strings, read with
    :func:`read_user_text` and Python's ``csv`` module in strict mode.

    Raises:
        DatasetError: Not UTF-8, a NUL byte, a malformed quote or an over-long field,
            naming the line.
    """
    text = read_user_text(path, max_bytes=max_bytes, root=root, what="UTF-8 CSV text")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return list(reader)
    except csv.Error as error:
        raise DatasetError("malformed CSV", file=path, field=f"line {reader.line_num}",
                           expected="comma-separated values, quoted with \"",
                           found=str(error), fix="Save the table as plain CSV") from None


def parse_json(text: str, file: str | os.PathLike, *, max_depth: int = MAX_JSON_DEPTH,
               what: str = "a JSON file") -> Any:
    """Parse JSON text from ``file`` nested at most ``max_depth`` deep, refusing ``NaN``,
    ``Infinity`` and a key repeated within an object.

    Raises:
        DatasetError: Malformed JSON (naming the line and column), too deep, or one of
            the refused forms.
    """
    fix = "Check the file's JSON syntax"

    def constant(name: str) -> Any:
        raise DatasetError("not standard JSON", file=file, expected=what, found=name,
                           fix="Write numbers, or null")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) < len(pairs):
            seen: set[str] = set()
            repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
            raise DatasetError("a key repeated in a JSON object", file=file, field=repeated,
                               expected="each key once", found="it twice",
                               fix="Keep one of the two")
        return result

    try:
        data = json.loads(text, parse_constant=constant, object_pairs_hook=unique)
    except RecursionError:
        raise DatasetError("JSON nested too deeply", file=file, expected=f"{what} nested at "
                           f"most {max_depth} deep", found="far deeper", fix=fix) from None
    except json.JSONDecodeError as error:
        raise DatasetError("malformed JSON", file=file,
                           field=f"line {error.lineno}, column {error.colno}", expected=what,
                           found=error.msg, fix=fix) from None
    depth = _depth(data)
    if depth > max_depth:
        raise DatasetError("JSON nested too deeply", file=file, expected=f"{what} nested at "
                           f"most {max_depth} deep", found=f"{depth} deep", fix=fix)
    return data


def _depth(data: Any) -> int:
    """How deep lists and objects nest in parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def read_user_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES,
                   max_depth: int = MAX_JSON_DEPTH, root: str | os.PathLike | None = None,
                   what: str = "a JSON file") -> Any:
    """A user's JSON file, read with :func:`read_user_text` and :func:`parse_json`."""
    text = read_user_text(path, max_bytes=max_bytes, root=root, what=what)
    if not text.strip():
        raise DatasetError("empty file", file=path, expected=what, found="no content",
                           fix="Write the file's content, or point at the right file")
    return parse_json(text, path, max_depth=max_depth, what=what)


@dataclass(frozen=True)
class Key:
    """One key of a JSON object for :func:`check_object`.

    Args:
        types (type or tuple of types): The JSON types the value may have (``str``,
            ``int``, ``float``, ``bool``, ``list``, ``dict``, ``type(None)``); ``float``
            admits integers, ``int`` and ``float`` never admit ``true``/``false``.
        expected (str): What the value should be, in words, for the message.
        required (bool, optional): Whether the key must be present. (default: :obj:`False`)
    """

    types: type | tuple[type, ...]
    expected: str
    required: bool = False

    def admits(self, value: Any) -> bool:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        if isinstance(value, bool):
            return bool in types
        return isinstance(value, types) or (float in types and isinstance(value, int))


def check_object(data: Any, keys: Mapping[str, Key], file: str | os.PathLike, *,
                 field: str | None = None, fix: str | None = None,
                 others: bool = False) -> dict[str, Any]:
    """Check that ``data`` is a JSON object with the ``keys`` (see :class:`Key`).

    Args:
        data (Any): The parsed value.
        keys (Mapping[str, Key]): Every key the object may have.
        file (str or PathLike): The file it came from, for the message.
        field (str, optional): Where the object is in the file (e.g. ``"features"``); keys
            are named ``field.key``. (default: :obj:`None`, the whole file)
        fix (str, optional): What to do, for the message. (default: :obj:`None`)
        others (bool, optional): Let keys outside ``keys`` through unchecked, for a format
            that another library owns (a BERT ``config.json``). (default: :obj:`False`,
            unknown keys are refused)

    Returns:
        dict[str, Any]: ``data``.

    Raises:
        DatasetError: ``data`` is not an object, a required key is missing, a key is
            unknown or a value has the wrong type, naming the key.
    """
    def name(key: str) -> str:
        return key if field is None else f"{field}.{key}"

    required = [key for key, spec in keys.items() if spec.required]
    if not isinstance(data, dict):
        raise DatasetError("not a JSON object", file=file, field=field,
                           expected=f"an object with the keys {required}",
                           found=_shown(data), fix=fix)
    for key in required:
        if key not in data:
            raise DatasetError(f"missing key '{key}'", file=file, field=name(key),
                               expected=keys[key].expected, found=f"keys {sorted(data)}",
                               fix=fix)
    for key, value in data.items():
        if key not in keys and others:
            continue
        if key not in keys:
            raise DatasetError(f"unknown key '{key}'", file=file, field=name(key),
                               expected=f"keys among {list(keys)}", found=f"keys {sorted(data)}",
                               fix=fix)
        if not keys[key].admits(value):
            raise DatasetError(f"wrong type for '{key}'", file=file, field=name(key),
                               expected=keys[key].expected, found=_shown(value), fix=fix)
    return data


def _shown(value: Any, width: int = 60) -> str:
    """A JSON value's type and a short repr, for a one-line message."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")
    text = repr(value)
    return f"{kind} {text if len(text) <= width else text[:width] + '...'}"
