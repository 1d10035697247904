r"""The dictionaries of DHMD's fine-grained stage.

:class:`ModalitySharedDictionary` is the structure DHMD's framework figure draws: one dictionary per
decoupled space *after* the GD-Unit, reading one vector per modality and giving a
dictionary-reconstructed feature per modality, trained with a contrastive loss
(:func:`dhmd_graph.losses.dictionary_contrastive_loss`). Its internals are our design.

The earlier token-level design (a ``CrossModalDictionary`` over token sequences before
the GD-Unit, matched along the graph's edges with a KL loss) was removed with the move to
the published structure (see CHANGELOG).
"""

from __future__ import annotations

import math
import typing
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ModalitySharedDictionary",
    "SharedDictionaryOutput",
    "sparsemax",
]

Activation = Literal["softmax", "sparsemax"]
"""The activations over the atoms a dictionary offers."""
ACTIVATIONS: tuple[str, ...] = typing.get_args(Activation)


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


class SharedDictionaryOutput(NamedTuple):
    r"""What a :class:`ModalitySharedDictionary` gives for ``B`` samples and ``M``
    modalities; zero rows where a modality is absent.

    Attributes:
        activation (Tensor): ``(B, M, K)`` the activation :math:`\mathbf{a}_m` over the
            atoms (a distribution over the atoms, zero where absent).
        reconstruction (Tensor): ``(B, M, F)`` the dictionary-reconstructed feature
            :math:`\hat{\hat{\mathbf{x}}}_m` (zero where absent).
    """

    activation: Tensor
    reconstruction: Tensor


class ModalitySharedDictionary(nn.Module):
    r"""The modality-shared dictionary of a decoupled space in DHMD's published
    framework figure: :math:`K` learnable atoms shared by all modalities
    of the space, after the GD-Unit.

    Every modality's GD output :math:`\mathbf{x}_m \in \mathbb{R}^F` selects atoms
    :math:`\mathbf{D} \in \mathbb{R}^{K \times C}` and is reconstructed from them:

    .. math::
        \mathbf{a}_m = \sigma\!\left(\frac{\mathrm{LN}(\mathbf{W}_q \mathbf{x}_m)\,
        \mathbf{D}^{\top}}{\sqrt{C}\,\tau}\right),
        \qquad
        \hat{\hat{\mathbf{x}}}_m = \mathbf{W}_o\, \mathbf{a}_m \mathbf{D} + \mathbf{b}_o,

    with :math:`\sigma` softmax or sparsemax over the atoms. With
    :obj:`atom_channels=None` the atoms live in the feature space (:math:`C = F`)
    and :math:`\mathbf{W}_o = \mathbf{I}`, :math:`\mathbf{b}_o = 0`: the
    reconstruction is a convex combination of atoms; otherwise a learned
    :math:`\mathbf{W}_o, \mathbf{b}_o` maps the :math:`C`-wide combination back to
    :math:`F`. The figure shows only that the dictionary is shared by the modalities,
    outputs one reconstruction per modality and is trained with a contrastive loss;
    everything else here (the query :math:`\mathrm{LN}(\mathbf{W}_q \cdot)`, the
    scaled dot product, :math:`K`, :math:`C`, :math:`\tau`, :math:`\sigma`) is our
    design, *[open]*: the paper does not publish them. Modalities are independent of
    one another here: the atoms are what they share.

    Args:
        channels (int): Width :math:`F` of the input and the reconstruction.
        atoms (int): Number of atoms :math:`K` (>= 1). *[open]*
        atom_channels (int, optional): Width :math:`C` of the atoms, with a learned
            output map back to :math:`F`; :obj:`None` uses :math:`C = F` and no output
            map. *[open]* (default: :obj:`None`)
        temperature (float, optional): The activation temperature :math:`\tau` (> 0);
            lower is sharper. *[open]* (default: :obj:`1.0`)
        activation (str, optional): :obj:`"softmax"` or :obj:`"sparsemax"` (exact
            zeros). *[open]* (default: :obj:`"softmax"`)

    Shapes:
        - **input:** per-modality vectors :math:`(B, M, F)`, and which modalities are
          present :math:`(B, M)` bool *(optional)*
        - **output:** :class:`SharedDictionaryOutput` with activation
          :math:`(B, M, K)` and reconstruction :math:`(B, M, F)`
    """

    def __init__(
        self,
        channels: int,
        atoms: int,
        *,
        atom_channels: int | None = None,
        temperature: float = 1.0,
        activation: Activation = "softmax",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if channels < 1 or atoms < 1 or (atom_channels is not None and atom_channels < 1):
            raise ValueError(f"{name}: channels, atoms and atom_channels must be >= 1, found "
                             f"{channels}, {atoms} and {atom_channels}.")
        if temperature <= 0:
            raise ValueError(f"{name}: temperature must be positive, found {temperature}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"{name}: activation must be one of {ACTIVATIONS}, "
                             f"found {activation!r}.")
        self.channels = channels
        self.atom_channels = channels if atom_channels is None else atom_channels
        self.temperature = temperature
        self.activation = activation
        self.query = nn.Linear(channels, self.atom_channels)
        self.norm = nn.LayerNorm(self.atom_channels)
        self.atoms = nn.Parameter(torch.empty(atoms, self.atom_channels))
        self.output = None if atom_channels is None else nn.Linear(self.atom_channels, channels)
        self.reset_parameters()

    @property
    def num_atoms(self) -> int:
        """The number of atoms :math:`K`."""
        return self.atoms.shape[0]

    def reset_parameters(self) -> None:
        self.query.reset_parameters()
        self.norm.reset_parameters()
        nn.init.normal_(self.atoms)
        if self.output is not None:
            self.output.reset_parameters()

    def forward(self, x: Tensor, present: Tensor | None = None) -> SharedDictionaryOutput:
        r"""Activations and reconstructions of every modality.

        Args:
            x (Tensor): ``(B, M, F)`` one vector per sample and modality (the GD
                outputs).
            present (Tensor, optional): ``(B, M)`` bool, which modalities the samples
                have; absent ones get zero activation and reconstruction.
                (default: :obj:`None`, all present)
        """
        if x.dim() != 3 or x.shape[-1] != self.channels:
            raise ValueError(f"{type(self).__name__}: expected x of shape (B, M, "
                             f"{self.channels}), found {tuple(x.shape)}.")
        scores = self.norm(self.query(x)) @ self.atoms.t()  # (B, M, K)
        scores = scores / (math.sqrt(self.atom_channels) * self.temperature)
        activation = sparsemax(scores) if self.activation == "sparsemax" else scores.softmax(-1)
        reconstruction = activation @ self.atoms  # (B, M, C)
        if self.output is not None:
            reconstruction = self.output(reconstruction)  # (B, M, F)
        if present is not None:  # exact zeros, whatever an absent modality's input held
            absent = ~present.unsqueeze(-1)  # (B, M, 1)
            activation = activation.masked_fill(absent, 0.0)  # (B, M, K)
            reconstruction = reconstruction.masked_fill(absent, 0.0)  # (B, M, F)
        return SharedDictionaryOutput(activation, reconstruction)

    def __repr__(self) -> str:
        atom_channels = ("" if self.output is None else f", atom_channels={self.atom_channels}")
        return (f"{type(self).__name__}({self.channels}, atoms={self.num_atoms}{atom_channels}, "
                f"activation={self.activation!r}, temperature={self.temperature})")
