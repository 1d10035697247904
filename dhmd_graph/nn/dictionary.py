r"""Cross-modal dictionary matching, the fine-grained stage of DHMD.

**This is our design** (SPEC §5 is marked *open*): the DHMD paper says only that
fine-grained knowledge distillation runs "through a cross-modal dictionary matching
mechanism" whose "dictionary activations" are meaningful in both decoupled spaces.

One dictionary of :math:`K` atoms per decoupled space is shared by all modalities.
Every token of every modality gets a distribution over the atoms; pooled over the
valid tokens it is the modality's *activation* :math:`\mathbf{a}_m \in \Delta^K`,
and :math:`\mathbf{f}_m = \mathbf{a}_m \mathbf{D}` its dictionary feature (a fusion
input). The matching loss
(:func:`dhmd_graph.losses.dictionary_matching_loss`) runs along the *same* edges as
the coarse graph distillation and with its edge weights, so the coarse graph decides
who teaches whom and the dictionary transfers at atom granularity;
:func:`dhmd_graph.losses.dictionary_usage_loss` keeps the atoms in use.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dhmd_graph.nn.attention import length_mask, masked_mean

__all__ = ["CrossModalDictionary", "DictionaryOutput", "sparsemax"]

LOG_EPS = 1e-6
"""Added before taking logs of activations (sparsemax gives exact zeros)."""


def sparsemax(x: Tensor) -> Tensor:
    r"""Sparsemax over the last dimension (Martins & Astudillo, 2016): the Euclidean
    projection of ``x`` onto the probability simplex, with exact zeros.

    Shapes:
        - **input:** :math:`(*, K)`
        - **output:** :math:`(*, K)`, non-negative, summing to one
    """
    sorted_x, _ = x.sort(dim=-1, descending=True)  # (*, K)
    cumulative = sorted_x.cumsum(dim=-1) - 1.0  # (*, K)
    rank = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)  # (K,)
    support = (sorted_x * rank > cumulative).sum(dim=-1, keepdim=True)  # (*, 1)
    threshold = cumulative.gather(-1, support - 1) / support.to(x.dtype)  # (*, 1)
    return (x - threshold).clamp_min(0.0)


class DictionaryOutput(NamedTuple):
    r"""What a :class:`CrossModalDictionary` gives for ``B`` samples and ``M``
    modalities.

    Attributes:
        activation (Tensor): ``(B, M, K)`` pooled activation :math:`\mathbf{a}_m`.
        log_activation (Tensor): ``(B, M, K)`` :math:`\log(\mathbf{a}_m + \epsilon)`.
        token_log_activation (Tensor): ``(B, M, K)`` mean over valid tokens of the
            log token activations :math:`\log(\mathbf{p}_{m,t} + \epsilon)` (for the
            token-level matching term).
        feature (Tensor): ``(B, M, C)`` dictionary feature
            :math:`\mathbf{f}_m = \mathbf{a}_m \mathbf{D}`.
    """

    activation: Tensor
    log_activation: Tensor
    token_log_activation: Tensor
    feature: Tensor


class CrossModalDictionary(nn.Module):
    r"""A dictionary :math:`\mathbf{D} \in \mathbb{R}^{K \times C}` shared by all
    modalities of one decoupled space (our design, see the module docstring).

    For modality :math:`m` with tokens :math:`\mathbf{H}_m \in \mathbb{R}^{T \times C}`

    .. math::
        \mathbf{p}_{m,t} = \sigma\!\left(\frac{\mathrm{LN}(\mathbf{H}_{m,t}
        \mathbf{W}_q)\,\mathbf{D}^{\top}}{\sqrt{C}\,\tau_d}\right),\qquad
        \mathbf{a}_m = \mathrm{pool}_{t < L_m}\,\mathbf{p}_{m,t},\qquad
        \mathbf{f}_m = \mathbf{a}_m \mathbf{D},

    with :math:`\sigma` softmax or sparsemax over the atoms, and mean pooling or
    max pooling (renormalised to sum to one) over the valid tokens. The scores of all
    modalities are computed in one pass over their tokens concatenated along time.

    Args:
        channels (int): Token width :math:`C`.
        atoms (int): Number of atoms :math:`K` (>= 1).
        temperature (float, optional): :math:`\tau_d`. (default: :obj:`1.0`)
        activation (str, optional): ``"softmax"`` or ``"sparsemax"``.
            (default: :obj:`"softmax"`)
        pooling (str, optional): ``"mean"`` or ``"max"``. (default: :obj:`"mean"`)

    Shapes:
        - **input:** :math:`M` token sequences :math:`(B, T_m, C)` and their lengths
          :math:`(B)` (>= 1)
        - **output:** :class:`DictionaryOutput`
    """

    def __init__(
        self,
        channels: int,
        atoms: int,
        *,
        temperature: float = 1.0,
        activation: str = "softmax",
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if atoms < 1:
            raise ValueError(f"CrossModalDictionary: atoms must be >= 1, found {atoms}.")
        if activation not in ("softmax", "sparsemax"):
            raise ValueError("CrossModalDictionary: activation must be 'softmax' or "
                             f"'sparsemax', found {activation!r}.")
        if pooling not in ("mean", "max"):
            raise ValueError(f"CrossModalDictionary: pooling must be 'mean' or 'max', "
                             f"found {pooling!r}.")
        self.channels = channels
        self.temperature = temperature
        self.activation = activation
        self.pooling = pooling
        self.query = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)
        self.atoms = nn.Parameter(torch.empty(atoms, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.query.reset_parameters()
        self.norm.reset_parameters()
        nn.init.normal_(self.atoms)

    def token_activation(self, tokens: Tensor) -> Tensor:
        """The atom distribution ``(B, T, K)`` of every token ``(B, T, C)``."""
        scores = self.norm(self.query(tokens)) @ self.atoms.t()  # (B, T, K)
        scores = scores / (math.sqrt(self.channels) * self.temperature)
        if self.activation == "sparsemax":
            return sparsemax(scores)
        return torch.softmax(scores, dim=-1)

    def forward(self, tokens: list[Tensor], lengths: list[Tensor]) -> DictionaryOutput:
        steps = [x.shape[1] for x in tokens]
        probabilities = self.token_activation(torch.cat(tokens, dim=1))  # (B, ΣT, K)
        pooled, token_log = [], []
        for p, length in zip(probabilities.split(steps, dim=1), lengths, strict=True):
            mask = length_mask(length, p.shape[1])  # (B, T)
            token_log.append(masked_mean(torch.log(p + LOG_EPS), mask))  # (B, K)
            if self.pooling == "mean":
                pooled.append(masked_mean(p, mask))  # (B, K)
            else:
                peak = p.masked_fill(~mask.unsqueeze(-1), 0.0).amax(dim=1)  # (B, K)
                pooled.append(peak / peak.sum(dim=-1, keepdim=True))
        activation = torch.stack(pooled, dim=1)  # (B, M, K)
        return DictionaryOutput(
            activation=activation,
            log_activation=torch.log(activation + LOG_EPS),
            token_log_activation=torch.stack(token_log, dim=1),  # (B, M, K)
            feature=activation @ self.atoms,  # (B, M, C)
        )

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.channels}, atoms={self.atoms.shape[0]}, "
                f"activation={self.activation!r}, pooling={self.pooling!r})")
