r"""One decoupled space of DHMD: heads → GD-Unit → modality-shared dictionary → fusion
blocks, as one module.

The homogeneous and the heterogeneous space are two instances of
:class:`DecoupledSpace`; each returns a :class:`SpaceOutput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dhmd_graph.nn.dictionary import ModalitySharedDictionary, SharedDictionaryOutput
from dhmd_graph.nn.distill import DynamicGraphDistill, EdgeWeights
from dhmd_graph.nn.graph import modality_graph, restrict_to_present

__all__ = ["FUSION_INPUTS", "DecoupledSpace", "SpaceOutput", "temporal_statistics"]

FUSION_INPUTS = ("features", "readout", "none")
"""What a space's fusion blocks read: ``"features"`` (DHMD), ``"readout"`` (DMD's
heterogeneous blocks) or ``"none"`` (no blocks, DMD's homogeneous space)."""


def temporal_statistics(sequence: Tensor, mask: Tensor) -> Tensor:
    r"""Length-masked temporal statistics of a sequence, per channel: the mean, the
    standard deviation and the root mean square of the step-to-step differences,

    .. math::
        \boldsymbol{\mu} = \frac{1}{T}\sum_t \mathbf{x}_t,\quad
        \boldsymbol{\sigma} = \sqrt{\tfrac{1}{T}\textstyle\sum_t (\mathbf{x}_t -
        \boldsymbol{\mu})^2},\quad
        \boldsymbol{\delta} = \sqrt{\tfrac{1}{T - 1}\textstyle\sum_{t > 1}
        (\mathbf{x}_t - \mathbf{x}_{t-1})^2}

    over the :math:`T` valid steps (:math:`\boldsymbol{\delta} = 0` for one step). A mean
    readout keeps :math:`\boldsymbol{\mu}` only; :math:`\boldsymbol{\sigma}` and
    :math:`\boldsymbol{\delta}` tell white from slowly drifting noise of the same size.

    Shapes:
        - **input:** sequence :math:`(B, T, C)`, valid-step mask :math:`(B, T)` bool
        - **output:** :math:`(B, 3C)`, ``[mean, std, difference RMS]``
    """
    weight = mask.to(sequence.dtype).unsqueeze(-1)  # (B, T, 1)
    count = weight.sum(dim=1).clamp_min(1.0)  # (B, 1)
    mean = (sequence * weight).sum(dim=1) / count  # (B, C)
    variance = ((sequence - mean.unsqueeze(1)).pow(2) * weight).sum(dim=1) / count  # (B, C)
    step = weight[:, 1:] * weight[:, :-1]  # (B, T-1, 1) both steps valid
    difference = ((sequence[:, 1:] - sequence[:, :-1]).pow(2) * step).sum(dim=1)  # (B, C)
    difference = difference / step.sum(dim=1).clamp_min(1.0)  # (B, C)
    # sqrt(x + eps) - sqrt(eps): finite gradient at exactly zero (padding-only channels)
    eps = torch.finfo(sequence.dtype).eps
    root = [(value + eps).sqrt() - eps**0.5 for value in (variance, difference)]
    return torch.cat([mean, *root], dim=-1)  # (B, 3C)


class SpaceOutput(NamedTuple):
    r"""What one :class:`DecoupledSpace` computes for ``B`` samples and ``M`` modalities.

    Attributes:
        logits (Tensor): ``(B, M)`` the per-modality logits :math:`y_m` (one output),
            or ``(B, M, C)`` for a GD-Unit of ``C > 1`` logit channels (classification).
        representation (Tensor): ``(B, M, F)`` the per-modality representations
            :math:`\mathbf{r}_m` (the GD-Unit's node features).
        features (Tensor): ``(B, M, F')`` the GD outputs :math:`\hat{\mathbf{x}}_m`
            (the representations themselves when the GD-Unit does not propagate);
            zero where a modality is absent.
        edges (EdgeWeights): The GD-Unit's edges over the nodes ``b * M + m``, with
            :math:`w`, :math:`E` and :math:`p`.
        dictionary (SharedDictionaryOutput or None): Activations ``(B, M, K)`` and
            reconstructions ``(B, M, F')`` of the modality-shared dictionary, zero
            where absent; :obj:`None` without a dictionary.
        fusion (Tensor or None): ``(B, W)`` the space's fusion blocks, concatenated
            (zero blocks where absent); :obj:`None` with ``fusion="none"``.
    """

    logits: Tensor
    representation: Tensor
    features: Tensor
    edges: EdgeWeights
    dictionary: SharedDictionaryOutput | None
    fusion: Tensor | None


class DecoupledSpace(nn.Module):
    r"""A decoupled space of DHMD (homogeneous or heterogeneous), in the order of the
    published framework figure:

    1. **heads**: per modality, an optional readout of its sequence and a head giving
       the representation and logit, :math:`(\mathbf{r}_m, y_m) =
       \mathrm{head}_m(\mathrm{readout}_m(\mathbf{H}_m))`;
    2. **GD-Unit** (:class:`~dhmd_graph.nn.DynamicGraphDistill`) on the graph of the
       present modalities of each sample (with a GD-Unit built with
       :obj:`context_channels`, its scorer also reads :func:`temporal_statistics` of
       every modality's sequence): edge weights :math:`w` and, with
       :obj:`propagate`, the GD outputs :math:`\hat{\mathbf{x}}_m` (otherwise
       :math:`\hat{\mathbf{x}}_m = \mathbf{r}_m`, the GD-Unit is a loss only, as in DMD);
    3. **modality-shared dictionary**
       (:class:`~dhmd_graph.nn.ModalitySharedDictionary`, optional): activations and
       reconstructions :math:`\hat{\hat{\mathbf{x}}}_m` of the GD outputs;
    4. **fusion blocks**, per modality, by :obj:`fusion`:

       .. math::
           \texttt{"features"}:\ \sigma\big(\mathbf{W}_m[\hat{\mathbf{x}}_m \Vert
           \hat{\hat{\mathbf{x}}}_m]\big) \in \mathbb{R}^{F'},
           \qquad
           \texttt{"readout"}:\ \sigma(\mathbf{W}_m \mathbf{g}_m),

       with :math:`\mathbf{g}_m` the readout (DMD's heterogeneous blocks); ``"none"``
       builds no blocks. Without a dictionary a ``"features"`` block reads
       :math:`\hat{\mathbf{x}}_m` alone.

    Absent modalities lose their edges (so they teach no one), and their GD outputs
    (their own root term), dictionary outputs and fusion blocks are zero: nothing of an
    absent modality reaches the space's outputs for its sample.

    Args:
        heads (Sequence[nn.Module]): Per modality a module mapping its (read out) input
            to ``(representation (B, F), logit (B, C))``.
        graph (DynamicGraphDistill): The GD-Unit, for C-wide logits
            (:obj:`logit_channels`) and F-wide representations.
        dictionary (ModalitySharedDictionary, optional): The space's dictionary over the
            GD outputs. (default: :obj:`None`)
        readouts (Sequence[nn.Module], optional): Per modality a module
            ``(sequence (B, T, C), mask (B, T)) -> (B, C)`` applied before the head;
            :obj:`None` gives the heads the sequences themselves. (default: :obj:`None`)
        edges (Sequence[tuple[int, int]], optional): The ``(teacher, student)`` modality
            pairs of the graph; :obj:`None` for all ordered pairs. (default: :obj:`None`)
        propagate (bool, optional): Whether the GD outputs are the GD-Unit's propagated
            features (:obj:`True`) or the representations (:obj:`False`).
            (default: :obj:`True`)
        fusion (str, optional): ``"features"``, ``"readout"`` or ``"none"`` (above).
            (default: :obj:`"features"`)
        readout_channels (int, optional): Width :math:`C` of the readout, needed by
            ``fusion="readout"``. (default: :obj:`None`)

    Shapes:
        - **input:** :math:`M` sequences :math:`(B, T_m, C)`, their valid-step masks
          :math:`(B, T_m)` bool, and which modalities are present :math:`(B, M)` bool
        - **output:** :class:`SpaceOutput`
    """

    def __init__(
        self,
        heads: Sequence[nn.Module],
        graph: DynamicGraphDistill,
        dictionary: ModalitySharedDictionary | None = None,
        *,
        readouts: Sequence[nn.Module] | None = None,
        edges: Sequence[tuple[int, int]] | None = None,
        propagate: bool = True,
        fusion: str = "features",
        readout_channels: int | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        num_modalities = len(heads)
        if num_modalities < 2:
            raise ValueError(f"{name}: needs heads for at least 2 modalities, found "
                             f"{num_modalities}.")
        if readouts is not None and len(readouts) != num_modalities:
            raise ValueError(f"{name}: expected one readout per head ({num_modalities}), "
                             f"found {len(readouts)}.")
        if fusion not in FUSION_INPUTS:
            raise ValueError(f"{name}: fusion must be one of {FUSION_INPUTS}, found {fusion!r}.")
        if fusion == "readout" and (readouts is None or readout_channels is None):
            raise ValueError(f"{name}: fusion='readout' needs readouts and readout_channels.")
        feature_channels = graph.repr_channels
        if propagate and graph.out_channels is not None:
            feature_channels = graph.out_channels
        if dictionary is not None and dictionary.channels != feature_channels:
            raise ValueError(f"{name}: the dictionary reads the {feature_channels}-wide GD "
                             f"outputs, found a dictionary of {dictionary.channels} channels.")
        self.num_modalities = num_modalities
        self.edges = None if edges is None else tuple(tuple(pair) for pair in edges)
        self.propagate = propagate
        self.fusion_input = fusion
        self.feature_channels = feature_channels
        self.heads = nn.ModuleList(heads)
        self.readouts = None if readouts is None else nn.ModuleList(readouts)
        self.graph = graph
        self.dictionary = dictionary
        if fusion == "features":
            block_in = feature_channels * (1 if dictionary is None else 2)
            self.fusion = nn.ModuleList(nn.Linear(block_in, feature_channels)
                                        for _ in range(num_modalities))
        elif fusion == "readout":
            self.fusion = nn.ModuleList(nn.Linear(readout_channels, readout_channels)
                                        for _ in range(num_modalities))
        else:
            self.fusion = None

    @property
    def fusion_channels(self) -> int:
        """Width :math:`W` of :attr:`SpaceOutput.fusion` (0 without blocks)."""
        if self.fusion is None:
            return 0
        return sum(block.out_features for block in self.fusion)

    def forward(self, sequences: Sequence[Tensor], masks: Sequence[Tensor],
                present: Tensor, prior_scale: float | Tensor = 1.0) -> SpaceOutput:
        """The space's outputs; ``prior_scale`` is the GD-Unit's :math:`\alpha` of
        :math:`w = E + \alpha p` (an annealed prior's factor, 1 otherwise)."""
        if len(sequences) != self.num_modalities or len(masks) != self.num_modalities:
            raise ValueError(f"{type(self).__name__}: expected {self.num_modalities} sequences "
                             f"and masks, found {len(sequences)} and {len(masks)}.")
        keep = present.to(sequences[0].dtype).unsqueeze(-1)  # (B, M, 1)
        # 1. Heads.
        if self.readouts is None:
            readout = list(sequences)
        else:
            readout = [pool(h, mask) for h, mask, pool in
                       zip(sequences, masks, self.readouts, strict=True)]  # M x (B, C)
        heads = [head(x) for x, head in zip(readout, self.heads, strict=True)]
        representation = torch.stack([r for r, _ in heads], dim=1)  # (B, M, F)
        logits = torch.stack([y for _, y in heads], dim=1)  # (B, M, C)

        # 2. GD-Unit over the present modalities of each sample.
        batch_size = logits.shape[0]
        graph = modality_graph(self.num_modalities, batch_size, self.edges, device=logits.device)
        edge_index = restrict_to_present(graph.edge_index, present)
        context = None
        if self.graph.context_channels is not None:
            context = torch.stack([temporal_statistics(h, mask) for h, mask in
                                   zip(sequences, masks, strict=True)], dim=1)  # (B, M, 3C)
            context = context.flatten(0, 1)  # (B M, 3C)
        distilled = self.graph(logits.flatten(0, 1), representation.flatten(0, 1), edge_index,
                               graph.batch, graph.modality, return_parts=True,
                               context=context, prior_scale=prior_scale)
        if self.graph.logit_channels == 1:
            logits = logits.squeeze(-1)  # (B, M): one output
        features = (distilled.x.view(batch_size, self.num_modalities, -1) if self.propagate
                    else representation)  # (B, M, F')
        features = features * keep  # an absent node's output is its own root term

        # 3. Modality-shared dictionary.
        dictionary = None if self.dictionary is None else self.dictionary(features, present)

        # 4. Fusion blocks.
        fusion = None
        if self.fusion_input == "features":
            inputs = features if dictionary is None else torch.cat(
                [features, dictionary.reconstruction], dim=-1)  # (B, M, F' or 2F')
            fusion = torch.cat([torch.sigmoid(block(inputs[:, m])) * keep[:, m]
                                for m, block in enumerate(self.fusion)], dim=-1)  # (B, M F')
        elif self.fusion_input == "readout":
            fusion = torch.cat([torch.sigmoid(block(g)) * keep[:, m]
                                for m, (block, g) in enumerate(zip(self.fusion, readout,
                                                                   strict=True))], dim=-1)
        return SpaceOutput(logits, representation, features, distilled.edges, dictionary, fusion)

    def __repr__(self) -> str:
        atoms = 0 if self.dictionary is None else self.dictionary.num_atoms
        return (f"{type(self).__name__}(modalities={self.num_modalities}, "
                f"features={self.feature_channels}, propagate={self.propagate}, atoms={atoms}, "
                f"fusion={self.fusion_input!r})")
