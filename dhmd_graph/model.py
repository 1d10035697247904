r"""DHMD: Decoupled Hierarchical Multimodal Distillation.

One batch flows through :meth:`DHMD.forward` in the order of the method:
temporal projection → decoupling (homogeneous / heterogeneous, with self-regression)
→ homogeneous branch & heterogeneous branch → the two graph distillation units
(coarse-grained) → the two cross-modal dictionaries (fine-grained) → fusion. The
objective is the pure function :func:`dhmd_objective`; :meth:`DHMD.training_step`
and :meth:`DHMD.validation_step` are all a generic trainer needs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from dhmd_graph.config import DHMDConfig, edge_name
from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.losses import (
    dictionary_matching_loss,
    dictionary_usage_loss,
    graph_distillation_loss,
    margin_loss,
    orthogonality_loss,
    prior_regularization,
    self_regression_loss,
    task_loss,
)
from dhmd_graph.nn.attention import MaskedPooling, StackedTransformer, length_mask
from dhmd_graph.nn.dictionary import CrossModalDictionary, DictionaryOutput
from dhmd_graph.nn.distill import DynamicGraphDistill
from dhmd_graph.nn.encoders import (
    DecoupledFeatures,
    Decoupling,
    FlattenHead,
    ResidualHead,
    TemporalProjection,
)
from dhmd_graph.nn.graph import modality_graph, restrict_to_present

__all__ = ["DHMD", "DHMDOutput", "GraphEdges", "dhmd_objective"]

SPACES = ("homogeneous", "heterogeneous")


class GraphEdges(NamedTuple):
    r"""The edges of one distillation graph over the nodes ``b * M + m``.

    Attributes:
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student.
        weight (Tensor): ``(E,)`` distillation weight :math:`w = E + p`.
        prior (Tensor or None): ``(E,)`` prior weight :math:`p`, :obj:`None` without a
            prior (then :math:`w = E`).
    """

    edge_index: Tensor
    weight: Tensor
    prior: Tensor | None

    @property
    def learned(self) -> Tensor:
        """``(E,)`` the learned, input-dependent weight :math:`E = w - p`."""
        return self.weight if self.prior is None else self.weight - self.prior


class DHMDOutput(NamedTuple):
    r"""Everything :meth:`DHMD.forward` computes that a loss or an inspection needs.

    Attributes:
        prediction (Tensor): ``(B,)`` the fused prediction :math:`\hat{y}`.
        homogeneous_logits (Tensor): ``(B, M)`` :math:`y^{hom}_m`.
        heterogeneous_logits (Tensor): ``(B, M)`` :math:`y^{het}_m`.
        shared_logit (Tensor): ``(B,)`` :math:`y_c` from the self-attended
            homogeneous features of all modalities.
        homogeneous_repr (Tensor): ``(B, M, d)`` homogeneous :math:`r_m`.
        heterogeneous_repr (Tensor): ``(B, M, (M-1) d)`` heterogeneous :math:`z_m`.
        margin_embedding (Tensor): ``(B, M, d)`` the vectors the margin loss compares:
            :math:`r_m` (``loss.margin_embedding="pooled"``) or the flattened-:math:`c_m`
            embeddings of the reference (``"flatten"``).
        homogeneous_edges (GraphEdges): The homogeneous graph's edges and weights.
        heterogeneous_edges (GraphEdges): The heterogeneous graph's edges and weights.
        homogeneous_dictionary (DictionaryOutput or None): Homogeneous dictionary
            activations and features (:obj:`None` when disabled).
        heterogeneous_dictionary (DictionaryOutput or None): Heterogeneous ones.
        decoupled (DecoupledFeatures): Projected, decoupled and self-regressed
            sequences with their lengths.
        present (Tensor): ``(B, M)`` bool, the modalities used for each sample.
    """

    prediction: Tensor
    homogeneous_logits: Tensor
    heterogeneous_logits: Tensor
    shared_logit: Tensor
    homogeneous_repr: Tensor
    heterogeneous_repr: Tensor
    margin_embedding: Tensor
    homogeneous_edges: GraphEdges
    heterogeneous_edges: GraphEdges
    homogeneous_dictionary: DictionaryOutput | None
    heterogeneous_dictionary: DictionaryOutput | None
    decoupled: DecoupledFeatures
    present: Tensor

    @property
    def homogeneous_atoms(self) -> Tensor | None:
        """``(B, M, K)`` homogeneous dictionary activations, or :obj:`None`."""
        return None if self.homogeneous_dictionary is None else self.homogeneous_dictionary.activation

    @property
    def heterogeneous_atoms(self) -> Tensor | None:
        """``(B, M, K)`` heterogeneous dictionary activations, or :obj:`None`."""
        return (None if self.heterogeneous_dictionary is None
                else self.heterogeneous_dictionary.activation)


class DHMD(nn.Module):
    r"""Decoupled Hierarchical Multimodal Distillation (DHMD) for multimodal
    sentiment / emotion regression, for any :math:`M \ge 2` named modalities.

    1. **Temporal projection**: per modality a bias-free convolution to width
       :math:`d` (:class:`~dhmd_graph.nn.TemporalProjection`).
    2. **Decoupling**: private (heterogeneous) :math:`\mathbf{s}_m` and shared
       (homogeneous) :math:`\mathbf{c}_m`, with self-regression
       (:class:`~dhmd_graph.nn.Decoupling`).
    3. **Homogeneous branch**: :math:`\mathbf{r}_m` and logit :math:`y^{hom}_m` per
       modality (a residual head on the pooled :math:`\mathbf{c}_m`, or the
       reference's :class:`~dhmd_graph.nn.FlattenHead`); a self-attention encoder
       per modality over :math:`\mathbf{c}_m`, read out and concatenated into
       :math:`\mathbf{c}_{fus}` (:math:`M d`) → :math:`y_c`.
    4. **Heterogeneous branch**: a cross-modal transformer for every ordered pair
       (target :math:`m` ← source :math:`n`); per target the :math:`M - 1` outputs
       are concatenated, run through a memory encoder and pooled to
       :math:`\mathbf{g}_m` (:math:`(M-1) d`); a residual head gives
       :math:`\mathbf{z}_m` and :math:`y^{het}_m`. Every pair (and every modality's
       encoder) has its own weights; they run together as one
       :class:`~dhmd_graph.nn.StackedTransformer`.
    5. **Coarse-grained distillation**: two
       :class:`~dhmd_graph.nn.DynamicGraphDistill` graphs over the nodes
       ``b * M + m``, on :math:`(y^{hom}, \mathbf{r})` and :math:`(y^{het},
       \mathbf{z})`.
    6. **Fine-grained distillation**: one
       :class:`~dhmd_graph.nn.CrossModalDictionary` per space, over the token
       sequences whose pooling gives that space's node representations
       (:math:`\mathbf{c}_m`, and the memory encoder outputs).
    7. **Fusion**: :math:`[\sigma(\mathbf{W}_m \mathbf{g}_m)]_m \,\Vert\,
       \sigma(\mathbf{W}_c \mathbf{c}_{fus}) \,\Vert\, [\mathbf{f}^{hom}_m]_m
       \,\Vert\, [\mathbf{f}^{het}_m]_m` → residual head → :math:`\hat{y}`.

    Every difference from the DMD reference code is a switch of the config (see
    :func:`~dhmd_graph.config.preset` with ``reference="dmd"``).

    Absent modalities (:obj:`present`, or random modality dropout in training) lose
    their graph edges, and every fusion input they could reach is zeroed: their own
    fusion inputs, their chunk of :math:`\mathbf{c}_{fus}`, and the cross-modal
    outputs they are the source of. So a sample's prediction does not depend on the
    features of its absent modalities.

    Args:
        config (DHMDConfig): The whole configuration.

    Shapes:
        - **input:** a :class:`~dhmd_graph.data.MultimodalBatch` with the configured
          modalities, ``present`` :math:`(B, M)` bool *(optional)*
        - **output:** :class:`DHMDOutput`
    """

    def __init__(self, config: DHMDConfig) -> None:
        super().__init__()
        self.config = config
        width, heads, encoder = config.width, config.num_heads, config.encoder
        num_modalities = len(config.modalities)
        heterogeneous_width = (num_modalities - 1) * width
        attention = {
            "dropout": encoder.dropout,
            "embed_dropout": encoder.embed_dropout,
            "feedforward_ratio": encoder.feedforward_ratio,
            "causal": encoder.causal,
            "causal_alignment": encoder.causal_alignment,
            "positional_encoding": encoder.positional_encoding,
        }
        # Attention dropout of the attentions whose keys come from each modality.
        key_dropout = [encoder.attention_dropout if m.attention_dropout is None
                       else m.attention_dropout for m in config.modalities]

        # 1-2. Projection and decoupling.
        self.projections = nn.ModuleList(
            TemporalProjection(m.input_dim, width, m.kernel_size, m.vocab_size, m.embedding_dim,
                               dropout=m.input_dropout)
            for m in config.modalities
        )
        self.decoupling = Decoupling(num_modalities, width)

        # 3. Homogeneous branch.
        if encoder.homogeneous_head == "pooled":
            self.homogeneous_pool = MaskedPooling(width, encoder.pooling)
            self.homogeneous_heads = nn.ModuleList(
                ResidualHead(width, dropout=encoder.output_dropout) for _ in config.modalities
            )
        else:  # the reference's length-bound head
            self.homogeneous_pool = None
            self.homogeneous_heads = nn.ModuleList(
                FlattenHead(m.projected_length, width, dropout=encoder.output_dropout,
                            name=f"homogeneous head of '{m.name}'")
                for m in config.modalities
            )
        self.margin_embeddings = None
        if config.loss.margin_embedding == "flatten":  # the reference's Linear(d T' -> d)
            self.margin_embeddings = nn.ModuleList(
                nn.Linear(width * m.projected_length, width) for m in config.modalities
            )
        self.shared_encoders = StackedTransformer(
            num_modalities, width, heads, encoder.num_layers, attention_dropout=key_dropout,
            **attention)
        self.shared_pools = nn.ModuleList(
            MaskedPooling(width, encoder.pooling) for _ in config.modalities
        )
        self.shared_head = ResidualHead(num_modalities * width, dropout=encoder.output_dropout)

        # 4. Heterogeneous branch: pair (target, source) for every ordered pair.
        self.pairs = [
            (target, source)
            for target in range(num_modalities)
            for source in range(num_modalities)
            if source != target
        ]
        self.cross_modal = StackedTransformer(
            len(self.pairs), width, heads, encoder.num_layers, cross=True,
            shared_norm=encoder.cross_modal_norm == "shared",
            attention_dropout=[key_dropout[source] for _, source in self.pairs], **attention)
        self.memory_encoders = StackedTransformer(
            num_modalities, heterogeneous_width, heads, encoder.memory_layers,
            attention_dropout=encoder.attention_dropout, **attention)
        self.heterogeneous_pools = nn.ModuleList(
            MaskedPooling(heterogeneous_width, encoder.pooling) for _ in config.modalities
        )
        self.heterogeneous_heads = nn.ModuleList(
            ResidualHead(heterogeneous_width, dropout=encoder.output_dropout)
            for _ in config.modalities
        )

        # 5. Graph distillation units.
        self.homogeneous_graph = self._graph_unit("homogeneous", width)
        self.heterogeneous_graph = self._graph_unit("heterogeneous", heterogeneous_width)

        # 6. Dictionaries (atoms == 0: none).
        self.homogeneous_dictionary = self._dictionary(width)
        self.heterogeneous_dictionary = self._dictionary(heterogeneous_width)

        # 7. Fusion.
        self.fusion_heterogeneous = nn.ModuleList(
            nn.Linear(heterogeneous_width, heterogeneous_width) for _ in config.modalities
        )
        self.fusion_shared = nn.Linear(num_modalities * width, num_modalities * width)
        fusion_width = num_modalities * (heterogeneous_width + width)
        if config.dictionary.atoms > 0:
            fusion_width += num_modalities * (width + heterogeneous_width)
        self.fusion_head = ResidualHead(fusion_width, dropout=encoder.output_dropout)

    def _graph_unit(self, space: str, repr_channels: int) -> DynamicGraphDistill:
        graph = getattr(self.config, f"{space}_graph")
        return DynamicGraphDistill(
            1, repr_channels, graph.hidden_channels,
            temperature=graph.temperature, normalize=graph.normalize,
            prior=self.config.prior_matrix(space), prior_temperature=graph.prior_temperature,
        )

    def _dictionary(self, channels: int) -> CrossModalDictionary | None:
        dictionary = self.config.dictionary
        if dictionary.atoms == 0:
            return None
        return CrossModalDictionary(channels, dictionary.atoms, temperature=dictionary.temperature,
                                    activation=dictionary.activation, pooling=dictionary.pooling)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modality names in node order (node ``b * M + m`` is modality ``m``)."""
        return tuple(self.config.modality_names)

    def forward(self, batch: MultimodalBatch, present: Tensor | None = None) -> DHMDOutput:
        r"""Runs the model on a batch.

        Args:
            batch (MultimodalBatch): Features of every configured modality (by name;
                extra modalities are ignored) with their true lengths.
            present (Tensor, optional): ``(B, M)`` bool in :attr:`modalities` order,
                :obj:`False` for an absent modality (at least one per sample).
                (default: :obj:`None`, all present)

        Raises:
            DatasetError: If the batch lacks a modality or its features do not match
                the configured width or kind.
        """
        self._check_batch(batch)
        present = self._present(batch, present)  # (B, M)

        # 1. Temporal projection.
        projected, lengths = [], []
        for (x, length), projection in zip(self._inputs(batch), self.projections, strict=True):
            x, length = projection(x, length)  # (B, T', d)
            projected.append(x)
            lengths.append(length)
        keep = present.to(projected[0].dtype).unsqueeze(-1)  # (B, M, 1)
        masks = [length_mask(length, x.shape[1]) for x, length in zip(projected, lengths, strict=True)]

        # 2. Decoupling and self-regression.
        decoupled = self.decoupling(projected, lengths)

        # 3. Homogeneous branch.
        if self.homogeneous_pool is not None:
            heads = [head(self.homogeneous_pool(c, mask)) for c, mask, head in
                     zip(decoupled.shared, masks, self.homogeneous_heads, strict=True)]
        else:
            heads = [head(c) for c, head in zip(decoupled.shared, self.homogeneous_heads,
                                                 strict=True)]
        homogeneous_repr = torch.stack([r for r, _ in heads], dim=1)  # (B, M, d)
        homogeneous_logits = torch.cat([y for _, y in heads], dim=-1)  # (B, M)
        margin_embedding = homogeneous_repr
        if self.margin_embeddings is not None:  # channel-major flatten of c_m
            margin_embedding = torch.stack([
                linear(c.transpose(1, 2).flatten(1))
                for c, linear in zip(decoupled.shared, self.margin_embeddings, strict=True)
            ], dim=1)  # (B, M, d)
        shared_encoded = self.shared_encoders(decoupled.shared, lengths)  # M x (B, T'_m, d)
        shared_fusion = torch.cat([
            pool(h, mask) * keep[:, m]
            for m, (h, mask, pool) in enumerate(zip(shared_encoded, masks, self.shared_pools,
                                                    strict=True))
        ], dim=-1)  # (B, M*d)
        shared_logit = self.shared_head(shared_fusion)[1].squeeze(-1)  # (B,)

        # 4. Heterogeneous branch.
        targets, sources = zip(*self.pairs, strict=True)
        crossed_pairs = self.cross_modal(
            [decoupled.private[t] for t in targets], [lengths[t] for t in targets],
            [decoupled.private[s] for s in sources], [lengths[s] for s in sources],
        )  # M(M-1) x (B, T'_target, d)
        crossed: list[list[Tensor]] = [[] for _ in self.modalities]
        for (target, source), out in zip(self.pairs, crossed_pairs, strict=True):
            crossed[target].append(out * keep[:, source].unsqueeze(1))
        memory = self.memory_encoders([torch.cat(c, dim=-1) for c in crossed],
                                      lengths)  # M x (B, T'_m, (M-1)d)
        pooled, heterogeneous_repr, heterogeneous_logits = [], [], []
        for h, mask, pool, head in zip(memory, masks, self.heterogeneous_pools,
                                       self.heterogeneous_heads, strict=True):
            g = pool(h, mask)  # (B, (M-1)d)
            z, y = head(g)
            pooled.append(g)
            heterogeneous_repr.append(z)
            heterogeneous_logits.append(y)
        heterogeneous_repr = torch.stack(heterogeneous_repr, dim=1)  # (B, M, (M-1)d)
        heterogeneous_logits = torch.cat(heterogeneous_logits, dim=-1)  # (B, M)

        # 5. Coarse-grained distillation: the two GD graphs.
        homogeneous_edges = self._distill(
            "homogeneous", homogeneous_logits, homogeneous_repr, present)
        heterogeneous_edges = self._distill(
            "heterogeneous", heterogeneous_logits, heterogeneous_repr, present)

        # 6. Fine-grained distillation: the dictionaries.
        homogeneous_dictionary = heterogeneous_dictionary = None
        if self.homogeneous_dictionary is not None:
            homogeneous_dictionary = self.homogeneous_dictionary(decoupled.shared, lengths)
            heterogeneous_dictionary = self.heterogeneous_dictionary(memory, lengths)

        # 7. Fusion.
        fusion = [
            torch.sigmoid(linear(g)) * keep[:, m]
            for m, (linear, g) in enumerate(zip(self.fusion_heterogeneous, pooled, strict=True))
        ]  # M x (B, (M-1)d)
        fusion.append(torch.sigmoid(self.fusion_shared(shared_fusion)))  # (B, M*d)
        for dictionary in (homogeneous_dictionary, heterogeneous_dictionary):
            if dictionary is not None:
                fusion.append((dictionary.feature * keep).flatten(1))  # (B, M*C)
        prediction = self.fusion_head(torch.cat(fusion, dim=-1))[1].squeeze(-1)  # (B,)

        return DHMDOutput(
            prediction=prediction,
            homogeneous_logits=homogeneous_logits,
            heterogeneous_logits=heterogeneous_logits,
            shared_logit=shared_logit,
            homogeneous_repr=homogeneous_repr,
            heterogeneous_repr=heterogeneous_repr,
            margin_embedding=margin_embedding,
            homogeneous_edges=homogeneous_edges,
            heterogeneous_edges=heterogeneous_edges,
            homogeneous_dictionary=homogeneous_dictionary,
            heterogeneous_dictionary=heterogeneous_dictionary,
            decoupled=decoupled,
            present=present,
        )

    def _distill(self, space: str, logits: Tensor, reprs: Tensor, present: Tensor) -> GraphEdges:
        """Runs the GD-Unit of ``space`` on ``(B, M)`` logits and ``(B, M, F)`` reprs."""
        layer = getattr(self, f"{space}_graph")
        batch_size, num_modalities = logits.shape
        graph = modality_graph(num_modalities, batch_size, self.config.edge_pairs(space),
                               device=logits.device)
        edge_index = restrict_to_present(graph.edge_index, present)
        _, (edge_index, weight) = layer(
            logits.reshape(-1, 1), reprs.flatten(0, 1), edge_index, graph.batch, graph.modality,
            return_edge_weights=True,
        )
        prior = layer.prior_weight(edge_index, graph.batch, graph.modality)
        return GraphEdges(edge_index, weight, prior)

    def _inputs(self, batch: MultimodalBatch) -> list[tuple[Tensor, Tensor]]:
        """Each modality's input ``(B, T, d_m)`` (or ``(B, T)`` ids) and ``(B,)`` lengths:
        zero-padded to ``sequence_length`` where set, and with every step counted as
        valid where ``length_mask`` is off (as the reference sees its inputs)."""
        inputs = []
        for modality in self.config.modalities:
            x, length = batch.features[modality.name], batch.lengths[modality.name]
            target = modality.sequence_length
            if target is not None:
                if x.shape[1] > target:
                    raise DatasetError(
                        "batch longer than the configured sequence length",
                        field=modality.name,
                        expected=f"at most modalities.{modality.name}.sequence_length={target} "
                                 "steps", found=f"{x.shape[1]} steps",
                        fix=f"Set modalities.{modality.name}.sequence_length to the data's "
                            "padded length")
                padding = (0, 0) * (x.dim() - 2) + (0, target - x.shape[1])
                x = F.pad(x, padding)  # (B, T_m, ...) zero steps appended
            if not modality.length_mask:
                length = torch.full_like(length, x.shape[1])
            inputs.append((x, length))
        return inputs

    def _present(self, batch: MultimodalBatch, present: Tensor | None) -> Tensor:
        """``(B, M)`` bool: the given mask (default all), with modality dropout in
        training that never drops all of a sample's modalities."""
        shape = (len(batch), len(self.modalities))
        if present is None:
            present = torch.ones(shape, dtype=torch.bool, device=batch.labels.device)
        elif present.dtype != torch.bool or tuple(present.shape) != shape:
            raise ValueError(f"DHMD.forward: present must be a bool tensor of shape {shape} "
                             f"(batch, modalities {self.modalities}), found {present.dtype} "
                             f"{tuple(present.shape)}.")
        elif not bool(present.any(dim=1).all()):
            raise ValueError("DHMD.forward: every sample needs at least one present modality; "
                             f"samples {present.any(dim=1).logical_not().nonzero().flatten().tolist()} "
                             "have none.")
        rate = self.config.modality_dropout
        if self.training and rate > 0:
            kept = present & (torch.rand(shape, device=present.device) >= rate)
            present = torch.where(kept.any(dim=1, keepdim=True), kept, present)
        return present

    def _check_batch(self, batch: MultimodalBatch) -> None:
        for modality in self.config.modalities:
            name = modality.name
            if name not in batch.features:
                raise DatasetError(
                    "batch lacks a modality of the model", field=name,
                    expected=f"modalities {list(self.modalities)}",
                    found=f"{list(batch.features)}",
                    fix="Configure the model for the dataset's modalities")
            x = batch.features[name]
            if modality.input_dim is None:
                good, expected = x.dim() == 2 and not x.is_floating_point(), "(B, T) token ids"
            else:
                good = x.dim() == 3 and x.is_floating_point() and x.shape[-1] == modality.input_dim
                expected = f"(B, T, {modality.input_dim}) float features"
            if not good:
                raise DatasetError(
                    "batch features do not match the model's configuration", field=name,
                    expected=expected, found=f"{x.dtype} of shape {tuple(x.shape)}",
                    fix=f"Set modalities.{name}.input_dim to the data's feature width")

    def edge_weight_means(self, output: DHMDOutput) -> dict[str, Tensor]:
        r"""Detached batch means of the learned edge weight :math:`E` (prior part
        excluded) per edge type, named ``'edge/<space>/<teacher>-><student>'``, averaged
        over the samples that have the edge."""
        names = self.modalities
        num_modalities = len(names)
        batch_size = output.present.shape[0]
        graph = modality_graph(num_modalities, batch_size, device=output.prediction.device)
        means = {}
        for space in SPACES:
            edges: GraphEdges = getattr(output, f"{space}_edges")
            teacher, student = edges.edge_index
            edge_type = graph.modality[teacher] * num_modalities + graph.modality[student]
            mean = scatter(edges.learned.detach(), edge_type, dim=0,
                           dim_size=num_modalities * num_modalities, reduce="mean")
            pairs = self.config.edge_pairs(space) or [
                (t, s) for t in range(num_modalities) for s in range(num_modalities) if t != s
            ]
            for t, s in sorted(pairs):
                means[f"edge/{space}/{edge_name(names[t], names[s])}"] = mean[t * num_modalities + s]
        return means

    def training_step(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Forward and :func:`dhmd_objective`: ``'loss'`` (differentiable total), the
        other terms (detached) and :meth:`edge_weight_means`."""
        output = self(batch)
        terms = dhmd_objective(output, batch, self.config)
        logs = {k: (v if k == "loss" else v.detach()) for k, v in terms.items()}
        return logs | self.edge_weight_means(output)

    @torch.no_grad()
    def validation_step(self, batch: MultimodalBatch) -> Tensor:
        """``(B,)`` predictions (no gradient; the caller sets eval mode)."""
        return self(batch).prediction

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(modalities={list(self.modalities)}, "
                f"width={self.config.width}, atoms={self.config.dictionary.atoms})")


def dhmd_objective(output: DHMDOutput, batch: MultimodalBatch, config: DHMDConfig) -> dict[str, Tensor]:
    r"""The DHMD training objective (SPEC §6), as named unweighted terms plus the
    weighted total ``'loss'``:

    .. math::
        \mathcal{L} = w_{task}\mathcal{L}_{task}
        + \sum_{s \in \{hom, het\}} \left[ w^s_{GD}\left(w^s_{logit}\mathcal{L}^s_{logit}
        + w^s_{repr}\mathcal{L}^s_{repr} + w^s_{reg}\mathcal{L}^s_{reg}\right)
        + \lambda_{dict}\left(\mathcal{L}^s_{match} + \mathcal{L}^s_{token}
        + w_{use}\mathcal{L}^s_{use}\right)\right]
        + w_{rec}\mathcal{L}_{rec} + w_{cyc}\mathcal{L}_{cyc}
        + w_{mar}\mathcal{L}_{mar} + w_{ort}\mathcal{L}_{ort}.

    :math:`\mathcal{L}_{task}` is the L1 loss on :math:`\hat{y}`, :math:`y_c` and every
    present :math:`y^{hom}_m`, :math:`y^{het}_m`. :math:`\mathcal{L}^s_{repr}` enters
    only with ``use_repr_term``, :math:`\mathcal{L}^s_{reg}` only with a prior, the
    dictionary terms only with ``atoms > 0`` (the token-level one with
    ``token_level``). Absent modalities are masked from every term. The dictionary
    matching uses the graph's edge weights **detached**: the coarse graph decides who
    teaches whom, the fine stage does not steer it.

    Keys: ``'task'``, ``'reconstruction'``, ``'cycle'``, ``'orthogonality'``,
    ``'margin'``, ``'gd/<space>/logit'``, ``'gd/<space>/repr'``, ``'gd/<space>/reg'``,
    ``'dict/<space>/match'``, ``'dict/<space>/token'``, ``'dict/<space>/usage'`` (those
    that apply) and ``'loss'``.
    """
    labels, present = batch.labels, output.present
    batch_size, num_modalities = present.shape
    weights, decoupled = config.loss, output.decoupled
    terms = {
        "task": task_loss(output.prediction, labels) + task_loss(output.shared_logit, labels)
        + task_loss(output.homogeneous_logits, labels, present)
        + task_loss(output.heterogeneous_logits, labels, present),
        "reconstruction": self_regression_loss(
            decoupled.reconstructed, decoupled.projected, decoupled.lengths, present),
        "cycle": self_regression_loss(
            decoupled.private_recoded, decoupled.private, decoupled.lengths, present),
        "orthogonality": orthogonality_loss(
            decoupled.private, decoupled.shared, decoupled.lengths, present),
        "margin": margin_loss(output.margin_embedding, labels, present, weights.margin_scale,
                              weights.margin_reduction),
    }
    total = (weights.task * terms["task"] + weights.reconstruction * terms["reconstruction"]
             + weights.cycle * terms["cycle"] + weights.orthogonality * terms["orthogonality"]
             + weights.margin * terms["margin"])

    graph = modality_graph(num_modalities, batch_size, device=labels.device)
    dictionary_config = config.dictionary
    for space in SPACES:
        graph_config = getattr(config, f"{space}_graph")
        edges: GraphEdges = getattr(output, f"{space}_edges")
        logits = getattr(output, f"{space}_logits").reshape(-1, 1)  # (N, 1)
        distill = {"edge_index": edges.edge_index, "edge_weight": edges.weight,
                   "batch": graph.batch, "num_graphs": batch_size}
        terms[f"gd/{space}/logit"] = graph_distillation_loss(
            logits, metric=graph_config.logit_metric, **distill)
        gd = graph_config.logit_weight * terms[f"gd/{space}/logit"]
        if graph_config.use_repr_term:
            reprs = getattr(output, f"{space}_repr").flatten(0, 1)  # (N, F)
            terms[f"gd/{space}/repr"] = graph_distillation_loss(
                reprs, metric=graph_config.repr_metric, reduction=graph_config.repr_reduction,
                modality=graph.modality, **distill)
            gd = gd + graph_config.repr_weight * terms[f"gd/{space}/repr"]
        if edges.prior is not None:
            terms[f"gd/{space}/reg"] = prior_regularization(
                edges.learned, edges.prior, edges.edge_index, graph.batch, batch_size,
                graph.modality)
            gd = gd + graph_config.regularizer_weight * terms[f"gd/{space}/reg"]
        total = total + graph_config.weight * gd

        dictionary: DictionaryOutput | None = getattr(output, f"{space}_dictionary")
        if dictionary is None:
            continue
        activation = dictionary.activation.flatten(0, 1)  # (N, K)
        matching = {**distill, "edge_weight": edges.weight.detach()}
        fine = terms[f"dict/{space}/match"] = dictionary_matching_loss(
            activation, dictionary.log_activation.flatten(0, 1), **matching)
        if dictionary_config.token_level:
            terms[f"dict/{space}/token"] = dictionary_matching_loss(
                activation, dictionary.token_log_activation.flatten(0, 1), **matching)
            fine = fine + terms[f"dict/{space}/token"]
        terms[f"dict/{space}/usage"] = dictionary_usage_loss(dictionary.activation, present)
        fine = fine + dictionary_config.usage_weight * terms[f"dict/{space}/usage"]
        total = total + dictionary_config.weight * fine

    terms["loss"] = total
    return terms
