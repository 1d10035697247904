r"""Length masks, masked pooling and attention masks.

All sequences are laid out ``(B, T, C)`` (batch first) and carry their true lengths
``(B,)``; every mask is built from those lengths, never from zero frames. Padded
steps produce finite garbage that every pooling and loss ignores; valid steps never
depend on padded ones, so padding a batch further changes nothing.

* :func:`length_mask`, :func:`masked_mean`, :class:`MaskedPooling`: pooling over
  valid steps (mean, learned attention, or the last valid step; :data:`POOLINGS`).
* :func:`attention_mask`: key padding plus an optional causal mask (in relative time,
  or shifted as in the DMD reference; :data:`CAUSAL_ALIGNMENTS`), both defined by the
  true lengths.
* :func:`attention_blocks`: the queries split into blocks, each with the mask of the
  keys it may see (consumed by :func:`~dhmd_graph.nn.transformer.masked_attention`).
"""

from __future__ import annotations

import typing
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "BLOCK_ELEMENTS",
    "CAUSAL_ALIGNMENTS",
    "POOLINGS",
    "AttentionBlock",
    "CausalAlignment",
    "MaskedPooling",
    "Pooling",
    "attention_blocks",
    "attention_mask",
    "length_mask",
    "masked_mean",
]

Pooling = Literal["mean", "attention", "last"]
"""How :class:`MaskedPooling` reads one vector from a sequence."""
POOLINGS: tuple[str, ...] = typing.get_args(Pooling)

CausalAlignment = Literal["relative", "shifted"]
"""How :func:`attention_mask` lines up queries and keys of different lengths."""
CAUSAL_ALIGNMENTS: tuple[str, ...] = typing.get_args(CausalAlignment)

BLOCK_ELEMENTS = 2**19
"""Attention weights per block of :func:`attention_blocks` (2 MiB in float32). Smaller
blocks stay in cache and skip more causally masked keys, but each costs a few more
operations; on CPU training steps were fastest around this size (measured
2**18 .. 2**22 at the MOSEI sizes, aligned and unaligned)."""


