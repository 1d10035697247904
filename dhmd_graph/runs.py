r"""Runs of ``dhmd train`` as files: the run folder, its configuration, and its trained model.

The generic part, :class:`~dhmd_graph.train.run_folder.RunFolder` (the layout of a run
folder, its writer lock and atomic writes), lives with the trainer; this module adds
what needs the DHMD model:

- :func:`read_experiment` reads a run's ``config.json`` (or a ``--config`` file) and
  checks every key and value before anything is built or written;
- :func:`load_model` rebuilds the trained :class:`~dhmd_graph.DHMD` of a run, a seed
  folder or a checkpoint file, treating the checkpoint as untrusted input;
  :func:`load_run` does the same and also says which checkpoint it read
  (:meth:`DHMD.from_run <dhmd_graph.DHMD.from_run>` returns the model alone).

Example (what ``dhmd eval`` and ``dhmd inspect`` do):

.. code-block:: python

    from dhmd_graph.runs import RunFolder, load_model, read_experiment

    run = RunFolder("runs/mosei")
    config = read_experiment(run.config_path)      # preset, aligned, data, model, train
    for seed in run.checkpoints():                 # {seed: path of best.pt}
        model, meta = load_model(run.path, seed=seed)   # DHMD in eval mode (device="cpu")
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from dhmd_graph.fields import first_difference
from dhmd_graph.train.checkpoint import CheckpointError, check_state_dict, load_checkpoint
from dhmd_graph.train.run_folder import (
    RunExistsError,
    RunFolder,
    RunFolderError,
    RunLockedError,
    SeedFolder,
    find_checkpoints,
)

__all__ = ["EXPERIMENT_KEYS", "RunExistsError", "RunFolder", "RunFolderError", "RunLockedError",
           "SeedFolder", "TrainedRun", "find_checkpoints", "load_model", "load_run",
           "read_experiment"]

EXPERIMENT_KEYS = {
    "preset": (str, "a preset name such as \"mosei\""),
    "aligned": (bool, "true or false"),
    "data": ((str, type(None)), "a dataset path or null"),
    "model": (dict, "an object of model settings (DHMDConfig)"),
    "train": (dict, "an object of training settings (TrainConfig)"),
}
"""The keys of a run's ``config.json``: type and description of each (all optional)."""


def check_experiment(data: Any, source: str | os.PathLike) -> dict:
    """Check a run configuration as plain data: a JSON object with only
    :data:`EXPERIMENT_KEYS` of the right types, and valid ``model`` and ``train``
    settings; every error names ``source``."""
    from dhmd_graph.config import config_from_dict
    from dhmd_graph.train.config import TrainConfig

    if not isinstance(data, dict):
        raise ValueError(f"'{source}': expected a JSON object with the keys "
                         f"{list(EXPERIMENT_KEYS)}, found a {type(data).__name__}.")
    unknown = sorted(set(data) - set(EXPERIMENT_KEYS), key=str)
    if unknown:
        raise ValueError(f"'{source}': unknown key(s) {unknown}; valid keys: "
                         f"{list(EXPERIMENT_KEYS)}.")
    for key, value in data.items():
        kind, expected = EXPERIMENT_KEYS[key]
        if not isinstance(value, kind):
            raise ValueError(f"'{source}': key '{key}': expected {expected}, found {value!r} "
                             f"({type(value).__name__}).")
    try:
        if "model" in data:
            config_from_dict(data["model"])
        TrainConfig.from_dict(data.get("train", {}))
    except ValueError as error:
        raise ValueError(f"'{source}': {error}") from None
    return data


