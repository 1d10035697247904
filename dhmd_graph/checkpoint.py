"""Checkpoints written atomically and read back with ``weights_only=True``, checked first.

A checkpoint is a dict of tensors and plain Python data (configs as dicts, random
states as tensors), so :func:`torch.load` never has to unpickle arbitrary objects.
It is written with :func:`~dhmd_graph.files.atomic_write`: a reader (or a run killed
mid-write) sees the old file or the new one, never half of one.

A checkpoint may come from anywhere, so :func:`load_checkpoint` treats it as untrusted:
it must be a ``torch.save`` zip archive whose records are stored uncompressed and fit
in the file (no zip bomb), not a TorchScript archive (which runs code), and it is read
with ``weights_only=True`` (a pickle that names any other global is refused before it
runs). Every failure is a :class:`CheckpointError` naming the file; the tensors are
compared with the model's shapes before they are loaded (:func:`check_state_dict`).
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dhmd_graph.errors import CheckpointError
from dhmd_graph.files import atomic_write

__all__ = ["CheckpointError", "check_state_dict", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically and return the path.

    Args:
        state (dict): Tensors and plain data only (dicts, lists, tuples, str, numbers,
            bools, :obj:`None`).
        path (str or PathLike): The checkpoint file; its folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda file: torch.save(state, file))


def _check_archive(path: Path) -> None:
    """Refuse what is not a plain ``torch.save`` zip archive, before unpickling anything."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "the file is empty")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            head = file.read(64)
        text = head.strip() and all(32 <= byte < 127 or byte in b"\t\n\r" for byte in head)
        kind = "a text file" if text else "not a zip archive (truncated, or another format)"
        raise CheckpointError(path, f"not a PyTorch checkpoint (torch.save's zip format): {kind}")
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(path, f"a damaged or truncated archive ({error})") from None
    names = [record.filename for record in records]
    if any(name.endswith("constants.pkl") or "/code/" in name for name in names):
        raise CheckpointError(path, "a TorchScript archive (torch.jit.save), not a checkpoint; "
                              "TorchScript runs code when loaded and is never read here")
    if not any(name.endswith("/data.pkl") for name in names):
        raise CheckpointError(path, "a zip archive without the data.pkl of a checkpoint")
    if any(record.compress_type != zipfile.ZIP_STORED for record in records) or \
            sum(record.file_size for record in records) > size:
        raise CheckpointError(path, "compressed records or records larger than the file "
                              "(torch.save stores them uncompressed); refusing to expand them")


def _unsafe_detail(error: Exception) -> str:
    """What torch's weights-only unpickler refused, without its advice to disable it."""
    text = str(error)
    found = re.search(r"(Unsupported (?:global|operand)[^\n]*|unsupported GLOBAL [^\n]*)", text)
    return found.group(1).strip().rstrip(".") if found else "objects other than tensors and data"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    keys: Iterable[str] = ()) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, as untrusted input.

    Args:
        path (str or PathLike): The checkpoint file.
        map_location (str or torch.device, optional): Where to put the tensors.
            (default: ``"cpu"``)
        keys (Iterable[str], optional): Entries the checkpoint must have. A ``"model"``
            entry must map names to tensors. (default: ``()``)

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is empty, truncated, not a checkpoint, a TorchScript
            archive, refers to code (refused, never run), or lacks one of ``keys``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at '{path}'")
    _check_archive(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(path, f"refused to load it: it holds {_unsafe_detail(error)}, "
                              "which could run code") from None
    except (RuntimeError, EOFError, ValueError, TypeError, KeyError, AttributeError,
            IndexError, OverflowError, zipfile.BadZipFile, MemoryError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(path, f"cannot be read ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a checkpoint dict")
    missing = [key for key in keys if key not in state]
    if missing:
        raise CheckpointError(path, f"lacks the entries {missing} (it has {sorted(map(str, state))})")
    if "model" in state and not (isinstance(state["model"], Mapping) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items())):
        raise CheckpointError(path, "its 'model' entry is not a state dict of named tensors")
    return state


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor],
                     path: str | os.PathLike) -> None:
    """Raise a :class:`CheckpointError` unless ``state`` has exactly ``model``'s entries,
    each with the model's shape and dtype (compare before loading, so nothing is
    half-loaded and the message names the first difference). Works for a model built
    on the ``meta`` device, which allocates nothing."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        raise CheckpointError(path, "its weights are not those of the configured model "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, tensor in expected.items():
        found = state[name]
        if found.shape != tensor.shape or found.dtype != tensor.dtype:
            raise CheckpointError(
                path, f"weight '{name}' has shape {tuple(found.shape)} ({found.dtype}) but the "
                f"configured model needs {tuple(tensor.shape)} ({tensor.dtype})")
