"""Checkpoints written atomically and read back with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python data (configs as dicts, random
states as tensors), so :func:`torch.load` never has to unpickle arbitrary objects.
It is written to a temporary file in the target's folder and moved into place with
:func:`os.replace`: a reader (or a run killed mid-write) sees the old file or the new
one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically and return the path.

    Args:
        state (dict): Tensors and plain data only (dicts, lists, tuples, str, numbers,
            bools, :obj:`None`).
        path (str or PathLike): The checkpoint file; its folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``).

    Args:
        path (str or PathLike): The checkpoint file.
        map_location (str or torch.device, optional): Where to put the tensors.
            (default: ``"cpu"``)

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at '{path}'")
    return torch.load(path, map_location=map_location, weights_only=True)
