"""A short, model-agnostic training loop.

The :class:`Trainer` knows a model only through three methods (:class:`TrainableModel`):

- ``model.training_step(batch) -> dict[str, Tensor]``: scalar terms, among them the
  differentiable total ``"loss"``; every term is averaged over the epoch and logged.
- ``model.predict_step(batch) -> (prediction, target)``: ``(B, *P)`` predictions
  (``(B,)`` scores, ``(B, C)`` class scores or ``(B, C)`` label scores) and the
  ``(B, *L)`` targets they are scored against, as the metric function expects.
- ``model.configure_optimizers(config) -> (optimizer, scheduler)``: the optimiser of
  the model's parameters and a learning-rate scheduler (or :obj:`None`); a
  :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` is stepped with the monitored
  validation metric, any other scheduler once per epoch.

It knows the data only through the ``collate_fn`` it is given, which turns a list of
samples into a batch with a ``to(device)`` method. It accumulates gradients and clips
their values, stops early, selects the checkpoint on the validation split only, and
evaluates the test split once, with that checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from dhmd_graph.checkpoint import (
    CheckpointError,
    check_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from dhmd_graph.errors import NonFiniteLossError
from dhmd_graph.fields import first_difference
from dhmd_graph.train.config import TrainConfig
from dhmd_graph.train.distributed import (
    DistributedContext,
    all_gather_rows,
    all_ranks_true,
    gather_objects,
    own_rng_state,
    peer_timeout,
    setup_distributed,
    wrap_for_training,
)
from dhmd_graph.train.evaluation import evaluating
from dhmd_graph.train.run_folder import RunExistsError, SeedFolder
from dhmd_graph.train.seeds import rng_state, set_rng_state

__all__ = [
    "Callback",
    "Collate",
    "Metrics",
    "NonFiniteLossError",
    "RunExistsError",
    "TrainableModel",
    "Trainer",
    "predict",
]

Metrics = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]
"""``metrics(prediction (N, *P), label (N, *L)) -> {name: value}``, e.g. a function of
:func:`~dhmd_graph.metrics.metrics_for`."""

Callback = Callable[["Trainer", dict], None]
"""``callback(trainer, record)``, called after every epoch with its log record."""

Collate = Callable[[list[Any]], Any]
"""``collate_fn(samples) -> batch``: a list of dataset items to one batch, which has a
``to(device)`` method (e.g. :func:`dhmd_graph.data.collate`)."""


class TrainableModel(Protocol):
    """What the :class:`Trainer` calls on a model (an :class:`~torch.nn.Module`), in the
    names of Lightning's ``LightningModule``."""

    def training_step(self, batch: Any) -> Mapping[str, Tensor]:
        """Scalar terms of one batch, among them the differentiable total ``"loss"``."""

    def predict_step(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(B, *P)`` predictions and the ``(B, *L)`` targets of one batch."""

    def configure_optimizers(self, config: TrainConfig) -> tuple[Optimizer, Any]:
        """The optimiser and the learning-rate scheduler (or :obj:`None`) for ``config``."""


_STATE_KEYS = ("model", "optimizer", "scheduler", "epoch", "step", "best_value", "best_epoch",
               "bad_epochs", "history", "rng")


def _loader(dataset: Dataset, batch_size: int, sampler, num_workers: int,
            device: torch.device, collate_fn: Collate) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, pin_memory=device.type == "cuda")


def predict(
    model: nn.Module, dataset: Dataset, context: DistributedContext, *, collate_fn: Collate,
    batch_size: int = 64, num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``model.predict_step``'s predictions and targets of every sample, in order.

    Each process predicts every ``world_size``-th sample (no padding, so no duplicate
    is ever scored); the rows of all processes are gathered and put back in dataset
    order, so every process returns the same arrays. Predictions and targets keep their
    per-sample shapes (a score, class scores, one score per label), so one loop serves
    regression, classification and multi-label tasks. Runs in :func:`evaluating`.

    Args:
        model (nn.Module): Has ``predict_step(batch) -> (Tensor (B, *P), Tensor (B, *L))``;
            on ``context.device``.
        dataset (Dataset): Samples for :obj:`collate_fn`.
        context (DistributedContext): The processes of the run.
        collate_fn (Collate): Makes a batch of a list of samples (e.g.
            :func:`dhmd_graph.data.collate`).
        batch_size (int, optional): Samples per batch. (default: ``64``)
        num_workers (int, optional): Data-loading processes. (default: ``0``)

    Shapes:
        - **output:** ``(N, *P)`` float32 predictions, ``(N, *L)`` targets as the model
          gave them (float32 scores or multi-hot rows, int64 class indices).
    """
    indices = list(range(context.rank, len(dataset), context.world_size))
    rows, layout = [], None
    position = 0
    loader = _loader(dataset, batch_size, indices, num_workers, context.device, collate_fn)
    with evaluating(model):
        for batch in loader:
            prediction, target = model.predict_step(batch.to(context.device))  # (B, *P), (B, *L)
            size = prediction.shape[0]
            index = torch.tensor(indices[position : position + size],
                                 dtype=torch.float64, device=context.device)  # (B,)
            position += size
            layout = (tuple(prediction.shape[1:]), tuple(target.shape[1:]),
                      target.dtype.is_floating_point)
            rows.append(torch.cat([index[:, None], prediction.reshape(size, -1).double(),
                                   target.reshape(size, -1).double()], 1))  # (B, 1+P+L)
    # A process without samples learns the row layout from the others.
    layout = next(shape for shape in gather_objects(layout, context) if shape is not None)
    prediction_shape, label_shape, float_labels = layout
    width = 1 + math.prod(prediction_shape) + math.prod(label_shape)
    rows.append(torch.zeros((0, width), dtype=torch.float64, device=context.device))
    table = all_gather_rows(torch.cat(rows), context)  # (N, 1+P+L)
    table = table[table[:, 0].argsort()].cpu().numpy()
    split = 1 + math.prod(prediction_shape)
    prediction = table[:, 1:split].reshape(-1, *prediction_shape).astype(np.float32)
    labels = table[:, split:].reshape(-1, *label_shape)
    return prediction, labels.astype(np.float32 if float_labels else np.int64)


class Trainer:
    r"""Trains ``model`` on ``train_set``, selecting the checkpoint on ``valid_set``.

    Every epoch: one pass over the training set (the optimiser of
    ``model.configure_optimizers(config)``; the gradients of
    ``config.accumulation_steps`` batches are averaged into one step and clamped to
    ``±config.clip_value``, or summed and clamped after every backward as in the DMD
    reference, ``config.accumulation="summed"``), then the validation metrics; the
    monitored one (``config.monitor``, better when smaller or larger as
    ``config.direction`` says) drives the scheduler (when it is a
    :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau`), model selection and early
    stopping. The run folder receives ``best.pt`` and ``last.pt`` (see
    :mod:`~dhmd_graph.checkpoint`) and ``log.jsonl``, one JSON object per epoch
    with ``epoch``, ``lr``, ``time_s``, ``improved``, the epoch averages ``train/<term>``
    of everything ``training_step`` returned and the validation metrics ``valid/<name>``;
    with ``config.progress`` the first process also prints :meth:`epoch_line` of it (and
    shows a progress bar while training, on a terminal). :meth:`test` evaluates a split
    once, with the best checkpoint.

    Under ``torchrun`` every process trains on its shard of each epoch (a
    :class:`~torch.utils.data.DistributedSampler`; the data order depends only on
    ``seed`` and the epoch), gradients are averaged by DDP, metrics are computed on
    the predictions of all processes, and only rank 0 writes files.

    The folder's files are those of a :class:`~dhmd_graph.train.run_folder.SeedFolder`;
    a checkpoint read back (``resume``, :meth:`test`) is checked against the model's
    weights and this configuration before anything is loaded.

    Args:
        model (nn.Module): Has the methods of :class:`TrainableModel` (see above).
        config (TrainConfig): The optimisation settings.
        train_set (Dataset): Training samples for :obj:`collate_fn`.
        valid_set (Dataset): Validation samples.
        out_dir (str or PathLike): The run folder.
        metrics (Metrics): Maps predictions and targets to named metrics; must contain
            ``config.monitor``.
        collate_fn (Collate): Makes a batch of a list of samples (e.g.
            :func:`dhmd_graph.data.collate`).
        seed (int, optional): Seeds the data order. (default: ``0``)
        callbacks (Sequence[Callback], optional): Called after each epoch, once its
            checkpoints and log line are written; setting ``trainer.should_stop = True``
            ends training after that epoch. (default: ``()``)
        meta (Mapping, optional): Plain data stored in every checkpoint (e.g. the model
            configuration as a dict); a checkpoint resumed from must agree with it.
            (default: :obj:`None`)
        context (DistributedContext, optional): The processes of the run;
            :obj:`None` calls :func:`~dhmd_graph.train.distributed.setup_distributed`.
            (default: :obj:`None`)
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_set: Dataset,
        valid_set: Dataset,
        out_dir: str | Path,
        *,
        metrics: Metrics,
        collate_fn: Collate,
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        meta: Mapping | None = None,
        context: DistributedContext | None = None,
    ) -> None:
        self.config = config
        self.context = context if context is not None else setup_distributed(config.device)
        self.device = self.context.device
        self.model = model.to(self.device)
        self.step_module = wrap_for_training(self.model, self.context)
        self.valid_set = valid_set
        self.out_dir = Path(out_dir)
        self.files = SeedFolder(self.out_dir)
        self.metrics = metrics
        self.collate_fn = collate_fn
        self.seed = seed
        self.callbacks = list(callbacks)
        self.meta = dict(meta or {})

        self.optimizer, self.scheduler = self.model.configure_optimizers(config)
        self.train_sampler = DistributedSampler(
            train_set, num_replicas=self.context.world_size, rank=self.context.rank,
            shuffle=True, seed=seed,
        )
        self.train_loader = _loader(train_set, config.batch_size, self.train_sampler,
                                    config.num_workers, self.device, collate_fn)

        self.epoch = 0
        self.step = 0
        self.best_value: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.history: list[dict] = []
        self.should_stop = False
        self._tested = False

    @property
    def finished(self) -> bool:
        """Whether training has reached its end (epochs, early stopping or a callback)."""
        return (
            self.should_stop
            or self.epoch >= self.config.max_epochs
            or self.bad_epochs >= self.config.early_stop_patience
        )

    def fit(self, resume: bool = False) -> dict:
        """Train until :attr:`finished`; return the selected epoch and its metrics.

        Args:
            resume (bool, optional): Continue from ``out_dir/last.pt`` if it exists.
                (default: :obj:`False`)

        Raises:
            RunExistsError: If ``out_dir`` holds checkpoints and ``resume`` is false.
            CheckpointError: If ``resume`` finds a ``last.pt`` that is not a checkpoint of
                this model and configuration (nothing is loaded).
            NonFiniteLossError: If a training term is NaN or infinite, or the monitored
                validation metric is NaN; the checkpoints of the last finished epoch stay
                as they were.
        """
        last = self.files.last
        if last.exists() and not resume:
            raise RunExistsError(
                f"'{self.out_dir}' already holds checkpoints; resume the run or choose "
                "another folder"
            )
        if resume and last.exists():
            self._load_state(load_checkpoint(last, map_location=self.device, keys=_STATE_KEYS),
                             last)
        if self.context.is_main:
            self._write_log()
        with peer_timeout(self.context):  # a frozen or dead rank: one clear error
            while not self.finished:
                self._run_epoch()
        return self.selected()

    def selected(self) -> dict:
        """The selected (best validation) epoch and its validation metrics."""
        if self.best_epoch == 0:
            return {"best_epoch": 0, "valid": {}}
        record = self.history[self.best_epoch - 1]
        valid = {k.removeprefix("valid/"): v for k, v in record.items() if k.startswith("valid/")}
        return {"best_epoch": self.best_epoch, "valid": valid}

    def _run_epoch(self) -> None:
        self.epoch += 1
        self.train_sampler.set_epoch(self.epoch)
        start = time.perf_counter()
        record: dict = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        record |= {f"train/{name}": value for name, value in self._train_epoch().items()}
        valid = self.evaluate(self.valid_set)
        record |= {f"valid/{name}": value for name, value in valid.items()}

        self.config.check_monitor(valid)
        value = float(valid[self.config.monitor])
        if math.isnan(value):
            raise NonFiniteLossError(
                f"validation metric '{self.config.monitor}' is NaN at epoch {self.epoch}: the "
                f"model's predictions are not finite; the checkpoints in '{self.out_dir}' are "
                "those of the last finished epoch. Lower train.lr.")
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(value)
        elif self.scheduler is not None:
            self.scheduler.step()
        minimize = self.config.direction == "min"
        improved = self.best_value is None or (
            value < self.best_value if minimize else value > self.best_value
        )
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1
        record["improved"] = improved
        record["time_s"] = time.perf_counter() - start
        self.history.append(record)

        rng = gather_objects(rng_state(), self.context)  # every rank's, each resumes its own
        if self.context.is_main:
            state = self._state() | ({"rng_ranks": rng} if self.context.is_distributed else {})
            if improved:
                save_checkpoint(state, self.files.best)
            save_checkpoint(state, self.files.last)
            self.files.append_log(record)
        if self.context.is_main and self.config.progress:
            print(self.epoch_line(record), flush=True)
        for callback in self.callbacks:
            callback(self, record)

    def epoch_line(self, record: Mapping) -> str:
        """One epoch's log record as the line printed after it, e.g. ``seed 1111  epoch
        2/3  train loss 1.2345  valid MAE 0.5678 (best)  lr 1.0e-03  12.3 s``."""
        monitor = self.config.monitor
        value = record.get(f"valid/{monitor}", math.nan)
        return (f"seed {self.seed}  epoch {record['epoch']}/{self.config.max_epochs}  "
                f"train loss {record.get('train/loss', math.nan):.4f}  "
                f"valid {monitor} {value:.4f}{' (best)' if record.get('improved') else ''}  "
                f"lr {record['lr']:.1e}  {record['time_s']:.1f} s")

    def _train_epoch(self) -> dict[str, float]:
        self.model.train()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        batches = len(self.train_loader)
        accumulation = self.config.accumulation_steps
        show = self.config.progress and self.context.is_main and sys.stderr.isatty()
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch}", leave=False, disable=not show)
        summed = self.config.accumulation == "summed"
        complete = batches // accumulation * accumulation  # batches in full windows
        for index, batch in enumerate(bar):
            # The last window of an epoch may hold fewer batches than the others; summed
            # accumulation (the reference) drops it: forward for the logs, no update.
            window = min(accumulation, batches - index // accumulation * accumulation)
            dropped = summed and index >= complete
            update = not dropped and ((index + 1) % accumulation == 0 or index + 1 == batches)
            defer_sync = not update and isinstance(self.step_module, DistributedDataParallel)
            with (self.step_module.no_sync() if defer_sync else nullcontext(),
                  torch.no_grad() if dropped else nullcontext()):
                terms = self.step_module(batch.to(self.device))
                values = self._finite_values(terms, index)
                if not dropped:
                    (terms["loss"] if summed else terms["loss"] / window).backward()
            if summed and not dropped:
                self._clip_gradients()  # the running sum, after every backward
            if update:
                if not summed:
                    self._clip_gradients()
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            bar.set_postfix(loss=f"{sums['loss'] / counts['loss']:.4f}")
        totals: dict[str, list[float]] = {}
        for rank_sums, rank_counts in gather_objects((sums, counts), self.context):
            for name, value in rank_sums.items():
                total = totals.setdefault(name, [0.0, 0])
                total[0] += value
                total[1] += rank_counts[name]
        return {name: value / count for name, (value, count) in totals.items()}

    def _clip_gradients(self) -> None:
        if self.config.clip_value is not None:
            nn.utils.clip_grad_value_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                self.config.clip_value,
            )

    def _finite_values(self, terms: Mapping[str, Tensor], index: int) -> dict[str, float]:
        """The terms as floats; raises :class:`NonFiniteLossError` naming the first bad one."""
        names = list(terms)
        values = torch.stack([terms[name].detach().float().reshape(()) for name in names])  # (K,)
        finite = all_ranks_true(torch.isfinite(values), self.context)
        if not bool(finite.all()):
            bad = [name for name, ok in zip(names, finite.tolist(), strict=True) if not ok]
            term = next((name for name in bad if name != "loss"), bad[0])
            value = values[names.index(term)].item()
            where = "" if math.isfinite(value) else f" = {value}"
            raise NonFiniteLossError(
                f"training term '{term}'{where} is not finite at epoch {self.epoch}, "
                f"batch {index + 1} (after {self.step} optimizer steps); stopped before the "
                f"update, the checkpoints in '{self.out_dir}' are those of the last finished "
                "epoch. Lower train.lr, or check the data for NaN/inf values."
            )
        return dict(zip(names, values.tolist(), strict=True))

    def predict(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """:func:`predict` with the current weights."""
        return predict(self.model, dataset, self.context, collate_fn=self.collate_fn,
                       batch_size=self.config.eval_batch_size or self.config.batch_size,
                       num_workers=self.config.num_workers)

    def evaluate(self, dataset: Dataset) -> dict[str, float]:
        """``metrics`` of the current weights on ``dataset``."""
        return {name: float(value) for name, value in self.metrics(*self.predict(dataset)).items()}

    def test(self, dataset: Dataset) -> dict[str, float]:
        """Evaluate ``dataset`` once, with the best checkpoint (the test split)."""
        if self._tested:
            raise RuntimeError("Trainer.test: the test split is evaluated once per run")
        self.context.barrier()
        weights = load_checkpoint(self.files.best, map_location=self.device,
                                  keys=("model",))["model"]
        check_state_dict(self.model, weights, self.files.best)
        self.model.load_state_dict(weights)
        self._tested = True
        return self.evaluate(dataset)

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "rng": rng_state(),
            "seed": self.seed,
            "train_config": asdict(self.config),
            "meta": self.meta,
        }

    def _load_state(self, state: dict, path: Path) -> None:
        """Restore a :meth:`_state` read from ``path``, after checking that it belongs to
        this model and configuration (nothing is loaded if it does not)."""
        check_state_dict(self.model, state["model"], path)
        difference = first_difference(state.get("meta"), self.meta, shared_only=True)
        if difference:
            key, found, expected = difference
            raise CheckpointError(path, f"it was written for another configuration (meta "
                                  f"{key}: {found!r} instead of {expected!r})")
        epoch, history = state["epoch"], state["history"]
        counters = [epoch, state["step"], state["best_epoch"], state["bad_epochs"]]
        if not (all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counters)
                and epoch <= self.config.max_epochs and state["best_epoch"] <= epoch
                and isinstance(history, list) and len(history) == epoch
                and all(_is_record(record) for record in history)
                and (state["best_value"] is None or isinstance(state["best_value"], float))):
            raise CheckpointError(path, f"its training state is inconsistent or not of this "
                                  f"configuration (epoch {epoch!r} of at most "
                                  f"{self.config.max_epochs}, a history of one record of "
                                  "numbers per epoch)")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            set_rng_state(own_rng_state(state, self.context))
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as error:
            raise CheckpointError(path, "its optimizer, scheduler or random state does not fit "
                                  f"this run ({type(error).__name__}: {error})") from None
        self.epoch, self.step = epoch, state["step"]
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.history = list(history)

    def _write_log(self) -> None:
        """(Re)write ``log.jsonl`` from the history, atomically (a resumed run drops
        any line of an epoch whose checkpoint was never written)."""
        self.files.write_log(self.history)


def _is_record(record: object) -> bool:
    """Whether ``record`` is a log record: a dict of names to numbers, bools or None."""
    return isinstance(record, dict) and all(
        isinstance(key, str) and (value is None or isinstance(value, (bool, int, float)))
        for key, value in record.items())
