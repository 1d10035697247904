r"""Length masks, masked pooling and the attention encoders of DHMD.

All sequences are laid out ``(B, T, C)`` (batch first) and carry their true lengths
``(B,)``; every mask is built from those lengths, never from zero frames. Padded
steps produce finite garbage that every pooling and loss ignores; valid steps never
depend on padded ones, so padding a batch further changes nothing.

* :func:`length_mask`, :func:`masked_mean`, :class:`MaskedPooling`: pooling over
  valid steps (mean or learned attention).
* :func:`attention_mask`: key padding plus an optional causal mask, both defined by
  the true lengths.
* :class:`SelfAttentionEncoder`: a pre-LayerNorm :class:`torch.nn.TransformerEncoder`
  (used over the homogeneous features and as the heterogeneous memory encoder).
* :class:`CrossModalTransformer`: queries from a target modality, keys and values from
  a source modality (the reference's cross-modal transformer), pre-LayerNorm.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "CrossModalTransformer",
    "MaskedPooling",
    "SelfAttentionEncoder",
    "attention_mask",
    "length_mask",
    "masked_mean",
    "scale_and_position",
]


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
        \qquad \mathbf{p} = \sum_{t < L} \alpha_t \mathbf{x}_t.

    Args:
        channels (int): Feature width :math:`C`.
        mode (str, optional): ``"mean"`` or ``"attention"``. (default: :obj:`"mean"`)

    Shapes:
        - **input:** sequence :math:`(B, T, C)`, valid-step mask :math:`(B, T)` bool
          (at least one valid step per row)
        - **output:** :math:`(B, C)`
    """

    def __init__(self, channels: int, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "attention"):
            raise ValueError(f"MaskedPooling: mode must be 'mean' or 'attention', found {mode!r}.")
        self.channels = channels
        self.mode = mode
        self.score = nn.Linear(channels, 1, bias=False) if mode == "attention" else None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
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
    num_heads: int,
    causal: bool,
) -> Tensor:
    r"""The boolean attention mask of :class:`torch.nn.MultiheadAttention`
    (:obj:`True` = may **not** attend), one per sample and head.

    Key ``j`` is visible to query ``i`` iff ``j < L_k`` and, when :obj:`causal`,
    :math:`j \cdot L_q \le i \cdot L_k`: the key does not lie later in *relative*
    time than the query (for equal lengths simply ``j <= i``). Both conditions use
    the true lengths only, so the mask of valid steps does not depend on padding,
    and key 0 is always visible, so no row is fully masked (no NaN).

    Args:
        query_lengths (Tensor): ``(B,)`` true query lengths :math:`L_q` (>= 1).
        key_lengths (Tensor): ``(B,)`` true key lengths :math:`L_k` (>= 1).
        query_steps (int): Padded query length :math:`T_q`.
        key_steps (int): Padded key length :math:`T_k`.
        num_heads (int): Attention heads :math:`H`.
        causal (bool): Add the causal condition.

    Returns:
        Tensor: ``(B * H, T_q, T_k)`` bool.
    """
    blocked = ~length_mask(key_lengths, key_steps).unsqueeze(1)  # (B, 1, T_k)
    blocked = blocked.expand(-1, query_steps, -1)  # (B, T_q, T_k)
    if causal:
        query = torch.arange(query_steps, device=key_lengths.device).view(1, -1, 1)
        key = torch.arange(key_steps, device=key_lengths.device).view(1, 1, -1)
        later = key * query_lengths.view(-1, 1, 1) > query * key_lengths.view(-1, 1, 1)
        blocked = blocked | later  # (B, T_q, T_k)
    return blocked.repeat_interleave(num_heads, dim=0)  # (B*H, T_q, T_k)


def scale_and_position(x: Tensor) -> Tensor:
    r"""The transformer input :math:`\sqrt{C}\,\mathbf{x} + \mathrm{PE}`, with the
    sinusoidal position encoding of absolute steps, for ``x`` ``(B, T, C)``."""
    steps, channels = x.shape[1], x.shape[2]
    position = torch.arange(steps, device=x.device, dtype=x.dtype).unsqueeze(1)  # (T, 1)
    frequency = torch.exp(
        torch.arange(0, channels, 2, device=x.device, dtype=x.dtype)
        * (-math.log(10000.0) / channels)
    )  # (ceil(C/2),)
    angle = position * frequency  # (T, ceil(C/2))
    encoding = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)[:, :channels]  # (T, C)
    return math.sqrt(channels) * x + encoding


