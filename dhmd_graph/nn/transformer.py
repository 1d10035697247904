r"""Stacked projections and transformer blocks: the attention encoders of DHMD.

* :func:`~dhmd_graph.nn.dropout.inverted_dropout` (re-exported): dropout from 15-bit integer draws.
* :func:`masked_attention`: multi-head attention computed in blocks of query steps
  (:func:`~dhmd_graph.nn.masking.attention_blocks`), each block only over the keys it
  may see.
* :func:`position_encoding`, :func:`scale_and_position`: the sinusoidal position
  encodings (ours, or the fairseq table of the DMD reference; :data:`POSITIONAL_ENCODINGS`).
* :class:`StackedLinear`, :class:`StackedLayerNorm`: :math:`G` independent linear
  layers and LayerNorms in one batched computation.
* :class:`StackedTransformer`: :math:`G` independent pre-LayerNorm transformers (one per
  modality, or one per (target, source) pair of modalities) run as one batched
  computation over stacked weights. Self-attention (the homogeneous encoders and the
  heterogeneous memory encoders) or cross-modal attention (the reference's cross-modal
  transformer: queries from a target modality, keys and values from a source).

Why stacked and blocked: each member has its own weights, and one member at a time
means many small operations; stacking them gives few large ones (and fewer parameter
tensors for the optimiser). Long sequences (hundreds of steps) make the attention
weights ``(B, H, T_q, T_k)`` the dominant cost; computing them a block of queries at a
time keeps each block in cache and skips the keys that a causal block cannot see. Both
change only the order of the computation, not its result.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dhmd_graph.nn._blocked_attention import blocked_attention
from dhmd_graph.nn.dropout import inverted_dropout
from dhmd_graph.nn.masking import (
    CAUSAL_ALIGNMENTS,
    AttentionBlock,
    CausalAlignment,
    attention_blocks,
)

__all__ = [
    "CROSS_MODAL_NORMS",
    "PADDING_SLACK",
    "POSITIONAL_ENCODINGS",
    "CrossModalNorm",
    "PositionalEncoding",
    "StackedLayerNorm",
    "StackedLinear",
    "StackedTransformer",
    "StackedTransformerLayer",
    "inverted_dropout",
    "masked_attention",
    "position_encoding",
    "scale_and_position",
]

PositionalEncoding = Literal["interleaved", "fairseq"]
"""The sinusoidal tables of :func:`position_encoding`."""
POSITIONAL_ENCODINGS: tuple[str, ...] = typing.get_args(PositionalEncoding)

CrossModalNorm = Literal["separate", "shared"]
"""The LayerNorm of the key/value input of a cross-modal block: its own
(``"separate"``) or the query's (``"shared"``, :obj:`shared_norm=True` of
:class:`StackedTransformer`)."""
CROSS_MODAL_NORMS: tuple[str, ...] = typing.get_args(CrossModalNorm)

PADDING_SLACK = 0.25
"""Members of a :class:`StackedTransformer` run together (padded to the longest) when
each of their step counts is at least ``1 - PADDING_SLACK`` of the longest; others run
as separate groups, so unaligned lengths (e.g. 46 vs 500 steps) waste no work."""


def masked_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    blocks: list[AttentionBlock],
    dropout: float | Tensor = 0.0,
    training: bool = False,
) -> Tensor:
    r"""Scaled dot-product attention with masks and dropout on the attention weights,

    .. math::
        \mathrm{Attn}(\mathbf{Q}, \mathbf{K}, \mathbf{V}) = \mathrm{Dropout}\left(
        \operatorname{softmax}\left(\frac{\mathbf{Q}\mathbf{K}^{\top}}{\sqrt{D}}
        + \mathbf{M}\right)\right)\mathbf{V},

    computed one block of queries at a time
    (:func:`~dhmd_graph.nn.masking.attention_blocks`). Each query's softmax runs over
    its whole row of visible keys, so blocking gives the same result.

    Without dropout (evaluation, or :obj:`dropout=0`) each block goes, on a GPU, to
    :func:`torch.nn.functional.scaled_dot_product_attention`; on the CPU its weights are
    materialised (two batched products and a softmax), which at this library's sizes
    (a few heads of 5-10 channels, tens of steps) took half the time of that function's
    fused CPU kernel (1.1 against 0.54 ms for 6 x 10 heads of 46 steps and 5 channels, 2
    threads) and holds no more than one block's weights. With dropout, which that
    kernel does not offer,
    the weights of one block at a time are materialised, and the gradient is written
    out by hand so that the blocks accumulate into one gradient of the keys and values
    instead of one full-size gradient per block (not differentiable twice; the private
    kernel and its measurement are in :mod:`dhmd_graph.nn._blocked_attention`).

    Args:
        query (Tensor): Queries.
        key (Tensor): Keys.
        value (Tensor): Values.
        blocks (list[AttentionBlock]): The blocks and masks of
            :func:`~dhmd_graph.nn.masking.attention_blocks`.
        dropout (float or Tensor, optional): Dropout on the attention weights (as
            :func:`inverted_dropout`): one rate, or a rate per sequence ``(N,)`` (e.g.
            per source modality, as the DMD reference sets them). (default: :obj:`0.0`)
        training (bool, optional): Apply the dropout. (default: :obj:`False`)

    Shapes:
        - **input:** query :math:`(N, H, T_q, D)`, key and value :math:`(N, H, T_k, D)`
        - **output:** :math:`(N, H, T_q, D)`
    """
    if not training or (not isinstance(dropout, Tensor) and dropout == 0.0):
        if query.device.type == "cpu":
            out = [_materialised_attention(query[:, :, block.start:block.stop],
                                           key[:, :, :block.keys], value[:, :, :block.keys],
                                           block.bias.to(query.dtype))
                   for block in blocks]  # (N, H, rows, D)
        else:
            out = [F.scaled_dot_product_attention(
                query[:, :, block.start:block.stop], key[:, :, :block.keys],
                value[:, :, :block.keys], attn_mask=block.bias.to(query.dtype))
                for block in blocks]  # (N, H, rows, D)
        return out[0] if len(out) == 1 else torch.cat(out, dim=2)  # (N, H, T_q, D)
    return blocked_attention(query, key, value, blocks, dropout)  # (N, H, T_q, D)


def _materialised_attention(query: Tensor, key: Tensor, value: Tensor, bias: Tensor) -> Tensor:
    """``softmax(Q K^T / sqrt(D) + bias) V`` with the weights materialised: query
    ``(N, H, rows, D)``, key and value ``(N, H, keys, D)``, bias broadcast to
    ``(N, H, rows, keys)``; output ``(N, H, rows, D)``."""
    scores = torch.matmul(query * query.shape[-1] ** -0.5, key.transpose(-1, -2))
    return torch.matmul(torch.softmax(scores.add_(bias), dim=-1), value)


def position_encoding(x: Tensor, kind: PositionalEncoding = "interleaved") -> Tensor:
    r"""The sinusoidal position encoding of the steps of ``x``.

    ``"interleaved"`` (ours) encodes step :math:`t` as
    :math:`\mathrm{PE}_{t, 2k} = \sin(t \omega_k)`, :math:`\mathrm{PE}_{t, 2k+1} =
    \cos(t \omega_k)` with :math:`\omega_k = 10000^{-2k/C}`, whatever ``x`` holds.
    ``"fairseq"`` is the table of the DMD reference (fairseq's
    ``SinusoidalPositionalEmbedding``): with :math:`h = \lfloor C/2 \rfloor`,

    .. math::
        \mathrm{PE}_{p} = \left[\sin(p\,\omega'_k)\right]_{k<h} \Vert
        \left[\cos(p\,\omega'_k)\right]_{k<h} \,(\Vert\, 0 \text{ if } C
        \text{ is odd}), \qquad \omega'_k = 10000^{-k/(h-1)},

    at position :math:`p = t + 1`, except that a step whose first channel
    :math:`x_{t,0}` is exactly 0 counts as padding and gets position 0, whose row is
    all zeros.

    Args:
        x (Tensor): ``(*, T, C)``; with ``"fairseq"`` its first channel decides the
            padding steps (the reference reads the *unscaled* input).
        kind (str, optional): ``"interleaved"`` or ``"fairseq"``.
            (default: :obj:`"interleaved"`)

    Returns:
        Tensor: ``(T, C)`` (``"interleaved"``) or ``(*, T, C)`` (``"fairseq"``), in
        ``x``'s dtype and on its device.
    """
    steps, channels = x.shape[-2], x.shape[-1]
    if kind == "interleaved":
        position = torch.arange(steps, device=x.device, dtype=x.dtype).unsqueeze(1)  # (T, 1)
        frequency = torch.exp(
            torch.arange(0, channels, 2, device=x.device, dtype=x.dtype)
            * (-math.log(10000.0) / channels)
        )  # (ceil(C/2),)
        angle = position * frequency  # (T, ceil(C/2))
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)[:, :channels]  # (T, C)
    if kind != "fairseq":
        raise ValueError(f"position_encoding: kind must be one of {POSITIONAL_ENCODINGS}, "
                         f"found {kind!r}.")
    half = channels // 2
    if half < 2:
        raise ValueError(f"position_encoding: 'fairseq' needs at least 4 channels, found "
                         f"{channels}.")
    frequency = torch.exp(torch.arange(half, device=x.device, dtype=x.dtype)
                          * (-math.log(10000.0) / (half - 1)))  # (h,)
    angle = torch.arange(steps + 1, device=x.device, dtype=x.dtype).unsqueeze(1) * frequency
    table = torch.cat([angle.sin(), angle.cos(), angle.new_zeros(steps + 1, channels % 2)],
                      dim=1)  # (T + 1, C), row p = position p
    table[0] = 0.0
    steps_from_one = torch.arange(1, steps + 1, device=x.device)  # (T,)
    position = torch.where(x[..., 0] != 0, steps_from_one, 0)  # (*, T)
    return table[position]  # (*, T, C)


def scale_and_position(x: Tensor, encoding: PositionalEncoding = "interleaved") -> Tensor:
    r"""The transformer input :math:`\sqrt{C}\,\mathbf{x} + \mathrm{PE}`, with the
    sinusoidal :func:`position_encoding` ``encoding`` of the steps of ``x``
    ``(*, T, C)``."""
    return math.sqrt(x.shape[-1]) * x + position_encoding(x, encoding)


class StackedLinear(nn.Module):
    r""":math:`G` independent :class:`torch.nn.Linear` layers, one per member, applied
    to :math:`G` inputs in one batched product,
    :math:`\mathbf{y}_g = \mathbf{x}_g \mathbf{W}_g^{\top} + \mathbf{b}_g`.

    :obj:`weight[g]` and :obj:`bias[g]` have the shapes of a
    :class:`torch.nn.Linear`'s and the same initialisation.

    Args:
        members (int): Number of members :math:`G`.
        in_channels (int): Input width.
        out_channels (int): Output width.

    Shapes:
        - **input:** :math:`(G', *, C_{in})`, optional member indices :math:`(G')` long
          (default: all :math:`G` in order)
        - **output:** :math:`(G', *, C_{out})`
    """

    def __init__(self, members: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, out_channels, in_channels))
        self.bias = nn.Parameter(torch.empty(members, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight.shape[2])  # as torch.nn.Linear
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, members: Tensor | None = None,
                outputs: slice = slice(None)) -> Tensor:
        """``outputs`` selects a slice of the output channels (e.g. the query part of
        a joint query/key/value projection)."""
        weight, bias = self.weight[:, outputs], self.bias[:, outputs]
        if members is not None:
            weight, bias = weight[members], bias[members]
        out = torch.baddbmm(bias.unsqueeze(1), x.flatten(1, -2), weight.transpose(1, 2))
        return out.view(*x.shape[:-1], -1)  # (G', *, C_out)

    def __repr__(self) -> str:
        members, out_channels, in_channels = self.weight.shape
        return f"{type(self).__name__}({members}, {in_channels}, {out_channels})"


class StackedLayerNorm(nn.Module):
    r""":math:`G` independent :class:`torch.nn.LayerNorm` layers over the last
    dimension, one per member (elementwise affine, :math:`\epsilon = 10^{-5}`).

    Args:
        members (int): Number of members :math:`G`.
        channels (int): Normalised width :math:`C`.

    Shapes:
        - **input:** :math:`(G', *, C)`, optional member indices :math:`(G')` long
          (default: all :math:`G` in order)
        - **output:** :math:`(G', *, C)`
    """

    def __init__(self, members: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, channels))
        self.bias = nn.Parameter(torch.zeros(members, channels))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)  # (G', 1.., C)
        return torch.addcmul(bias.view(shape), F.layer_norm(x, x.shape[-1:]), weight.view(shape))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.weight.shape[0]}, {self.weight.shape[1]})"


class StackedTransformerLayer(nn.Module):
    r"""One pre-LayerNorm block of :class:`StackedTransformer`, for every member,

    .. math::
        \mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}(\mathrm{Attn}(
        \mathrm{LN}(\mathbf{X}), \mathbf{S}', \mathbf{S}')),\qquad
        \mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}(\mathbf{W}_2\,
        \mathrm{Dropout}(\mathrm{ReLU}(\mathbf{W}_1 \mathrm{LN}(\mathbf{X})))),

    with :math:`\mathbf{S}' = \mathrm{LN}_s(\mathbf{S})` for cross-modal attention
    (:math:`\mathbf{S}' = \mathrm{LN}(\mathbf{S})`, the query's LayerNorm, with
    :obj:`shared_norm`) and :math:`\mathbf{S}' = \mathrm{LN}(\mathbf{X})` for
    self-attention: the layer of :class:`torch.nn.TransformerEncoderLayer` with
    :obj:`norm_first=True`, its :class:`torch.nn.MultiheadAttention` (joint
    query/key/value projection) and separate attention dropout (its rate given to
    :meth:`forward`). Args as in :class:`StackedTransformer`.
    """

    def __init__(
        self,
        members: int,
        channels: int,
        num_heads: int,
        *,
        cross: bool,
        dropout: float,
        feedforward_ratio: int,
        shared_norm: bool = False,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_heads = num_heads
        self.cross = cross
        self.dropout = dropout
        self.norm_attention = StackedLayerNorm(members, channels)
        self.norm_source = StackedLayerNorm(members, channels) if cross and not shared_norm else None
        self.in_projection = StackedLinear(members, channels, 3 * channels)
        self.out_projection = StackedLinear(members, channels, channels)
        self.norm_feedforward = StackedLayerNorm(members, channels)
        self.feedforward_in = StackedLinear(members, channels, feedforward_ratio * channels)
        self.feedforward_out = StackedLinear(members, feedforward_ratio * channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.children():
            module.reset_parameters()
        # As torch.nn.MultiheadAttention: Xavier-uniform joint projection, zero biases.
        for weight in self.in_projection.weight:
            nn.init.xavier_uniform_(weight)
        nn.init.zeros_(self.in_projection.bias)
        nn.init.zeros_(self.out_projection.bias)

    def _heads(self, x: Tensor) -> Tensor:
        """``(G', B, T, C)`` → ``(G' B, H, T, C / H)``."""
        groups, batch, steps, _ = x.shape
        return x.reshape(groups * batch, steps, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: Tensor, source: Tensor | None, blocks: list[AttentionBlock],
                members: Tensor | None = None, attention_dropout: float | Tensor = 0.0) -> Tensor:
        """``attention_dropout``: one rate, or one per sequence ``(G' B,)``."""
        channels = self.channels
        h = self.norm_attention(x, members)  # (G', B, T, C)
        if not self.cross:
            query, key, value = self.in_projection(h, members).chunk(3, dim=-1)
        else:
            norm = self.norm_attention if self.norm_source is None else self.norm_source
            source = norm(source, members)  # (G', B, S, C)
            query = self.in_projection(h, members, slice(0, channels))  # (G', B, T, C)
            key, value = self.in_projection(
                source, members, slice(channels, None)).chunk(2, dim=-1)  # (G', B, S, C)
        attended = masked_attention(self._heads(query), self._heads(key), self._heads(value),
                                    blocks, attention_dropout, self.training)
        attended = attended.transpose(1, 2).reshape(x.shape)  # (G', B, T, C)
        x = x + inverted_dropout(self.out_projection(attended, members), self.dropout,
                                 self.training)
        # Out of place: relu_() on this view of the product made autograd copy and
        # zero-fill the whole hidden activation in every backward.
        h = self.feedforward_in(self.norm_feedforward(x, members), members).relu()
        h = self.feedforward_out(inverted_dropout(h, self.dropout, self.training), members)
        return x + inverted_dropout(h, self.dropout, self.training)  # (G', B, T, C)


class StackedTransformer(nn.Module):
    r""":math:`G` independent pre-LayerNorm transformers with length masks, one per
    member (a modality, or an ordered (target, source) pair of modalities), run as
    one batched computation over stacked weights.

    For member :math:`g` with input :math:`\mathbf{X}_g` (and source
    :math:`\mathbf{S}_g` when :obj:`cross`):

    .. math::
        \mathbf{X}^{(0)} = \mathrm{Dropout}(\sqrt{C}\,\mathbf{X}_g + \mathrm{PE}),\qquad
        \mathbf{X}^{(l)} = \mathrm{Layer}_{g,l}(\mathbf{X}^{(l-1)}),\qquad
        \mathrm{out}_g = \mathrm{LN}_g(\mathbf{X}^{(L)}),

    each layer a :class:`StackedTransformerLayer`, PE the :func:`position_encoding`
    :obj:`positional_encoding`. With :obj:`cross=False` a layer is
    self-attention (the homogeneous encoders, the heterogeneous memory encoders); with
    :obj:`cross=True` the queries attend to the source :math:`\mathrm{Dropout}(\sqrt{C}
    \,\mathbf{S}_g + \mathrm{PE})` (the cross-modal transformer of MulT/DMD). Every
    member computes exactly what its own transformer would alone. Members whose
    sequences have similar lengths (:data:`PADDING_SLACK`) are padded to a common
    length and run together; the masks use the true lengths, so padding changes
    nothing.

    Args:
        members (int): Number of members :math:`G`.
        channels (int): Width :math:`C` (of inputs and sources).
        num_heads (int): Attention heads (must divide :obj:`channels`).
        num_layers (int): Number of layers.
        cross (bool, optional): Cross-modal attention to a source instead of
            self-attention. (default: :obj:`False`)
        dropout (float, optional): Residual and feed-forward dropout.
            (default: :obj:`0.1`)
        attention_dropout (float or list[float], optional): Dropout on attention
            weights: one rate, or one per member (the DMD reference's rate of each
            source modality). (default: :obj:`0.1`)
        embed_dropout (float, optional): Dropout on the scaled, position-encoded
            inputs (and sources). (default: :obj:`0.0`)
        feedforward_ratio (int, optional): Feed-forward width over :obj:`channels`.
            (default: :obj:`4`)
        causal (bool, optional): Causal masking (see :func:`~dhmd_graph.nn.masking.attention_mask`).
            (default: :obj:`True`)
        causal_alignment (str, optional): ``"relative"`` or ``"shifted"`` (the DMD
            reference), see :func:`~dhmd_graph.nn.masking.attention_mask`. (default: :obj:`"relative"`)
        positional_encoding (str, optional): ``"interleaved"`` or ``"fairseq"`` (the DMD
            reference), see :func:`position_encoding`. (default: :obj:`"interleaved"`)
        shared_norm (bool, optional): With :obj:`cross`, normalise the source with the
            query's LayerNorm (the DMD reference) instead of its own.
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`G` inputs :math:`(B, T_g, C)` and their lengths :math:`(B)`;
          with :obj:`cross`, :math:`G` sources :math:`(B, S_g, C)` and their lengths
          :math:`(B)` (all lengths >= 1)
        - **output:** :math:`G` sequences :math:`(B, T_g, C)` (padded steps hold finite
          garbage)
    """

    def __init__(
        self,
        members: int,
        channels: int,
        num_heads: int,
        num_layers: int,
        *,
        cross: bool = False,
        dropout: float = 0.1,
        attention_dropout: float | Sequence[float] = 0.1,
        embed_dropout: float = 0.0,
        feedforward_ratio: int = 4,
        causal: bool = True,
        causal_alignment: CausalAlignment = "relative",
        positional_encoding: PositionalEncoding = "interleaved",
        shared_norm: bool = False,
    ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"StackedTransformer: num_heads={num_heads} must divide "
                             f"channels={channels}.")
        rates = ([float(attention_dropout)] * members if isinstance(attention_dropout, (int, float))
                 else [float(rate) for rate in attention_dropout])
        if len(rates) != members:
            raise ValueError(f"StackedTransformer: expected one attention_dropout or one per "
                             f"member ({members}), found {len(rates)}.")
        if causal_alignment not in CAUSAL_ALIGNMENTS:
            raise ValueError(f"StackedTransformer: causal_alignment must be one of "
                             f"{CAUSAL_ALIGNMENTS}, found {causal_alignment!r}.")
        if positional_encoding not in POSITIONAL_ENCODINGS:
            raise ValueError(f"StackedTransformer: positional_encoding must be one of "
                             f"{POSITIONAL_ENCODINGS}, found {positional_encoding!r}.")
        self.members = members
        self.channels = channels
        self.num_heads = num_heads
        self.cross = cross
        self.causal = causal
        self.causal_alignment = causal_alignment
        self.positional_encoding = positional_encoding
        self.attention_dropout = rates
        self.embed_dropout = embed_dropout
        self.layers = nn.ModuleList(
            StackedTransformerLayer(members, channels, num_heads, cross=cross, dropout=dropout,
                                    feedforward_ratio=feedforward_ratio, shared_norm=shared_norm)
            for _ in range(num_layers)
        )
        self.norm = StackedLayerNorm(members, channels)

    def forward(
        self,
        inputs: list[Tensor],
        lengths: list[Tensor],
        sources: list[Tensor] | None = None,
        source_lengths: list[Tensor] | None = None,
    ) -> list[Tensor]:
        if len(inputs) != self.members or (sources is None) == self.cross:
            raise ValueError(f"{type(self).__name__}: expected {self.members} inputs"
                             f"{' and sources' if self.cross else ' and no sources'}, found "
                             f"{len(inputs)} inputs and {0 if sources is None else len(sources)} "
                             "sources.")
        keys, key_lengths = (sources, source_lengths) if self.cross else (inputs, lengths)
        steps = [(x.shape[1], k.shape[1]) for x, k in zip(inputs, keys, strict=True)]
        outputs: dict[int, Tensor] = {}
        for group in _length_groups(steps):
            members = (None if len(group) == self.members
                       else torch.tensor(group, device=inputs[0].device))
            x = self._embed(_stack_padded([inputs[g] for g in group]))  # (G', B, T, C)
            source = (self._embed(_stack_padded([keys[g] for g in group]))  # (G', B, S, C)
                      if self.cross else None)
            rates = self._attention_dropout(group, x.shape[1], x.device)
            blocks = attention_blocks(
                torch.cat([lengths[g] for g in group]),  # (G' B,)
                torch.cat([key_lengths[g] for g in group]),  # (G' B,)
                x.shape[2], max(steps[g][1] for g in group), self.num_heads, self.causal,
                whole=not self.training or (not isinstance(rates, Tensor) and rates == 0.0),
                alignment=self.causal_alignment)
            for layer in self.layers:
                x = layer(x, source, blocks, members, rates)
            x = self.norm(x, members)  # (G', B, T, C)
            for i, g in enumerate(group):
                outputs[g] = x[i, :, : inputs[g].shape[1]]  # (B, T_g, C)
        return [outputs[g] for g in range(self.members)]

    def _embed(self, x: Tensor) -> Tensor:
        return inverted_dropout(scale_and_position(x, self.positional_encoding),
                                self.embed_dropout, self.training)

    def _attention_dropout(self, group: list[int], batch_size: int,
                           device: torch.device) -> float | Tensor:
        """The attention-dropout rate of a group: one number where its members share
        it (the fast path), else ``(G' B,)``, one rate per sequence."""
        rates = [self.attention_dropout[g] for g in group]
        if len(set(rates)) == 1:
            return rates[0]
        return torch.tensor(rates, device=device).repeat_interleave(batch_size)  # (G' B,)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.members}, {self.channels}, "
                f"heads={self.num_heads}, layers={len(self.layers)}, cross={self.cross}, "
                f"causal={self.causal})")


def _length_groups(steps: list[tuple[int, ...]]) -> list[list[int]]:
    """Groups member indices, longest first, so that every member's step counts are
    at least ``1 - PADDING_SLACK`` of its group's first member's."""
    groups: list[list[int]] = []
    for index in sorted(range(len(steps)), key=lambda i: steps[i], reverse=True):
        for group in groups:
            longest = steps[group[0]]
            if all(s >= (1 - PADDING_SLACK) * t for s, t in zip(steps[index], longest, strict=True)):
                group.append(index)
                break
        else:
            groups.append([index])
    return [sorted(group) for group in groups]


def _stack_padded(sequences: list[Tensor]) -> Tensor:
    """Stacks ``(B, T_g, C)`` sequences into ``(G, B, max T_g, C)``, zero-padded."""
    steps = max(x.shape[1] for x in sequences)
    return torch.stack([F.pad(x, (0, 0, 0, steps - x.shape[1])) for x in sequences])
