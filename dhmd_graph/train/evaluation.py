"""Evaluation mode for a block of code: the one place that switches a model to it.

Every evaluation loop of the package (the trainer's :func:`~dhmd_graph.train.predict`,
the modality-subset and output collectors of :mod:`dhmd_graph.inspect`) runs inside
:func:`evaluating`, so none of them leaves a model in the wrong mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

__all__ = ["evaluating"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@contextmanager
def evaluating(model: ModuleT) -> Iterator[ModuleT]:
    """Runs the block with ``model`` in evaluation mode and without gradients, then
    puts back the mode it had (training or not), also when the block raises.

    Example:
        >>> with evaluating(model):
        ...     prediction = model(batch)

    Args:
        model (nn.Module): The model; its :attr:`~torch.nn.Module.training` flag is
            restored for it and all its submodules, as :meth:`~torch.nn.Module.train`
            sets it.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