def length_mask(lengths: Tensor, steps: int) -> Tensor:
    """``(B, steps)`` bool, :obj:`True` at the valid steps ``t < lengths[b]``."""
    positions = torch.arange(steps, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` ``(B, T, C)`` over the valid steps of ``mask`` ``(B, T)`` → ``(B, C)``.

    Rows without a valid step give zeros.
    """
    weight = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    return (x * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)  # (B, C)


class MaskedPooling(nn.Module):
    r"""Pools a sequence over its valid steps.

    ``"mean"`` is the length-masked mean; ``"attention"`` learns a score per step,

    .. math::
        \alpha_t = \operatorname{softmax}_{t < L}(\mathbf{w}^{\top} \mathbf{x}_t),
        \qquad \mathbf{p} = \sum_{t < L} \alpha_t \mathbf{x}_t;

    ``"last"`` reads the last valid step :math:`\mathbf{x}_{L-1}` (the DMD reference
    reads ``h[-1]``, the last padded step: the same where every step is valid).

    Args:
        channels (int): Feature width :math:`C`.
        mode (str, optional): ``"mean"``, ``"attention"`` or ``"last"``.
            (default: :obj:`"mean"`)

    Shapes:
        - **input:** sequence :math:`(B, T, C)`, valid-step mask :math:`(B, T)` bool
          (at least one valid step per row)
        - **output:** :math:`(B, C)`
    """

    def __init__(self, channels: int, mode: Pooling = "mean") -> None:
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"MaskedPooling: mode must be one of {POOLINGS}, found {mode!r}.")
        self.channels = channels
        self.mode = mode
        self.score = nn.Linear(channels, 1, bias=False) if mode == "attention" else None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.mode == "last":
            last = mask.sum(dim=1).clamp_min(1) - 1  # (B,)
            return x[torch.arange(x.shape[0], device=x.device), last]  # (B, C)
        if self.score is None:
            return masked_mean(x, mask)
        score = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
        alpha = torch.softmax(score, dim=1)  # (B, T)
        return torch.einsum("bt,btc->bc", alpha, x)  # (B, C)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels}, mode={self.mode!r})"


def attention_mask(
    query_lengths: Tensor,
    key_lengths: Tensor,
    query_steps: int,
    key_steps: int,
    causal: bool,
    query_offset: int = 0,
    alignment: CausalAlignment = "relative",
) -> Tensor:
    r"""The boolean attention mask, :obj:`True` where a query may **not** attend.

    Key ``j`` is visible to query ``i`` iff ``j < L_k`` and, when :obj:`causal`,
    :math:`j \cdot L_q \le i \cdot L_k` (``alignment="relative"``): the key does not
    lie later in *relative* time than the query; or :math:`j \le i + |L_k - L_q|`
    (``alignment="shifted"``, the DMD reference's ``buffered_future_mask``, whose
    lengths are the padded ones). For equal lengths both are ``j <= i``. Both
    conditions use the true lengths only, so the mask of valid steps does not depend
    on padding, and key 0 is always visible, so no row is fully masked (no NaN).

    Args:
        query_lengths (Tensor): ``(*)`` true query lengths :math:`L_q` (>= 1).
        key_lengths (Tensor): ``(*)`` true key lengths :math:`L_k` (>= 1).
        query_steps (int): Number of query steps :math:`T_q` of the mask.
        key_steps (int): Number of key steps :math:`T_k` of the mask.
        causal (bool): Add the causal condition.
        query_offset (int, optional): Step of the first query (for a block of
            queries). (default: :obj:`0`)
        alignment (str, optional): ``"relative"`` or ``"shifted"`` (see above).
            (default: :obj:`"relative"`)

    Returns:
        Tensor: ``(*, T_q, T_k)`` bool.
    """
    if alignment not in CAUSAL_ALIGNMENTS:
        raise ValueError(f"attention_mask: alignment must be one of {CAUSAL_ALIGNMENTS}, "
                         f"found {alignment!r}.")
    device = key_lengths.device
    key = torch.arange(key_steps, device=device)  # (T_k,)
    blocked = key >= key_lengths.unsqueeze(-1)  # (*, T_k)
    blocked = blocked.unsqueeze(-2).expand(*blocked.shape[:-1], query_steps, key_steps)
    if causal:
        query = torch.arange(query_offset, query_offset + query_steps, device=device)
        if alignment == "relative":
            later = (key * query_lengths[..., None, None]
                     > query.unsqueeze(-1) * key_lengths[..., None, None])  # (*, T_q, T_k)
        else:
            shift = (key_lengths - query_lengths).abs()[..., None, None]  # (*, 1, 1)
            later = key > query.unsqueeze(-1) + shift  # (*, T_q, T_k)
        blocked = blocked | later
    return blocked  # (*, T_q, T_k)


class AttentionBlock(NamedTuple):
    r"""A block of query steps and the keys it attends to (see :func:`attention_blocks`).

    Attributes:
        start (int): First query step.
        stop (int): One past the last query step.
        keys (int): The block attends to keys ``0 .. keys - 1`` (the later keys are
            masked for every query of the block).
        bias (Tensor): ``(N, 1, stop - start, keys)`` additive mask, :math:`0` where
            a query may attend and :math:`-\infty` where not (broadcast over heads).
    """

    start: int
    stop: int
    keys: int
    bias: Tensor


def attention_blocks(
    query_lengths: Tensor,
    key_lengths: Tensor,
    query_steps: int,
    key_steps: int,
    num_heads: int,
    causal: bool,
    whole: bool = False,
    alignment: CausalAlignment = "relative",
) -> list[AttentionBlock]:
    r"""Splits the queries into blocks of about :data:`BLOCK_ELEMENTS` attention
    weights each and builds each block's mask (:func:`attention_mask`). With
    :obj:`causal`, a block only covers the keys its last query may see.

    Built once per forward pass and shared by every layer. Reads the block extents
    to the host once (one synchronisation per call on an accelerator).

    Args:
        query_lengths (Tensor): ``(N,)`` true query lengths (>= 1).
        key_lengths (Tensor): ``(N,)`` true key lengths (>= 1).
        query_steps (int): Padded query length :math:`T_q`.
        key_steps (int): Padded key length :math:`T_k`.
        num_heads (int): Attention heads :math:`H`.
        causal (bool): Causal masking in relative time.
        whole (bool, optional): One block of all queries (for attention without
            dropout, which
            :func:`~dhmd_graph.nn.transformer.masked_attention` leaves to PyTorch's fused kernel).
            (default: :obj:`False`)
        alignment (str, optional): The causal alignment of :func:`attention_mask`.
            (default: :obj:`"relative"`)

    Returns:
        list[AttentionBlock]: Consecutive blocks covering ``0 .. T_q - 1``.
    """
    rows = max(1, BLOCK_ELEMENTS // (query_lengths.numel() * num_heads * key_steps))
    if whole:
        rows = query_steps
    starts = list(range(0, query_steps, rows))
    stops = [min(start + rows, query_steps) for start in starts]
    keys = [key_steps] * len(starts)
    if causal and len(starts) > 1:
        last = torch.tensor(stops, device=key_lengths.device) - 1  # (K,) last query of a block
        if alignment == "relative":
            reach = (last.unsqueeze(1) * key_lengths).div(query_lengths, rounding_mode="floor")
        else:
            reach = last.unsqueeze(1) + (key_lengths - query_lengths).abs()  # (K, N)
        keys = (reach.amax(dim=1) + 1).clamp(max=key_steps).tolist()  # (K,) on the host
    blocks = []
    for start, stop, extent in zip(starts, stops, keys, strict=True):
        blocked = attention_mask(query_lengths, key_lengths, stop - start, extent, causal, start,
                                 alignment)
        bias = torch.zeros(blocked.shape, device=blocked.device).masked_fill_(blocked, float("-inf"))
        blocks.append(AttentionBlock(start, stop, extent, bias.unsqueeze(1)))  # (N, 1, rows, keys)
    return blocks
