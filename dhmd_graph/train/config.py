"""The training configuration: optimiser, schedule, early stopping, seeds, device."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dhmd_graph.metrics import metric_direction

__all__ = ["TrainConfig"]

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
ACCUMULATIONS = ("averaged", "summed")


@dataclass
class TrainConfig:
    r"""How :class:`~dhmd_graph.train.Trainer` trains a model.

    The defaults are the reference settings of DMD (SPEC §6): Adam with learning rate
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
            ``accumulation_steps`` learns nothing; SPEC §11 #11). Under ``torchrun``
            each process clips its own running sum, and DDP averages the sums over
            the processes at the step. (default: ``"averaged"``)
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
            :class:`torch.device` string. (default: ``"auto"``)
        num_workers (int, optional): :class:`~torch.utils.data.DataLoader` worker
            processes. (default: ``0``)
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
        self.seeds = [int(seed) for seed in self.seeds]
        checks = [
            ("lr", self.lr > 0, "a positive number"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("accumulation_steps", self.accumulation_steps >= 1, "an integer >= 1"),
            ("accumulation", self.accumulation in ACCUMULATIONS, f"one of {ACCUMULATIONS}"),
            ("clip_value", self.clip_value is None or self.clip_value > 0,
             "a positive number or None"),
            ("weight_decay", self.weight_decay >= 0, "a number >= 0"),
            ("lr_factor", 0 < self.lr_factor < 1, "a number in (0, 1)"),
            ("lr_patience", self.lr_patience >= 0, "an integer >= 0"),
            ("early_stop_patience", self.early_stop_patience >= 1, "an integer >= 1"),
            ("max_epochs", self.max_epochs >= 1, "an integer >= 1"),
            ("monitor_mode", self.monitor_mode in ("auto", "min", "max"),
             "'auto', 'min' or 'max'"),
            ("seeds", len(self.seeds) >= 1, "at least one seed"),
            ("num_workers", self.num_workers >= 0, "an integer >= 0"),
            ("eval_batch_size", self.eval_batch_size is None or self.eval_batch_size >= 1,
             "an integer >= 1 or None"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(
                    f"TrainConfig.{name}: expected {expected}, found {getattr(self, name)!r}. "
                    f"Set it with --set train.{name}=VALUE."
                )
        if self.monitor_mode == "auto":
            try:
                metric_direction(self.monitor)
            except ValueError as error:
                raise ValueError(f"TrainConfig.monitor_mode: 'auto' needs a known metric name; "
                                 f"{error}") from None

    @property
    def direction(self) -> str:
        """``"min"`` or ``"max"``: :attr:`monitor_mode`, with ``"auto"`` resolved from
        :attr:`monitor`."""
        return metric_direction(self.monitor) if self.monitor_mode == "auto" else self.monitor_mode

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
            raise ValueError(f"TrainConfig.preset: expected one of {sorted(schedules)}, "
                             f"found {name!r}.")
        return cls(**schedules[name])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from (part of) :func:`dataclasses.asdict`'s output; missing keys keep
        their defaults."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown key(s) {unknown}; valid keys: {sorted(known)}.")
        return cls(**data)

    def with_overrides(self, overrides: Sequence[str]) -> TrainConfig:
        """A copy with ``key=value`` overrides applied (e.g. ``["lr=3e-4",
        "seeds=[1111,1112]", "clip_value=none"]``), each value parsed as its field's type.

        Raises:
            ValueError: Naming the unknown key (and the valid ones) or the bad value.
        """
        hints = typing.get_type_hints(TrainConfig)
        values = asdict(self)
        for item in overrides:
            key, equals, text = (part.strip() for part in item.partition("="))
            if not equals or key not in hints:
                raise ValueError(f"TrainConfig: expected 'key=value' with a key of "
                                 f"{sorted(hints)}, found {item!r}.")
            values[key] = _parse(hints[key], text, key)
        return TrainConfig(**values)


def _parse(hint: Any, text: str, key: str) -> Any:
    """``text`` as a value of type ``hint`` (bool, int, float, str, list[int], or optional)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in options and text.lower() in ("none", "null"):
        return None
    (kind,) = [option for option in options if option is not type(None)]
    try:
        if kind is bool and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        if kind in (int, float, str):
            return kind(text)
        if typing.get_origin(kind) is list:
            return [int(value) for value in json.loads(text)]
    except (ValueError, TypeError):
        pass
    raise ValueError(f"TrainConfig.{key}: expected a value of type {kind}, found {text!r}.")