def read_experiment(path: str | os.PathLike) -> dict:
    """A run's ``config.json`` (or a ``--config`` file), checked by :func:`check_experiment`.

    Raises:
        ValueError: The file is not JSON, or a key or value is not valid, naming the
            file and the key.
        OSError: The file cannot be read.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except ValueError as error:  # JSON or UTF-8
        raise ValueError(f"'{path}': not a JSON file ({error}).") from None
    return check_experiment(data, path)


def load_model(target: str | os.PathLike, *, seed: int | None = None, which: str = "best",
               device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    r"""The trained :class:`~dhmd_graph.DHMD` of a run, in evaluation mode, and its meta.

    The checkpoint is untrusted input: it is read by
    :func:`~dhmd_graph.train.load_checkpoint` (``weights_only``, no TorchScript, no zip
    bomb); its model configuration must be valid and, when the checkpoint lies in a run
    folder, the same as the run's ``config.json``; and its tensors must have the shapes
    of that configuration, compared on a model built on the ``meta`` device (which
    allocates nothing), before the real model is built. So a checkpoint that declares a
    huge model is refused without allocating it.

    Args:
        target (str or PathLike): A run folder, one of its ``seed_<s>`` folders, or a
            ``.pt`` file.
        seed (int, optional): The seed of a run folder; :obj:`None` takes the first.
            (default: :obj:`None`)
        which (str, optional): ``"best"`` (selected on validation) or ``"last"``.
            (default: ``"best"``)
        device (str or torch.device, optional): Where to put the model (the checkpoint
            is read and checked on the CPU). (default: ``"cpu"``)

    Returns:
        tuple[nn.Module, dict]: The model, and the checkpoint's ``meta`` (``preset``,
        ``aligned``, ``data``, ``model``) with its ``epoch`` and ``seed`` added.

    Raises:
        RunFolderError: There is no such checkpoint.
        CheckpointError: The checkpoint is unreadable, unsafe, or not of this model.
    """
    from dhmd_graph.config import config_from_dict
    from dhmd_graph.model import DHMD

    path = find_checkpoints(target, seed, which)[0]
    state = load_checkpoint(path, keys=("model", "meta"))
    meta = state["meta"]
    if not (isinstance(meta, dict) and isinstance(meta.get("model"), dict)):
        raise CheckpointError(path, "it was not written by 'dhmd train': its meta has no model "
                              "configuration, so the model cannot be rebuilt")
    for key in ("preset", "data"):
        if not isinstance(meta.get(key), (str, type(None))):
            raise CheckpointError(path, f"its meta '{key}' is {meta[key]!r}, not a string")
    _check_against_run(path, meta["model"])
    try:
        config = config_from_dict(meta["model"])
    except ValueError as error:
        raise CheckpointError(path, f"its model configuration is invalid: {error}") from None
    with torch.device("meta"):
        skeleton = DHMD(config, pretrained=False)
    check_state_dict(skeleton, state["model"], path)
    model = DHMD(config, pretrained=False)  # a BERT's weights come from the checkpoint
    model.load_state_dict(state["model"])
    meta = dict(meta, epoch=state.get("epoch"), seed=state.get("seed"))
    return model.to(device).eval(), meta


class TrainedRun(NamedTuple):
    r"""A trained model of a run, as :func:`load_run` returns it.

    Attributes:
        model (nn.Module): The :class:`~dhmd_graph.DHMD`, in evaluation mode.
        meta (dict): The checkpoint's meta (``preset``, ``aligned``, ``data``,
            ``model``, ``epoch``, ``seed``), as from :func:`load_model`.
        checkpoint (Path): The checkpoint file it was read from.
    """

    model: nn.Module
    meta: dict
    checkpoint: Path


def load_run(target: str | os.PathLike, *, seed: int | None = None, which: str = "best",
             device: str | torch.device = "cpu") -> TrainedRun:
    r"""The trained model of a run (or seed folder, or ``.pt`` file), checked as by
    :func:`load_model`, with its meta and the checkpoint it came from.

    Args:
        target (str or PathLike): A run folder, one of its ``seed_<s>`` folders, or a
            ``.pt`` file.
        seed (int, optional): The seed of a run folder; :obj:`None` takes the first.
            (default: :obj:`None`)
        which (str, optional): ``"best"`` or ``"last"``. (default: ``"best"``)
        device (str or torch.device, optional): Where to put the model.
            (default: ``"cpu"``)

    Raises:
        RunFolderError: There is no such checkpoint.
        CheckpointError: The checkpoint is unreadable, unsafe, or not of this model.
    """
    checkpoint = find_checkpoints(target, seed, which)[0]
    model, meta = load_model(checkpoint, device=device)
    return TrainedRun(model, meta, checkpoint)


def _check_against_run(path: Path, model: Mapping) -> None:
    """A checkpoint inside ``RUN/seed_<s>/`` must declare the model of ``RUN/config.json``."""
    run = RunFolder(path.parent.parent)
    if path.parent.name not in {f"seed_{s}" for s in run.seeds()} or not run.config_path.is_file():
        return
    saved = run.read_config().get("model")
    difference = first_difference(saved, dict(model)) if isinstance(saved, dict) else None
    if difference:
        key, expected, found = difference
        raise CheckpointError(path, f"it declares a model other than the run's "
                              f"{run.config_path.name} ({key}: {found!r} instead of "
                              f"{expected!r})")
