"""The exceptions of dhmd_graph: one base, and one branch for what the user can fix.

=================================  ==========================================  ===========
class                              raised for                                  ``dhmd``
=================================  ==========================================  ===========
:class:`DHMDError`                 the base of every error of this library     --
:class:`UserError`                 input the user can fix (the branch below)   exit 2
:class:`ConfigError`               a configuration value, key or file          exit 2
:class:`DatasetError`              a data file or array that cannot be used    exit 2
:class:`CheckpointError`           a checkpoint unreadable, unsafe or foreign  exit 2
:class:`RunFolderError`            a run folder missing or not what it should  exit 2
:class:`FileLockedError`           another process writes the output file      exit 2
:class:`RunLockedError`            another process writes the run folder       exit 2
:class:`RunExistsError`            the folder holds a run (no resume/overwrite) exit 2
:class:`NonFiniteLossError`        training diverged (a loss became NaN/inf)   exit 1
:class:`NonFinitePredictionError`  a checkpoint predicts NaN/inf               exit 1
=================================  ==========================================  ===========

Every :class:`UserError` is also a :class:`ValueError` (and :class:`RunExistsError` a
:class:`FileExistsError`), so code that catches those keeps working. The command line
prints a :class:`UserError` as one line and exits with status 2; any exception that is
not a :class:`DHMDError` (a :class:`ValueError` from torch or from a layer included) is
a bug and keeps its traceback (exit status 1).
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DHMDError",
    "DatasetError",
    "FileLockedError",
    "NonFiniteLossError",
    "NonFinitePredictionError",
    "RunExistsError",
    "RunFolderError",
    "RunLockedError",
    "UserError",
]


class DHMDError(Exception):
    """The base of every exception raised on purpose by dhmd_graph."""


class UserError(DHMDError, ValueError):
    """Input the user can fix: a file, a value, a folder. The message says what and how."""


class ConfigError(UserError):
    """A configuration key, value or file that is not valid; the message names the field."""


class DatasetError(UserError):
    r"""Raised for any data file or array that cannot be used as given.

    The message is one paragraph that names where the problem is (file, split,
    field), what was expected, what was found, and what to do about it. The
    individual parts are kept as attributes so callers and tests can inspect them.

    Args:
        problem (str): What is wrong, in a few words.
        file (str or PathLike, optional): The file being read. (default: :obj:`None`)
        split (str, optional): The split (``train``/``valid``/``test``). (default: :obj:`None`)
        field (str, optional): The key or array inside the split. (default: :obj:`None`)
        expected (str, optional): What a good file holds there. (default: :obj:`None`)
        found (str, optional): What this file holds there. (default: :obj:`None`)
        fix (str, optional): What the user can do. (default: :obj:`None`)
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | PathLike | None = None,
        split: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.split = split
        self.field = field
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        where = [
            f"{label} '{value}'"
            for label, value in (("file", self.file), ("split", self.split), ("field", self.field))
            if value is not None
        ]
        parts = [self.problem.rstrip(".")]
        if where:
            parts[0] += " (" + ", ".join(where) + ")"
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        if self.found is not None:
            parts.append(f"found {self.found}")
        message = "; ".join(parts) + "."
        if self.fix is not None:
            message += " " + self.fix.rstrip(".") + "."
        return message


class CheckpointError(UserError):
    """A checkpoint file cannot be used: unreadable, unsafe, or not of this model."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None) -> None:
        self.path = Path(path)
        fix = fix or ("Use a best.pt or last.pt written by 'dhmd train' (or delete a damaged "
                      "last.pt to restart that seed)")
        super().__init__(f"checkpoint '{path}': {problem}. {fix.rstrip('.')}.")


class RunFolderError(UserError):
    """A run folder (or one of its files) is missing or not what it should be."""


class FileLockedError(UserError):
    """Another process is writing the same output (a run folder, a predictions file)."""


class RunLockedError(RunFolderError, FileLockedError):
    """Another process is writing the run folder."""


class RunExistsError(RunFolderError, FileExistsError):
    """The output folder already holds a run, and neither resuming nor overwriting it was asked."""


class NonFiniteLossError(DHMDError, RuntimeError):
    """A training term became NaN or infinite; training stopped before the update."""


class NonFinitePredictionError(DHMDError, RuntimeError):
    """A trained model predicted NaN or infinity (damaged weights); nothing was written."""
