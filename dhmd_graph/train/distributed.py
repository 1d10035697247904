"""Data-parallel training with :mod:`torch.distributed`, launched by ``torchrun``.

The same command runs with and without ``torchrun``: :func:`setup_distributed` reads
the ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` variables ``torchrun`` sets and, when
there is more than one process, joins the process group (``nccl`` on GPUs, ``gloo``
on CPU). Without them it returns a single-process context and nothing else changes.

:class:`~torch.nn.parallel.DistributedDataParallel` synchronises gradients through
hooks that its own ``forward`` arms, so a model's ``training_step`` must run *inside*
that forward: :class:`TrainingStep` is a thin module whose ``forward`` is the
wrapped model's ``training_step``, and it is this module that DDP wraps.

**A frozen or dead rank.** The process group is joined with a timeout
(:data:`PROCESS_GROUP_TIMEOUT`, or ``DHMD_PROCESS_GROUP_TIMEOUT`` seconds): a collective
that a rank does not join within it fails on the others instead of waiting for ever, and
:func:`peer_timeout` turns that failure (or a peer's closed connection, when a rank is
killed) into one :class:`PeerTimeoutError` naming the rank and the timeout; ``torchrun``
then stops the remaining processes. The checkpoints of the last finished epoch stay, and
``--resume`` continues from them.

**Random state.** Every rank's random state is saved in the checkpoint (``rng_ranks``,
gathered with :func:`gather_objects`) and each rank restores its own
(:func:`own_rng_state`), so a resumed distributed run repeats the uninterrupted one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dhmd_graph.errors import ConfigError

__all__ = [
    "PROCESS_GROUP_TIMEOUT",
    "DistributedContext",
    "PeerTimeoutError",
    "TrainingStep",
    "all_gather_rows",
    "all_ranks_true",
    "gather_objects",
    "own_rng_state",
    "peer_timeout",
    "resolve_device",
    "setup_distributed",
    "teardown_distributed",
    "wrap_for_training",
]


PROCESS_GROUP_TIMEOUT = 300.0
"""Seconds a rank waits in a collective for the others before the run stops (the
environment variable ``DHMD_PROCESS_GROUP_TIMEOUT`` overrides it)."""
_PEER_FAILURE = re.compile(r"timed? ?out|timeout|connection (closed|reset)|broken pipe|peer",
                           re.IGNORECASE)


class PeerTimeoutError(TimeoutError):
    """Another process of a distributed run stopped answering (frozen, killed, or its
    machine gone)."""


def process_group_timeout() -> float:
    """:data:`PROCESS_GROUP_TIMEOUT`, or ``DHMD_PROCESS_GROUP_TIMEOUT`` when set.

    Raises:
        ValueError: The variable is not a positive number of seconds.
    """
    text = os.environ.get("DHMD_PROCESS_GROUP_TIMEOUT")
    if text is None:
        return PROCESS_GROUP_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"DHMD_PROCESS_GROUP_TIMEOUT: expected a positive number of seconds, "
                          f"found {text!r}. Unset it for {PROCESS_GROUP_TIMEOUT:g} s")
    return seconds


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits among the processes of one run.

    Attributes:
        rank (int): This process's index, ``0 <= rank < world_size``.
        world_size (int): The number of processes.
        device (torch.device): The device this process computes on.
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes logs, checkpoints and results (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (a no-op for a single process)."""
        if self.is_distributed:
            dist.barrier()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The :class:`torch.device` of a device setting, checked against this machine.

    Args:
        name (str): ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``
            (the GPU of ``local_rank``) or ``"cuda:N"``, or another :class:`torch.device`
            string.
        local_rank (int, optional): This process's index on its machine.
            (default: ``0``)

    Raises:
        ValueError: If ``name`` is no device, or names a GPU this machine lacks.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', found {name!r}. "
                          "Set it with --device or --set train.device=...") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device: expected 'cpu' or a GPU of this machine (CUDA is not "
                              f"available here), found {name!r}. Use 'auto' or 'cpu' (--device, "
                              "or --set train.device=...).")
        if device.index is None:  # one GPU per local process
            device = torch.device("cuda", local_rank % count)
        elif device.index >= count:
            raise ConfigError(f"device: expected 'cpu' or a GPU of this machine (it has {count} "
                              f"CUDA device(s): cuda:0..cuda:{count - 1}), found {name!r}. "
                              "Pick an existing GPU, 'auto' or 'cpu'.")
    return device


