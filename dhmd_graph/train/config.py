"""The training configuration: optimiser, schedule, early stopping, seeds, device."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from dhmd_graph.errors import ConfigError
from dhmd_graph.fields import apply_overrides, check_field_types, from_dict
from dhmd_graph.metrics import metric_direction

__all__ = ["MAX_WORKERS", "TrainConfig"]

ACCUMULATIONS = ("averaged", "summed")

MAX_WORKERS = 4 * (os.cpu_count() or 1)
"""The most data-loading processes :attr:`TrainConfig.num_workers` may ask for: four per
CPU core of this machine (more only compete for the same cores, and a typo such as
``num_workers=100000`` would fork that many processes)."""


@dataclass
class TrainConfig:
    r"""How :class:`~dhmd_graph.train.Trainer` trains a model.

    The defaults are the settings of the DMD reference code: Adam with learning rate
    ``1e-4``, batches of 16, gradients accumulated over 10 batches and value-clipped at
    0.6, :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` (factor 0.5, patience 5)
    on the validation MAE, early stopping after 10 epochs without improvement, and the
    seeds 1111-1115. Unlike the reference, ``weight_decay`` is applied when set, and
    the accumulated gradients are averaged (``accumulation="averaged"``);
    :meth:`preset` ``("dmd")`` gives the reference's own accumulation.

    Args:
        lr (float, optional): Adam learning rate. (default: ``1e-4``)
        batch_size (int, optional): Samples per batch *per process*; under ``torchrun``
            the global batch is ``batch_size * world_size``. (default: ``16``)
        accumulation_steps (int, optional): Batches whose gradients are accumulated
            into one optimiser step. (default: ``10``)
        accumulation (str, optional): How: ``"averaged"`` (ours: the window's
            gradients are averaged and clipped once, before the step; the last,
            shorter window of an epoch is averaged over its own batches and stepped,
            so every batch is learned from) or ``"summed"`` (the DMD reference,
            ``trains/singleTask/DMD.py:170-195``: the gradients of the window are
            summed, the running sum is value-clipped after every backward, and the
            last partial window of an epoch is dropped: its batches are run for
            the logged loss but never stepped, so an epoch of fewer batches than
            ``accumulation_steps`` learns nothing; docs/guide/dmd.md, difference 11).
            Under ``torchrun`` each process clips its own running sum, and DDP averages the
            sums over the processes at the step. ``"averaged"`` stays the default although
            the
            switch ablation measured a test MAE 0.013 lower with ``"summed"`` (3 seeds,
            about one standard deviation; docs/guide/dmd.md): it removes a
            limitation, the batches the reference drops. (default: ``"averaged"``)
        clip_value (float, optional): Gradients are clamped to ``[-clip_value,
            clip_value]`` (before each step, or after each backward with
            ``accumulation="summed"``); :obj:`None` disables. (default: ``0.6``)
        weight_decay (float, optional): Adam's L2 penalty. (default: ``0.0``)
        lr_factor (float, optional): Learning-rate factor on a plateau. (default: ``0.5``)
        lr_patience (int, optional): Epochs without improvement before the learning
            rate drops. (default: ``5``)
        early_stop_patience (int, optional): Epochs without improvement before
            training stops. (default: ``10``)
        max_epochs (int, optional): Upper bound on the epochs. (default: ``100``)
        monitor (str, optional): The validation metric used for model selection, the
            scheduler and early stopping, e.g. ``"MAE"`` for regression, ``"F1_weighted"``
            for IEMOCAP-6 (:func:`~dhmd_graph.metrics.default_monitor` gives each task's).
            (default: ``"MAE"``)
        monitor_mode (str, optional): ``"min"`` or ``"max"``: whether a smaller or a
            larger ``monitor`` is better; ``"auto"`` derives it from the metric's name
            with :func:`~dhmd_graph.metrics.metric_direction` (``MAE``, ``loss``: min;
            accuracies, F1, ``Corr``: max). :attr:`direction` is the result.
            (default: ``"auto"``)
        seeds (list[int], optional): One run per seed. (default: ``[1111, ..., 1115]``)
        device (str, optional): ``"auto"`` (CUDA when available, else CPU) or a
            :class:`torch.device` string; whether the device exists is checked when
            training starts. (default: ``"auto"``)
        num_workers (int, optional): :class:`~torch.utils.data.DataLoader` worker
            processes, at most :data:`MAX_WORKERS`. (default: ``0``)
        eval_batch_size (int, optional): Batch size for validation and test;
            :obj:`None` uses ``batch_size``. (default: :obj:`None`)
        deterministic (bool, optional): Ask PyTorch for deterministic algorithms, so
            that a CPU run repeats exactly (and a resumed run matches an uninterrupted
            one). (default: :obj:`True`)
        progress (bool, optional): Print one line per epoch (epoch, training loss, the
            monitored validation metric, lr, time) and, on a terminal, show a progress
            bar while an epoch trains; only on the first process. (default: :obj:`True`)
    """

    lr: float = 1e-4
    batch_size: int = 16
    accumulation_steps: int = 10
    accumulation: str = "averaged"
    clip_value: float | None = 0.6
    weight_decay: float = 0.0
    lr_factor: float = 0.5
    lr_patience: int = 5
    early_stop_patience: int = 10
    max_epochs: int = 100
    monitor: str = "MAE"
    monitor_mode: str = "auto"
    seeds: list[int] = field(default_factory=lambda: [1111, 1112, 1113, 1114, 1115])
    device: str = "auto"
    num_workers: int = 0
    eval_batch_size: int | None = None
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)  # types first: no coercion, true is not 1, "0.1" not 0.1
        checks = [
            ("lr", math.isfinite(self.lr) and self.lr > 0, "a positive number"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("accumulation_steps", self.accumulation_steps >= 1, "an integer >= 1"),
            ("accumulation", self.accumulation in ACCUMULATIONS, f"one of {ACCUMULATIONS}"),
            ("clip_value", self.clip_value is None
             or (math.isfinite(self.clip_value) and self.clip_value > 0),
             "a positive number or None"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0,
             "a number >= 0"),
            ("lr_factor", 0 < self.lr_factor < 1, "a number in (0, 1)"),
            ("lr_patience", self.lr_patience >= 0, "an integer >= 0"),
            ("early_stop_patience", self.early_stop_patience >= 1, "an integer >= 1"),
            ("max_epochs", self.max_epochs >= 1, "an integer >= 1"),
            ("monitor", bool(self.monitor.strip()), "the name of a validation metric"),
            ("monitor_mode", self.monitor_mode in ("auto", "min", "max"),
             "'auto', 'min' or 'max'"),
            ("seeds", len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds)
             and all(0 <= seed < 2**63 for seed in self.seeds),
             "a list of distinct integers in [0, 2**63), at least one"),
            ("device", _is_device(self.device),
             "'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:1'"),
            ("num_workers", 0 <= self.num_workers <= MAX_WORKERS,
             f"an integer in [0, {MAX_WORKERS}] (MAX_WORKERS: 4 per CPU core)"),
            ("eval_batch_size", self.eval_batch_size is None or self.eval_batch_size >= 1,
             "an integer >= 1 or None"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"TrainConfig.{name}: expected {expected}, found {getattr(self, name)!r}. "
                    f"Set it with --set train.{name}=VALUE."
                )
        if self.monitor_mode == "auto":
            try:
                metric_direction(self.monitor)
            except ValueError as error:
                raise ConfigError(f"TrainConfig.monitor_mode: 'auto' needs a known metric name; "
                                  f"{error}") from None

    @property
    def direction(self) -> str:
        """``"min"`` or ``"max"``: :attr:`monitor_mode`, with ``"auto"`` resolved from
        :attr:`monitor`."""
        return metric_direction(self.monitor) if self.monitor_mode == "auto" else self.monitor_mode

    def check_monitor(self, reported: Collection[str]) -> None:
        """Raise a :class:`~dhmd_graph.errors.ConfigError` unless :attr:`monitor` is one of the ``reported``
        validation metrics (call it before training, so that a typo fails at once)."""
        if self.monitor not in reported:
            raise ConfigError(
                f"TrainConfig.monitor: expected one of the metrics {sorted(reported)}, found "
                f"{self.monitor!r}. Set train.monitor to one of them."
            )

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        r"""A named training schedule.

        ``"default"`` is :class:`TrainConfig` ``()``. ``"dmd"`` is the DMD reference's
        schedule (``config/config.json`` and ``trains/singleTask/DMD.py``): Adam lr
        ``1e-4`` without weight decay (the reference configures 0.005 / 0.001 but never
        passes it to Adam), batches of 16, 10 batches per step with
        ``accumulation="summed"``, value clipping 0.6, ReduceLROnPlateau(0.5, 5),
        early stopping after 10 epochs, seeds 1111-1115. The reference schedules and
        selects on its validation ``Loss`` (the mean of per-batch L1 losses), we on
        the validation ``MAE`` (the same up to a shorter last batch).

        Args:
            name (str): ``"default"`` or ``"dmd"``.
        """
        schedules = {"default": {}, "dmd": {"accumulation": "summed", "weight_decay": 0.0}}
        if name not in schedules:
            raise ConfigError(f"TrainConfig.preset: expected one of {sorted(schedules)}, "
                              f"found {name!r}.")
        return cls(**schedules[name])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from (part of) :func:`dataclasses.asdict`'s output; missing keys keep
        their defaults, unknown keys and values of the wrong type are refused
        (:func:`dhmd_graph.fields.from_dict`)."""
        return from_dict(cls, dict(data) if isinstance(data, Mapping) else data)

    def with_overrides(self, overrides: Sequence[str]) -> TrainConfig:
        """A copy with ``key=value`` overrides applied (e.g. ``["lr=3e-4",
        "seeds=[1111,1112]", "clip_value=none"]``), each value parsed as its field's type
        (:func:`dhmd_graph.fields.apply_overrides`, which also returns the keys set).

        Raises:
            ConfigError: Naming the unknown key (and the valid ones) or the bad value.
        """
        return apply_overrides(self, overrides)[0]


def _is_device(name: str) -> bool:
    if name == "auto":
        return True
    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True