class SelfAttentionEncoder(nn.Module):
    r"""A pre-LayerNorm transformer encoder over one sequence with length masks.

    .. math::
        \mathbf{X}^{(0)} = \mathrm{Dropout}(\sqrt{C}\,\mathbf{X} + \mathrm{PE}),\qquad
        \mathbf{X}^{(l)} = \mathrm{Layer}_l(\mathbf{X}^{(l-1)}),\qquad
        \mathrm{out} = \mathrm{LayerNorm}(\mathbf{X}^{(L)}),

    each layer a :class:`torch.nn.TransformerEncoderLayer` with
    :obj:`norm_first=True`. Used over the homogeneous features of each modality and as
    the heterogeneous memory encoder.

    Args:
        channels (int): Width :math:`C`.
        num_heads (int): Attention heads (must divide :obj:`channels`).
        num_layers (int): Number of layers.
        dropout (float, optional): Residual and feed-forward dropout.
            (default: :obj:`0.1`)
        attention_dropout (float, optional): Dropout on attention weights.
            (default: :obj:`0.1`)
        embed_dropout (float, optional): Dropout on the scaled, position-encoded
            input. (default: :obj:`0.0`)
        feedforward_ratio (int, optional): Feed-forward width over :obj:`channels`.
            (default: :obj:`4`)
        causal (bool, optional): Causal masking (see :func:`attention_mask`).
            (default: :obj:`True`)

    Shapes:
        - **input:** sequence :math:`(B, T, C)`, lengths :math:`(B)` (>= 1)
        - **output:** :math:`(B, T, C)` (padded steps hold finite garbage)
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        num_layers: int,
        *,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        embed_dropout: float = 0.0,
        feedforward_ratio: int = 4,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_heads = num_heads
        self.causal = causal
        layer = nn.TransformerEncoderLayer(
            channels, num_heads, feedforward_ratio * channels, dropout,
            batch_first=True, norm_first=True,
        )
        # TransformerEncoderLayer has one dropout; its attention takes its own.
        layer.self_attn.dropout = attention_dropout
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(channels), enable_nested_tensor=False
        )
        self.embed_dropout = nn.Dropout(embed_dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        steps = x.shape[1]
        mask = attention_mask(lengths, lengths, steps, steps, self.num_heads, self.causal)
        x = self.embed_dropout(scale_and_position(x))  # (B, T, C)
        return self.encoder(x, mask=mask)  # (B, T, C)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.channels}, heads={self.num_heads}, "
                f"layers={len(self.encoder.layers)}, causal={self.causal})")


class CrossModalLayer(nn.Module):
    r"""One pre-LayerNorm cross-modal block: the target attends to the source,

    .. math::
        \mathbf{Q} \leftarrow \mathbf{Q} + \mathrm{Attn}(\mathrm{LN}(\mathbf{Q}),
        \mathrm{LN}_s(\mathbf{S}), \mathrm{LN}_s(\mathbf{S})),\qquad
        \mathbf{Q} \leftarrow \mathbf{Q} + \mathrm{FFN}(\mathrm{LN}(\mathbf{Q})).

    Args as in :class:`CrossModalTransformer`.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        *,
        dropout: float,
        attention_dropout: float,
        feedforward_ratio: int,
    ) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(channels)
        self.norm_source = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(
            channels, num_heads, dropout=attention_dropout, batch_first=True
        )
        self.norm_feedforward = nn.LayerNorm(channels)
        self.feedforward = nn.Sequential(
            nn.Linear(channels, feedforward_ratio * channels),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(feedforward_ratio * channels, channels),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, source: Tensor, mask: Tensor) -> Tensor:
        source = self.norm_source(source)  # (B, T_s, C)
        attended, _ = self.attention(
            self.norm_query(query), source, source, attn_mask=mask, need_weights=False
        )  # (B, T_q, C)
        query = query + self.dropout(attended)
        return query + self.dropout(self.feedforward(self.norm_feedforward(query)))


class CrossModalTransformer(nn.Module):
    r"""The cross-modal transformer of MulT/DMD: a target sequence attends to a
    source sequence through :obj:`num_layers` pre-LayerNorm blocks
    (:class:`CrossModalLayer`); both inputs are scaled by :math:`\sqrt{C}` and
    position-encoded first, the output is layer-normalised.

    Args:
        channels (int): Width :math:`C` of target and source.
        num_heads (int): Attention heads (must divide :obj:`channels`).
        num_layers (int): Number of blocks.
        dropout (float, optional): Residual and feed-forward dropout.
            (default: :obj:`0.1`)
        attention_dropout (float, optional): Dropout on attention weights.
            (default: :obj:`0.1`)
        embed_dropout (float, optional): Dropout on the scaled, position-encoded
            inputs. (default: :obj:`0.0`)
        feedforward_ratio (int, optional): Feed-forward width over :obj:`channels`.
            (default: :obj:`4`)
        causal (bool, optional): Causal masking in relative time (see
            :func:`attention_mask`). (default: :obj:`True`)

    Shapes:
        - **input:** target :math:`(B, T_q, C)`, source :math:`(B, T_s, C)`, target
          lengths :math:`(B)`, source lengths :math:`(B)` (all >= 1)
        - **output:** :math:`(B, T_q, C)`
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        num_layers: int,
        *,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        embed_dropout: float = 0.0,
        feedforward_ratio: int = 4,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_heads = num_heads
        self.causal = causal
        self.layers = nn.ModuleList(
            CrossModalLayer(channels, num_heads, dropout=dropout,
                            attention_dropout=attention_dropout,
                            feedforward_ratio=feedforward_ratio)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(channels)
        self.embed_dropout = nn.Dropout(embed_dropout)

    def forward(
        self, target: Tensor, source: Tensor, target_lengths: Tensor, source_lengths: Tensor
    ) -> Tensor:
        mask = attention_mask(target_lengths, source_lengths, target.shape[1], source.shape[1],
                              self.num_heads, self.causal)  # (B*H, T_q, T_s)
        query = self.embed_dropout(scale_and_position(target))  # (B, T_q, C)
        source = self.embed_dropout(scale_and_position(source))  # (B, T_s, C)
        for layer in self.layers:
            query = layer(query, source, mask)
        return self.norm(query)  # (B, T_q, C)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.channels}, heads={self.num_heads}, "
                f"layers={len(self.layers)}, causal={self.causal})")