def setup_distributed(device: str = "auto") -> DistributedContext:
    """Join the ``torchrun`` process group if there is one, and pick the device.

    Args:
        device (str, optional): ``"auto"`` (CUDA when available, else the CPU) or a
            :class:`torch.device` string; ``"cuda"`` without an index means the GPU of
            this process's ``LOCAL_RANK``. (default: ``"auto"``)

    Raises:
        ValueError: If ``device`` is not a device of this machine (see
            :func:`resolve_device`).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    torch_device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    if world_size > 1 and not dist.is_initialized():
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=process_group_timeout()))
    return DistributedContext(rank=rank, world_size=world_size, device=torch_device)


@contextmanager
def peer_timeout(context: DistributedContext) -> Iterator[None]:
    """Turn the failure of a collective because another rank stopped answering (the
    process group's timeout, a closed connection) into one :class:`PeerTimeoutError`.

    Other errors, and every error of a single process, pass unchanged.
    """
    try:
        yield
    except RuntimeError as error:
        if not (context.is_distributed and _PEER_FAILURE.search(str(error))):
            raise
        first = str(error).strip().splitlines()[0][:200]
        raise PeerTimeoutError(
            f"rank {context.rank} of {context.world_size}: another process of the run stopped "
            f"answering within {process_group_timeout():g} s (frozen, killed or its machine "
            f"gone; {first}). The checkpoints of the last finished epoch are kept: resume "
            "with --resume (DHMD_PROCESS_GROUP_TIMEOUT sets the wait)") from None


def own_rng_state(state: dict, context: DistributedContext) -> dict:
    """The random state this rank restores from a checkpoint: its own when the checkpoint
    holds every rank's (``rng_ranks``, one per rank of this world size), else ``rng``."""
    ranks = state.get("rng_ranks")
    if context.is_distributed and isinstance(ranks, list) and len(ranks) == context.world_size:
        return ranks[context.rank]
    return state["rng"]


def teardown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


class TrainingStep(nn.Module):
    """A module whose ``forward`` is ``model.training_step``, for DDP to wrap.

    Args:
        model (nn.Module): A model with a ``training_step(batch) -> dict`` method.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch) -> dict[str, Tensor]:
        return self.model.training_step(batch)


def wrap_for_training(model: nn.Module, context: DistributedContext) -> nn.Module:
    """``TrainingStep(model)``, wrapped in DDP when ``context`` is distributed."""
    step = TrainingStep(model)
    if not context.is_distributed:
        return step
    device_ids = [context.device] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=device_ids)


def all_gather_rows(tensor: Tensor, context: DistributedContext) -> Tensor:
    """Concatenate every process's ``tensor`` along dim 0, in rank order.

    The processes may hold different numbers of rows: each pads its tensor to the
    longest, all-gathers, and the padding is cut off again.

    Args:
        tensor (Tensor): ``(n_rank, *)``, the same trailing shape and dtype everywhere.
        context (DistributedContext): The run's processes.

    Shapes:
        - **output:** ``(sum of n_rank, *)``
    """
    if not context.is_distributed:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(context.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in range(context.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([rows[: int(s.item())] for rows, s in zip(gathered, sizes, strict=True)])


def all_ranks_true(flags: Tensor, context: DistributedContext) -> Tensor:
    """Element-wise AND of a bool tensor over the processes (itself for one process)."""
    if not context.is_distributed:
        return flags
    flags = flags.to(torch.int32)
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    return flags.bool()


def gather_objects(obj: object, context: DistributedContext) -> list:
    """Every process's picklable ``obj``, in rank order (``[obj]`` for one process)."""
    if not context.is_distributed:
        return [obj]
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
