r"""The hand-written blocked attention with dropout, for training on CPU.

:func:`blocked_attention` is the one entry point; it is private to
:func:`~dhmd_graph.nn.transformer.masked_attention`, which calls it only in training
with dropout on the attention weights (otherwise PyTorch's fused
:func:`torch.nn.functional.scaled_dot_product_attention` runs, which offers no
dropout mask that matches :func:`~dhmd_graph.nn.transformer.inverted_dropout`).

Why a custom kernel: the weights of one block of queries at a time are materialised,
and the gradient is written out by hand (:class:`_BlockedAttention`) so that the
blocks accumulate into one gradient of the keys and values instead of one full-size
gradient per block, with every product in a steps-last layout. Measured on one thread
when it was introduced (commit 0ebe361, training samples/s against the same model
before the stacked encoders; autograd over the blocks in b5679ae, each against its own
baseline run): CMU-MOSI aligned 26.5 -> 42.6 (autograd: 23.2 -> 38.3), CMU-MOSEI
unaligned 0.70 -> 4.22 (autograd: 0.66 -> 2.83).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dhmd_graph.nn.dropout import dropout_keep

if TYPE_CHECKING:
    from dhmd_graph.nn.masking import AttentionBlock

__all__ = ["blocked_attention"]


def blocked_attention(query: Tensor, key: Tensor, value: Tensor, blocks: list[AttentionBlock],
                      dropout: float | Tensor) -> Tensor:
    r"""Masked scaled dot-product attention with dropout on the weights, one block of
    queries at a time (see :func:`~dhmd_graph.nn.transformer.masked_attention`, whose
    result this is in training; not differentiable twice).

    Args and shapes as :func:`~dhmd_graph.nn.transformer.masked_attention`, with
    :obj:`dropout` one rate or one per sequence ``(N,)``; query :math:`(N, H, T_q, D)`,
    key and value :math:`(N, H, T_k, D)`, output :math:`(N, H, T_q, D)`.
    """
    batch, heads, steps, channels = query.shape
    # Steps last, (N H, D, T): every product below then writes a wide, row-major result.
    query = (query * channels**-0.5).transpose(-1, -2).reshape(batch * heads, channels, steps)
    key = key.transpose(-1, -2).reshape(batch * heads, channels, -1)
    value = value.transpose(-1, -2).reshape(batch * heads, channels, -1)
    if isinstance(dropout, Tensor):  # (N,) -> (N H, 1, 1), one rate per row of weights
        dropout = dropout.to(query.dtype).repeat_interleave(heads).view(-1, 1, 1)
    out = _BlockedAttention.apply(query, key, value, blocks, dropout)
    return out.view(batch, heads, channels, steps).transpose(-1, -2)  # (N, H, T_q, D)


class _BlockedAttention(torch.autograd.Function):
    r"""The blocked attention of :func:`blocked_attention` on
    ``(N H, D, T)`` layouts (query already scaled), and its gradient: for a block with
    weights
    :math:`\mathbf{P}` (softmax), keep mask :math:`\mathbf{K}_{eep}` (0 or
    :math:`1/(1-p)`) and :math:`\mathbf{A} = \mathbf{P} \odot \mathbf{K}_{eep}`,

    .. math::
        \mathrm{d}\mathbf{V} \mathrel{+}= \mathbf{A}^{\top} \mathrm{d}\mathbf{O},\quad
        \mathrm{d}\mathbf{S} = \mathbf{P} \odot (\mathrm{d}\mathbf{P} - \textstyle\sum_k
        \mathrm{d}\mathbf{P} \odot \mathbf{P}),\ \mathrm{d}\mathbf{P} =
        (\mathrm{d}\mathbf{O} \mathbf{V}^{\top}) \odot \mathbf{K}_{eep},\quad
        \mathrm{d}\mathbf{Q} = \mathrm{d}\mathbf{S}\,\mathbf{K},\quad
        \mathrm{d}\mathbf{K} \mathrel{+}= \mathrm{d}\mathbf{S}^{\top} \mathbf{Q}.

    Since :math:`\mathbf{P} \odot \mathrm{d}\mathbf{P} = \mathbf{G} \odot \mathbf{A}` with
    :math:`\mathbf{G} = \mathrm{d}\mathbf{O} \mathbf{V}^{\top}`, the backward computes
    :math:`\mathrm{d}\mathbf{S} = \mathbf{G} \odot \mathbf{A} - \mathbf{P} \odot
    \sum_k \mathbf{G} \odot \mathbf{A}` from the saved :math:`\mathbf{P}` and
    :math:`\mathbf{A}` (no keep mask kept, two elementwise passes fewer per block).
    """

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, blocks: list[AttentionBlock],
                dropout: float | Tensor) -> Tensor:
        out, saved = [], []
        for block in blocks:
            scores = torch.bmm(query[:, :, block.start:block.stop].transpose(1, 2),
                               key[:, :, :block.keys])  # (N H, rows, keys)
            scores.view(block.bias.shape[0], -1, *scores.shape[1:]).add_(block.bias)
            probabilities = torch.softmax(scores, dim=-1)  # (N H, rows, keys)
            weights = probabilities * dropout_keep(probabilities, dropout)  # rate(s) (N H, 1, 1)
            out.append(torch.bmm(value[:, :, :block.keys], weights.transpose(1, 2)))  # (N H, D, rows)
            saved.append((probabilities, weights))
        ctx.blocks, ctx.probabilities = blocks, saved
        ctx.save_for_backward(query, key, value)
        return out[0] if len(out) == 1 else torch.cat(out, dim=2)  # (N H, D, T_q)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        query, key, value = ctx.saved_tensors
        grad_query = torch.empty_like(query)
        grad_key, grad_value = torch.zeros_like(key), torch.zeros_like(value)
        for block, (probabilities, weights) in zip(ctx.blocks, ctx.probabilities, strict=True):
            rows, keys = slice(block.start, block.stop), slice(0, block.keys)
            grad_block = grad_out[:, :, rows]  # (N H, D, rows)
            grad_value[:, :, keys] += torch.bmm(grad_block, weights)  # (N H, D, keys)
            # dO V^T times A: the gradient of the scores before the softmax's correction.
            grad_scores = torch.bmm(grad_block.transpose(1, 2), value[:, :, keys]).mul_(weights)
            row_sum = grad_scores.sum(dim=-1, keepdim=True)  # (N H, rows, 1)
            grad_scores.addcmul_(probabilities, row_sum, value=-1.0)  # (N H, rows, keys)
            grad_query[:, :, rows] = torch.bmm(key[:, :, keys], grad_scores.transpose(1, 2))
            grad_key[:, :, keys] += torch.bmm(query[:, :, rows], grad_scores)
        return grad_query, grad_key, grad_value, None, None

