"""The foundation's exception types: :class:`DatasetError` for bad data, and its message
builder. This module imports nothing of ours, so that every floor may import it."""

from __future__ import annotations

from os import PathLike

__all__ = ["DatasetError"]


class DatasetError(ValueError):
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
