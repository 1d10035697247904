r"""Dropout masks from cheap integer draws, shared by every dropout of the attention
encoders (:mod:`dhmd_graph.nn.transformer`, :mod:`dhmd_graph.nn._blocked_attention`)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KEEP_DRAW_BITS", "dropout_keep", "inverted_dropout"]

KEEP_DRAW_BITS = 15
"""Bits of each random draw of :func:`dropout_keep`: the drop rate is rounded to a
multiple of :math:`2^{-15}` (within :math:`1.6 \\cdot 10^{-5}` of the rate asked for)."""


def dropout_keep(x: Tensor, p: float | Tensor) -> Tensor:
    r"""The keep mask of dropout at rate ``p`` for ``x``: each element :math:`1 / (1 - p')`
    with probability :math:`1 - p'` and 0 otherwise, where :math:`p'` is ``p`` rounded to
    a multiple of :math:`2^{-15}` (:data:`KEEP_DRAW_BITS`), so the mask's mean is exactly 1.

    How it differs from :func:`torch.nn.functional.dropout`: the draws are 15-bit
    integers, four cut from each 64-bit random word, compared with an integer threshold.
    On CPU the generator is serial and each draw of a float (``rand_like``) or a
    Bernoulli sample costs about a random word; four masks per word make the masks about
    3x cheaper, and they were the largest cost of a training step after the attention
    products (``benchmarks/README.md``, speed). The rounding of the rate is below any
    precision a drop rate is chosen with.

    Args:
        x (Tensor): The tensor to drop from (its shape, dtype and device).
        p (float or Tensor): The drop rate in ``[0, 1)``, or rates that broadcast
            against ``x`` (e.g. ``(N, 1, 1)``, one per sequence).

    Returns:
        Tensor: The mask, ``x``'s shape and dtype.
    """
    scale = 2**KEEP_DRAW_BITS
    count = x.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device).random_()
    # Each word holds 63 random bits (random_ draws from [0, 2**63)); the low 15 bits of
    # each of its four 16-bit parts are independent uniform draws from [0, 2**15).
    draws = words.view(torch.int16)[:count].view(x.shape).bitwise_and_(scale - 1)
    threshold = p * scale
    threshold = threshold.round() if isinstance(threshold, Tensor) else round(threshold)
    return draws.ge_(threshold).to(x.dtype).mul_(scale / (scale - threshold))


def inverted_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    r"""Dropout: each element kept with probability :math:`1 - p` and scaled by
    :math:`1 / (1 - p)` (the mask of :func:`dropout_keep`, whose rate is rounded to a
    multiple of :math:`2^{-15}`).

    Shapes:
        - **input:** :math:`(*)`
        - **output:** :math:`(*)`
    """
    if not training or p == 0.0:
        return x
    return x * dropout_keep(x, p)
