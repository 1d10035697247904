r"""DHMD: Decoupled Hierarchical Multimodal Distillation.

One batch flows through :meth:`DHMD.forward` in the order of the method's framework
figure: temporal projection → decoupling (homogeneous / heterogeneous, with
self-regression) → the homogeneous space → the heterogeneous space → fusion. Each
space is one :class:`~dhmd_graph.nn.DecoupledSpace` (heads → GD-Unit → modality-shared
dictionary → fusion blocks). The objective is the pure function :func:`dhmd_objective`;
:meth:`DHMD.training_step`, :meth:`DHMD.predict_step` and
:meth:`DHMD.configure_optimizers` are all a generic trainer needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from dhmd_graph.checkpoint import check_state_dict, load_checkpoint
from dhmd_graph.config import DHMDConfig, ModalityConfig, config_from_dict, edge_name
from dhmd_graph.data.batch import MultimodalBatch, MultimodalDataset
from dhmd_graph.errors import CheckpointError, ConfigError, DatasetError
from dhmd_graph.fields import first_difference
from dhmd_graph.losses import (
    dictionary_contrastive_loss,
    dictionary_usage_loss,
    edge_target_loss,
    graph_distillation_loss,
    margin_loss,
    orthogonality_loss,
    prior_regularization,
    self_regression_loss,
    supervised_contrastive_loss,
    task_errors,
    task_loss,
)
from dhmd_graph.nn.dictionary import ModalitySharedDictionary
from dhmd_graph.nn.distill import DynamicGraphDistill
from dhmd_graph.nn.encoders import (
    DecoupledFeatures,
    Decoupling,
    FlattenHead,
    ResidualHead,
    TemporalProjection,
)
from dhmd_graph.nn.graph import modality_graph
from dhmd_graph.nn.masking import MaskedPooling, length_mask
from dhmd_graph.nn.space import DecoupledSpace, SpaceOutput
from dhmd_graph.nn.transformer import StackedTransformer
from dhmd_graph.nn.word_vectors import load_word_vectors, vector_width
from dhmd_graph.tasks import task_spec

__all__ = ["DHMD", "DHMDOutput", "dhmd_objective"]

SPACES = ("homogeneous", "heterogeneous")


class DHMDOutput(NamedTuple):
    r"""Everything :meth:`DHMD.forward` computes that a loss or an inspection needs.

    Attributes:
        prediction (Tensor): ``(B,)`` the fused prediction :math:`\hat{y}` (a score, or
            the logit of ``task="binary"``), or ``(B, C)`` the class or label logits
            (``task="multiclass"`` / ``"multilabel"``).
        homogeneous (SpaceOutput): The homogeneous space: logits :math:`y^{hom}_m`,
            representations :math:`\mathbf{r}_m` ``(B, M, d)``, GD outputs
            :math:`\hat{\mathbf{x}}^{com}_m`, edges, dictionary output, fusion blocks.
        heterogeneous (SpaceOutput): The heterogeneous space: :math:`y^{het}_m`,
            :math:`\mathbf{z}_m` ``(B, M, (M-1) d)``, GD outputs
            :math:`\hat{\mathbf{z}}^{prt}_m`, and the rest as above.
        shared_logit (Tensor): ``(B,)`` or ``(B, C)``, as :attr:`prediction`,
            :math:`y_c` from the self-attended homogeneous features of all modalities.
        margin_embedding (Tensor or None): ``(B, M, d)`` the vectors the margin loss
            compares: :math:`r_m` (``loss.margin_embedding="pooled"``) or the
            flattened-:math:`c_m` embeddings of the reference (``"flatten"``);
            :obj:`None` with ``loss.use_margin=false``.
        decoupled (DecoupledFeatures): Projected, decoupled and self-regressed
            sequences with their lengths.
        present (Tensor): ``(B, M)`` bool, the modalities used for each sample.
    """

    prediction: Tensor
    homogeneous: SpaceOutput
    heterogeneous: SpaceOutput
    shared_logit: Tensor
    margin_embedding: Tensor | None
    decoupled: DecoupledFeatures
    present: Tensor

    @property
    def spaces(self) -> dict[str, SpaceOutput]:
        """The two spaces' outputs keyed ``"homogeneous"`` and ``"heterogeneous"``."""
        return {"homogeneous": self.homogeneous, "heterogeneous": self.heterogeneous}


class DHMD(nn.Module):
    r"""Decoupled Hierarchical Multimodal Distillation (DHMD) for multimodal
    sentiment and emotion recognition, for any :math:`M \ge 2` named modalities, as in
    the published framework figure (*[pub]*), with our choices where the
    paper is silent (*[open]*, each a config field).

    Every logit (:math:`\hat{y}`, :math:`y_c`, and the per-modality logits of both
    spaces, the GD-Unit nodes') has the width of ``config.task``: one for
    ``regression`` and ``binary``, :math:`C` for ``multiclass`` and ``multilabel``
    (*[ours]*: the paper regresses sentiment only).

    1. **Temporal projection**: per modality a bias-free convolution to width
       :math:`d` (:class:`~dhmd_graph.nn.TemporalProjection`).
    2. **Decoupling**: private (heterogeneous) :math:`\mathbf{s}_m` and shared
       (homogeneous) :math:`\mathbf{c}_m`, with self-regression
       (:class:`~dhmd_graph.nn.Decoupling`). A self-attention encoder per modality
       over :math:`\mathbf{c}_m`, read out and concatenated into
       :math:`\mathbf{c}_{fus}` (:math:`M d`) → :math:`y_c` (DMD's).
    3. **Homogeneous space** (:class:`~dhmd_graph.nn.DecoupledSpace`): per modality
       a head on :math:`\mathbf{c}_m` (a residual head on its pooled readout, or the
       reference's :class:`~dhmd_graph.nn.FlattenHead`) gives :math:`\mathbf{r}_m`
       and :math:`y^{hom}_m`; the GD-Unit
       (:class:`~dhmd_graph.nn.DynamicGraphDistill`) outputs features
       :math:`\hat{\mathbf{x}}^{com}_m`; the modality-shared dictionary
       (:class:`~dhmd_graph.nn.ModalitySharedDictionary`) reconstructs them,
       :math:`\hat{\hat{\mathbf{x}}}^{com}_m`; the space's fusion blocks read both.
    4. **Heterogeneous space**: a cross-modal transformer for every ordered pair
       (target :math:`m` ← source :math:`n`); per target the :math:`M - 1` outputs
       are concatenated, run through a memory encoder and read out to
       :math:`\mathbf{g}_m` (:math:`(M-1) d`); then the same space module: a residual
       head gives :math:`\mathbf{z}_m` and :math:`y^{het}_m`, the GD-Unit
       :math:`\hat{\mathbf{z}}^{prt}_m`, the dictionary
       :math:`\hat{\hat{\mathbf{z}}}^{prt}_m`. The transformers of all pairs (and of
       all modalities) run together as one :class:`~dhmd_graph.nn.StackedTransformer`.
    5. **Fusion** (``fusion="dhmd"``): the two spaces' blocks
       :math:`[\sigma(\mathbf{W}[\hat{\mathbf{x}}_m \Vert \hat{\hat{\mathbf{x}}}_m])]_m`
       and :math:`\sigma(\mathbf{W}_c \mathbf{c}_{fus})` → residual head →
       :math:`\hat{y}`. ``fusion="dmd"`` is DMD's:
       :math:`[\sigma(\mathbf{W}_m \mathbf{g}_m)]_m \Vert \sigma(\mathbf{W}_c
       \mathbf{c}_{fus})`.

    Every difference from the DMD reference code is a switch of the config (see
    :func:`~dhmd_graph.config.preset` with ``reference="dmd"``).

    Absent modalities (:obj:`present`, or random modality dropout in training) lose
    their graph edges, and every fusion input they could reach is zeroed: their own
    GD outputs, dictionary outputs and fusion blocks, their chunk of
    :math:`\mathbf{c}_{fus}`, and the cross-modal outputs they are the source of. So a
    sample's prediction does not depend on the features of its absent modalities.

    A modality with ``bert_path`` reads BERT tokens ``(B, T, 3)`` through a
    :class:`~dhmd_graph.nn.BertTextEncoder` inside its temporal projection, trained with
    the model when ``bert_finetune`` (the reference's ``use_bert`` and ``use_finetune``).

    Args:
        config (DHMDConfig): The whole configuration.
        pretrained (bool, optional): Load the weights of every ``bert_path`` folder;
            :obj:`False` builds BERT from its ``config.json`` alone, for a checkpoint to
            fill (what :meth:`from_checkpoint` does). (default: :obj:`True`)

    Shapes:
        - **input:** a :class:`~dhmd_graph.data.MultimodalBatch` with the configured
          modalities, ``present`` :math:`(B, M)` bool *(optional)*
        - **output:** :class:`DHMDOutput`
    """

    def __init__(self, config: DHMDConfig, *, pretrained: bool = True) -> None:
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

        for m in config.modalities:
            if m.word_vectors is not None and m.input_dim is not None:
                raise ConfigError(f"DHMD: modalities.{m.name}.word_vectors starts a token "
                                 f"embedding, but '{m.name}' reads features of width "
                                 f"{m.input_dim}; use it with token ids (input_dim=None), or "
                                 "drop it.")
            if m.bag_of_words and m.input_dim is not None:
                raise ConfigError(f"DHMD: modalities.{m.name}.bag_of_words reads token ids, "
                                  f"but '{m.name}' reads features of width {m.input_dim}; use "
                                  "it with token ids (input_dim=None), or drop it.")
        # 1-2. Projection, decoupling, and the homogeneous self-attention summary c_fus.
        self.projections = nn.ModuleList(
            TemporalProjection(m.input_dim, width, m.kernel_size, m.vocab_size, m.embedding_dim,
                               dropout=m.input_dropout,
                               text_encoder=self._text_encoder(m, pretrained),
                               freeze_embedding=m.word_vectors is not None
                               and not m.word_vectors_finetune,
                               bag_of_words=m.bag_of_words)
            for m in config.modalities
        )
        self.decoupling = Decoupling(num_modalities, width)
        self.margin_embeddings = None
        if config.loss.use_margin and config.loss.margin_embedding == "flatten":
            # the reference's Linear(d T' -> d)
            self.margin_embeddings = nn.ModuleList(
                nn.Linear(width * m.projected_length, width) for m in config.modalities
            )
        self.shared_encoders = StackedTransformer(
            num_modalities, width, heads, encoder.num_layers, attention_dropout=key_dropout,
            **attention)
        self.shared_pools = nn.ModuleList(
            MaskedPooling(width, encoder.pooling) for _ in config.modalities
        )
        outputs = config.output_channels  # C logits, or 1 (regression, binary)
        self.shared_head = ResidualHead(num_modalities * width, outputs,
                                        dropout=encoder.output_dropout)

        # 4. The heterogeneous transformers: pair (target, source) for every ordered pair.
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

        # 3-4. The two decoupled spaces.
        if encoder.homogeneous_head == "pooled":
            homogeneous_readouts = [MaskedPooling(width, encoder.pooling)
                                    for _ in config.modalities]
            homogeneous_heads = [ResidualHead(width, outputs, dropout=encoder.output_dropout)
                                 for _ in config.modalities]
        else:  # the reference's length-bound head reads the whole sequence
            homogeneous_readouts = None
            homogeneous_heads = [
                FlattenHead(m.projected_length, width, outputs, dropout=encoder.output_dropout,
                            name=f"homogeneous head of '{m.name}'")
                for m in config.modalities
            ]
        dmd_fusion = config.fusion == "dmd"
        self.spaces = nn.ModuleDict({
            "homogeneous": self._space(
                "homogeneous", width, homogeneous_heads, homogeneous_readouts,
                fusion="none" if dmd_fusion else "features"),
            "heterogeneous": self._space(
                "heterogeneous", heterogeneous_width,
                [ResidualHead(heterogeneous_width, outputs, dropout=encoder.output_dropout)
                 for _ in config.modalities],
                [MaskedPooling(heterogeneous_width, encoder.pooling) for _ in config.modalities],
                fusion="readout" if dmd_fusion else "features"),
        })

        # 5. Fusion.
        self.fusion_shared = nn.Linear(num_modalities * width, num_modalities * width)
        fusion_width = (sum(space.fusion_channels for space in self.spaces.values())
                        + num_modalities * width)
        self.fusion_head = ResidualHead(fusion_width, outputs, dropout=encoder.output_dropout)

        # The training batches seen, for an annealed prior (its factor alpha, below).
        if any(g.prior_schedule != "constant" and g.prior is not None
               for g in config.graphs.values()):
            self.register_buffer("training_batches", torch.zeros((), dtype=torch.long))
        else:
            self.training_batches = None

    def load_word_vectors(self, vocabulary: Sequence[str]) -> dict[str, float]:
        r"""Start the token embedding of every modality with ``word_vectors`` from its file,
        for the words of ``vocabulary`` (see :mod:`~dhmd_graph.nn.word_vectors`).

        Call it once on a new model, before training; a model restored from a checkpoint
        already holds its trained embedding.

        Args:
            vocabulary (Sequence[str]): The dataset's words by token id (id 0 padding,
                id 1 unknown), e.g. ``datasets["train"].vocabulary``.

        Returns:
            dict[str, float]: Per such modality, the share of the vocabulary's words
            found in the file (:func:`~dhmd_graph.nn.word_vectors.coverage_line` says it
            in words).

        Raises:
            ConfigError: A vocabulary larger than the embedding, or vectors of another width
                than ``embedding_dim``.
            DatasetError: A missing or malformed vectors file.
        """
        coverage = {}
        for modality, projection in zip(self.config.modalities, self.projections, strict=True):
            if modality.word_vectors is None:
                continue
            where = f"modalities.{modality.name}"
            width = vector_width(modality.word_vectors)
            if width != modality.embedding_dim:
                raise ConfigError(f"DHMD.load_word_vectors: {where}.embedding_dim is "
                                 f"{modality.embedding_dim}, but the vectors in "
                                 f"'{modality.word_vectors}' have {width} values; set "
                                 f"{where}.embedding_dim={width}.")
            if len(vocabulary) > modality.vocab_size:
                raise ConfigError(f"DHMD.load_word_vectors: the vocabulary has {len(vocabulary)} "
                                 f"words, more than {where}.vocab_size={modality.vocab_size}; "
                                 "build the model for this dataset (fit_inputs).")
            vectors, coverage[modality.name] = load_word_vectors(modality.word_vectors,
                                                                 vocabulary)
            projection.load_embedding(vectors)
        return coverage

    def fit_bag_of_words(self, dataset: MultimodalDataset) -> None:
        r"""Fit the inverse document frequencies of every modality with ``bag_of_words``
        on ``dataset`` (the training split), as
        :func:`~dhmd_graph.data.transforms.inverse_document_frequency` computes them.

        Call it once on a new model, before training (``dhmd train`` does); a model
        restored from a checkpoint holds its own.

        Raises:
            ConfigError: A token id of the data at or above the modality's ``vocab_size``.
        """
        from dhmd_graph.data.transforms import inverse_document_frequency

        for modality, projection in zip(self.config.modalities, self.projections, strict=True):
            if modality.bag_of_words:
                idf = inverse_document_frequency(dataset, modality.name, modality.vocab_size)
                projection.set_idf(torch.as_tensor(idf, dtype=projection.idf.dtype))

    @staticmethod
    def _text_encoder(modality: ModalityConfig, pretrained: bool) -> nn.Module | None:
        """The BERT encoder of a modality with ``bert_path`` (:obj:`None` without)."""
        if modality.bert_path is None:
            return None
        from dhmd_graph.nn.text import BertTextEncoder  # needs the bert extra

        return BertTextEncoder(modality.bert_path, finetune=modality.bert_finetune,
                               pretrained=pretrained)

    def _space(self, space: str, channels: int, heads: list[nn.Module],
               readouts: list[nn.Module] | None, fusion: str) -> DecoupledSpace:
        """The :class:`DecoupledSpace` ``space`` on ``channels``-wide representations."""
        graph, dictionary = self.config.graphs[space], self.config.dictionary
        out_channels = graph.out_channels if graph.propagate else None
        unit = DynamicGraphDistill(
            self.config.output_channels, channels, graph.hidden_channels,
            temperature=graph.temperature, normalize=graph.normalize,
            prior=self.config.prior_matrix(space), prior_temperature=graph.prior_temperature,
            out_channels=out_channels, root_weight=graph.root_weight,
            detach_teacher=graph.detach_teacher, scorer=graph.scorer,
            # temporal_statistics of the space's (B, T, channels) sequences: 3 per channel
            context_channels=3 * channels if graph.scorer_input == "statistics" else None,
        )
        shared = None
        if dictionary.atoms > 0:
            shared = ModalitySharedDictionary(
                out_channels or channels, dictionary.atoms,
                atom_channels=dictionary.atom_channels, temperature=dictionary.temperature,
                activation=dictionary.activation)
        return DecoupledSpace(heads, unit, shared, readouts=readouts,
                              edges=self.config.edge_pairs(space), propagate=graph.propagate,
                              fusion=fusion, readout_channels=channels)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, expected: Mapping | None = None
                        ) -> tuple[DHMD, dict]:
        r"""The model of a checkpoint written by ``dhmd train``, in evaluation mode on the
        CPU, and the checkpoint's meta.

        The checkpoint is untrusted input: it is read by
        :func:`~dhmd_graph.checkpoint.load_checkpoint` (``weights_only``, no TorchScript,
        no zip bomb); its model configuration must be valid; and its tensors must have
        the shapes of that configuration, compared on a model built on the ``meta``
        device (which allocates nothing), before the real model is built. So a
        checkpoint that declares a huge model is refused without allocating it. A whole
        run (every seed, checked against its ``config.json``) is
        :class:`~dhmd_graph.trained.TrainedRun`.

        Args:
            path (str or PathLike): A ``best.pt`` or ``last.pt`` file.
            expected (Mapping, optional): The model configuration (as plain data) the
                checkpoint must declare, e.g. its run's ``config.json`` model.
                (default: :obj:`None`, any)

        Returns:
            tuple[DHMD, dict]: The model, and the checkpoint's ``meta`` (``preset``,
            ``aligned``, ``data``, ``model``) with its ``epoch`` and ``seed`` added.

        Raises:
            CheckpointError: The checkpoint is unreadable, unsafe, not of this model, or
                declares another model than ``expected``.
        """
        state = load_checkpoint(path, keys=("model", "meta"))
        meta = state["meta"]
        if not (isinstance(meta, dict) and isinstance(meta.get("model"), dict)):
            raise CheckpointError(path, "it was not written by 'dhmd train': its meta has no "
                                  "model configuration, so the model cannot be rebuilt")
        for key in ("preset", "data"):
            if not isinstance(meta.get(key), (str, type(None))):
                raise CheckpointError(path, f"its meta '{key}' is {meta[key]!r}, not a string")
        difference = None if expected is None else first_difference(dict(expected),
                                                                    meta["model"])
        if difference:
            key, wanted, found = difference
            raise CheckpointError(path, f"it declares a model other than the run's config.json "
                                  f"({key}: {found!r} instead of {wanted!r})")
        try:
            config = config_from_dict(meta["model"])
        except ConfigError as error:
            raise CheckpointError(path, f"its model configuration is invalid: {error}") from None
        with torch.device("meta"):
            skeleton = cls(config, pretrained=False)
        check_state_dict(skeleton, state["model"], path)
        model = cls(config, pretrained=False)  # a BERT's weights come from the checkpoint
        model.load_state_dict(state["model"])
        return model.eval(), dict(meta, epoch=state.get("epoch"), seed=state.get("seed"))

    def prior_scales(self) -> dict[str, float | Tensor]:
        r"""Per space the factor :math:`\alpha` of the prior in :math:`w = E + \alpha p`
        and of its regulariser: 1 for a ``"constant"`` prior, :math:`\max(0, 1 - t / T)`
        after :math:`t` training batches for a ``"linear"`` one (``prior_schedule``)."""
        scales: dict[str, float | Tensor] = {}
        for space, graph in self.config.graphs.items():
            if graph.prior_schedule == "constant" or self.training_batches is None:
                scales[space] = 1.0
            else:
                progress = self.training_batches.to(torch.get_default_dtype())
                scales[space] = (1.0 - progress / graph.prior_anneal_steps).clamp_min(0.0)
        return scales

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

        # 3. Homogeneous space, and DMD's self-attended summary c_fus.
        prior_scales = self.prior_scales()
        homogeneous = self.spaces["homogeneous"](decoupled.shared, masks, present,
                                                 prior_scales["homogeneous"])
        shared_encoded = self.shared_encoders(decoupled.shared, lengths)  # M x (B, T'_m, d)
        shared_fusion = torch.cat([
            pool(h, mask) * keep[:, m]
            for m, (h, mask, pool) in enumerate(zip(shared_encoded, masks, self.shared_pools,
                                                    strict=True))
        ], dim=-1)  # (B, M*d)
        shared_logit = self._logits(self.shared_head(shared_fusion)[1])  # (B,) or (B, C)

        # 4. Heterogeneous space, on the cross-modal transformers' memory.
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
        heterogeneous = self.spaces["heterogeneous"](memory, masks, present,
                                                     prior_scales["heterogeneous"])

        # 5. Fusion.
        fusion = [space.fusion for space in (homogeneous, heterogeneous)
                  if space.fusion is not None]
        fusion.append(torch.sigmoid(self.fusion_shared(shared_fusion)))  # (B, M*d)
        prediction = self._logits(self.fusion_head(torch.cat(fusion, dim=-1))[1])  # (B[, C])

        return DHMDOutput(
            prediction=prediction,
            homogeneous=homogeneous,
            heterogeneous=heterogeneous,
            shared_logit=shared_logit,
            margin_embedding=self._margin_embedding(homogeneous, decoupled),
            decoupled=decoupled,
            present=present,
        )

    def _logits(self, y: Tensor) -> Tensor:
        """``(B,)`` for one output (``regression``, ``binary``), else ``(B, C)``."""
        return y.squeeze(-1) if self.config.output_channels == 1 else y

    def _margin_embedding(self, homogeneous: SpaceOutput,
                          decoupled: DecoupledFeatures) -> Tensor | None:
        """``(B, M, d)``: what the margin loss compares (:obj:`None` without it)."""
        if not self.config.loss.use_margin:
            return None
        if self.margin_embeddings is None:
            return homogeneous.representation
        return torch.stack([
            linear(c.transpose(1, 2).flatten(1))  # channel-major flatten of c_m
            for c, linear in zip(decoupled.shared, self.margin_embeddings, strict=True)
        ], dim=1)  # (B, M, d)

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
            device = next(iter(batch.lengths.values())).device
            present = torch.ones(shape, dtype=torch.bool, device=device)
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
        if batch.labels is not None:  # unlabelled batches are predicted on
            self._check_labels(batch.labels)
        for modality in self.config.modalities:
            name = modality.name
            if name not in batch.features:
                raise DatasetError(
                    "batch lacks a modality of the model", field=name,
                    expected=f"modalities {list(self.modalities)}",
                    found=f"{list(batch.features)}",
                    fix="Configure the model for the dataset's modalities")
            x = batch.features[name]
            if modality.bert_path is not None:
                good = x.dim() == 3 and not x.is_floating_point() and x.shape[-1] == 3
                expected = "(B, T, 3) BERT tokens (ids, mask, segments; load_mmsa(text='bert'))"
            elif modality.input_dim is None:
                good, expected = x.dim() == 2 and not x.is_floating_point(), "(B, T) token ids"
            else:
                good = x.dim() == 3 and x.is_floating_point() and x.shape[-1] == modality.input_dim
                expected = f"(B, T, {modality.input_dim}) float features"
            if not good:
                raise DatasetError(
                    "batch features do not match the model's configuration", field=name,
                    expected=expected, found=f"{x.dtype} of shape {tuple(x.shape)}",
                    fix=f"Set modalities.{name}.input_dim to the data's feature width")

    def _check_labels(self, labels: Tensor) -> None:
        """The batch's labels must be those of the configured task (a :class:`DatasetError`
        naming ``labels`` otherwise)."""
        task, classes = self.config.task, self.config.num_classes
        kind = task_spec(task).label_kind
        if kind == "score":
            good, expected = labels.dim() == 1 and labels.is_floating_point(), "(B,) float scores"
        elif kind == "multi_hot":
            good = labels.dim() == 2 and labels.shape[1] == classes
            expected = f"(B, {classes}) multi-hot rows"
        else:
            top = task_spec(task).label_classes(classes)
            good = (labels.dim() == 1 and not labels.is_floating_point()
                    and bool(((labels >= 0) & (labels < top)).all()))
            expected = f"(B,) class indices in [0, {top - 1}]"
        if not good:
            values = labels.unique()[:6].tolist() if labels.numel() else []
            raise DatasetError(
                f"labels do not fit the model's task {task!r}", field="labels",
                expected=expected,
                found=f"{labels.dtype} of shape {tuple(labels.shape)}, values such as {values}",
                fix="Take the task from the data (drop the task/num_classes overrides), or "
                    "train on data with labels of this task")

    def edge_weight_means(self, output: DHMDOutput) -> dict[str, Tensor]:
        r"""Detached batch means of the learned edge weight :math:`E` (prior part
        excluded) per edge type, named ``'edge/<space>/<teacher>-><student>'``, averaged
        over the samples that have the edge."""
        names = self.modalities
        num_modalities = len(names)
        batch_size = output.present.shape[0]
        graph = modality_graph(num_modalities, batch_size, device=output.prediction.device)
        means = {}
        for space, values in output.spaces.items():
            edges = values.edges
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
        terms = dhmd_objective(output, batch, self.config, prior_scales=self.prior_scales())
        if self.training_batches is not None:
            self.training_batches += 1
        logs = {k: (v if k == "loss" else v.detach()) for k, v in terms.items()}
        return logs | self.edge_weight_means(output)

    @torch.no_grad()
    def predict_step(self, batch: MultimodalBatch) -> tuple[Tensor, Tensor]:
        """The fused predictions and the batch's labels (no gradient; the caller sets
        eval mode), as the metrics of :mod:`dhmd_graph.metrics` read them: predictions
        ``(B,)`` scores (``regression``) or logits (``binary``, positive when > 0),
        ``(B, C)`` logits (``multiclass``: argmax; ``multilabel``: positive when > 0);
        labels ``(B,)`` or ``(B, C)`` as in the batch."""
        return self(batch).prediction, batch.labels

    def configure_optimizers(self, config: Any) -> tuple[torch.optim.Optimizer, Any]:
        """Adam over the trainable parameters (``config.lr``, ``config.weight_decay``;
        torch's fused implementation where the parameters allow it) and :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` on the monitored
        validation metric (``config.direction``, ``config.lr_factor``,
        ``config.lr_patience``), the DMD reference's optimisation.

        Args:
            config (TrainConfig): The :class:`~dhmd_graph.train.TrainConfig` of the run.
        """
        parameters = [p for p in self.parameters() if p.requires_grad]
        # torch's fused kernel: the same update in one pass over all parameters, where
        # the default Adam on CPU updates one tensor at a time (about 3x slower at the
        # presets' sizes). It covers floating-point parameters on CPU and CUDA.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                    for p in parameters) or None
        optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay,
                                     fused=fused)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.direction, factor=config.lr_factor,
            patience=config.lr_patience)
        return optimizer, scheduler

    def __repr__(self) -> str:
        classes = self.config.num_classes
        return (f"{type(self).__name__}(modalities={list(self.modalities)}, "
                f"width={self.config.width}, atoms={self.config.dictionary.atoms}, "
                f"fusion={self.config.fusion!r}, task={self.config.task!r}"
                f"{'' if classes is None else f', num_classes={classes}'})")


def dhmd_objective(output: DHMDOutput, batch: MultimodalBatch, config: DHMDConfig, *,
                   prior_scales: Mapping[str, float | Tensor] | None = None
                   ) -> dict[str, Tensor]:
    r"""The DHMD training objective (DMD's terms plus DHMD's contrastive ones), as named
    unweighted terms plus the
    weighted total ``'loss'``:

    .. math::
        \mathcal{L} = w_{task}\mathcal{L}_{task}
        + \sum_{s \in \{hom, het\}} \left[ w^s_{GD}\left(w^s_{logit}\mathcal{L}^s_{logit}
        + w^s_{repr}\mathcal{L}^s_{repr} + w^s_{reg}\mathcal{L}^s_{reg}\right)
        + \lambda\,\mathcal{L}^s_{ctr} + w_{use}\mathcal{L}^s_{use}\right]
        + w_{rec}\mathcal{L}_{rec} + w_{cyc}\mathcal{L}_{cyc}
        + w_{mar}\mathcal{L}_{mar} + w_{ort}\mathcal{L}_{ort}.

    :math:`\mathcal{L}_{task}` is the task's loss (:func:`~dhmd_graph.losses.task_loss`:
    L1 for ``regression``, cross-entropy for ``multiclass``, binary cross-entropy with
    logits for ``multilabel`` and ``binary``, with ``config.class_weights``) on
    :math:`\hat{y}`, :math:`y_c` and every present :math:`y^{hom}_m`, :math:`y^{het}_m`.
    The GD logit terms compare the C-wide logits by ``logit_metric`` (``'kl'``: softened
    softmax distributions for ``multiclass``, Bernoulli ones otherwise); the margin
    loss compares class labels as one-hot vectors and multi-label rows as they are. :math:`\mathcal{L}^s_{repr}` enters
    only with ``use_repr_term``, :math:`\mathcal{L}^s_{reg}` only with a prior (the GD
    losses detach the teacher), the contrastive term :math:`\mathcal{L}^s_{ctr}`
    (InfoNCE on the dictionary reconstructions, *[pub]* in the figure, its form
    *[open]*) only with ``dictionary.atoms > 0``, the usage term only with
    ``dictionary.usage_weight > 0``, the margin term only with ``loss.use_margin``.
    Absent modalities are masked from every term.

    Switches of ours (each off by default): ``<space>_graph.edge_target`` adds
    :math:`w_{edge}\mathcal{L}^s_{edge}` (:func:`~dhmd_graph.losses.edge_target_loss`,
    on the space's nodes' detached task errors); ``loss_trains_weights=false`` detaches
    :math:`w` in the GD terms; an annealed prior multiplies :math:`w_{reg}` by the
    space's :math:`\alpha` of ``prior_scales`` (:meth:`DHMD.prior_scales`; :obj:`None`
    means 1); ``dictionary.contrastive_input`` and ``contrastive_positives`` choose
    what :math:`\mathcal{L}^s_{ctr}` compares and how
    (:func:`~dhmd_graph.losses.supervised_contrastive_loss` for ``"label"``).

    Keys: ``'task'``, ``'reconstruction'``, ``'cycle'``, ``'orthogonality'``,
    ``'margin'``, ``'gd/<space>/logit'``, ``'gd/<space>/repr'``, ``'gd/<space>/reg'``,
    ``'edge/<space>/target'``, ``'ctr/<space>'``, ``'usage/<space>'`` (those that apply)
    and ``'loss'``.
    """
    labels, present = batch.labels, output.present
    if labels is None:
        raise DatasetError("no labels to train on", field="labels",
                           expected="a batch of labelled samples", found="unlabelled samples",
                           fix="Train on labelled data; unlabelled data is for prediction")
    batch_size, num_modalities = present.shape
    weights, decoupled = config.loss, output.decoupled
    task = {"task": config.task, "class_weights": None if config.class_weights is None else
            torch.tensor(config.class_weights, dtype=output.prediction.dtype,
                         device=labels.device)}
    terms = {
        "task": task_loss(output.prediction, labels, **task)
        + task_loss(output.shared_logit, labels, **task)
        + task_loss(output.homogeneous.logits, labels, present, **task)
        + task_loss(output.heterogeneous.logits, labels, present, **task),
        "reconstruction": self_regression_loss(
            decoupled.reconstructed, decoupled.projected, decoupled.lengths, present),
        "cycle": self_regression_loss(
            decoupled.private_recoded, decoupled.private, decoupled.lengths, present),
        "orthogonality": orthogonality_loss(
            decoupled.private, decoupled.shared, decoupled.lengths, present),
    }
    total = (weights.task * terms["task"] + weights.reconstruction * terms["reconstruction"]
             + weights.cycle * terms["cycle"] + weights.orthogonality * terms["orthogonality"])
    label_vectors = (F.one_hot(labels, config.num_classes)
                     if task_spec(config.task).loss == "cross_entropy" else labels)  # (B,) or (B, C): what the label-aware losses compare
    if output.margin_embedding is not None:
        terms["margin"] = margin_loss(output.margin_embedding, label_vectors, present,
                                      weights.margin_scale, weights.margin_reduction)
        total = total + weights.margin * terms["margin"]

    graph = modality_graph(num_modalities, batch_size, device=labels.device)
    dictionary_config = config.dictionary
    for space, values in output.spaces.items():
        graph_config, edges = config.graphs[space], values.edges
        logits = values.logits.reshape(batch_size * num_modalities, -1)  # (N, C)
        edge_weight = edges.weight if graph_config.loss_trains_weights else edges.weight.detach()
        distill = {"edge_index": edges.edge_index, "edge_weight": edge_weight,
                   "batch": graph.batch, "num_graphs": batch_size}
        terms[f"gd/{space}/logit"] = graph_distillation_loss(
            logits, metric=graph_config.logit_metric, **distill,
            temperature=graph_config.logit_temperature,
            activation="softmax" if task_spec(config.task).activation == "softmax"
            else "sigmoid")
        gd = graph_config.logit_weight * terms[f"gd/{space}/logit"]
        if graph_config.use_repr_term:
            reprs = values.representation.flatten(0, 1)  # (N, F)
            terms[f"gd/{space}/repr"] = graph_distillation_loss(
                reprs, metric=graph_config.repr_metric, reduction=graph_config.repr_reduction,
                modality=graph.modality, **distill)
            gd = gd + graph_config.repr_weight * terms[f"gd/{space}/repr"]
        if edges.prior is not None:
            terms[f"gd/{space}/reg"] = prior_regularization(
                edges.learned, edges.prior, edges.edge_index, graph.batch, batch_size,
                graph.modality)
            scale = 1.0 if prior_scales is None else prior_scales[space]
            gd = gd + graph_config.regularizer_weight * scale * terms[f"gd/{space}/reg"]
        total = total + graph_config.weight * gd
        if graph_config.edge_target != "none":
            errors = task_errors(values.logits, labels, **task).flatten()  # (N,) node b M + m
            student = edges.edge_index[1]
            group = graph.batch[student] if graph_config.normalize == "graph" else student
            terms[f"edge/{space}/target"] = edge_target_loss(
                edges.learned, errors, edges.edge_index, group, batch_size, graph.batch,
                graph_config.edge_target, graph_config.edge_target_temperature)
            total = total + graph_config.edge_target_weight * terms[f"edge/{space}/target"]

        if values.dictionary is None:
            continue
        compared = (values.dictionary.reconstruction
                    if dictionary_config.contrastive_input == "reconstruction"
                    else values.representation)  # (B, M, F)
        if dictionary_config.contrastive_positives == "sample":
            terms[f"ctr/{space}"] = dictionary_contrastive_loss(
                compared, present, dictionary_config.contrastive_temperature)
        else:
            terms[f"ctr/{space}"] = supervised_contrastive_loss(
                compared, label_vectors, present, dictionary_config.contrastive_temperature,
                dictionary_config.contrastive_label_tolerance,
                cross_modal=(dictionary_config.contrastive_cross_modal == "both"
                             or space == "homogeneous"))
        total = total + dictionary_config.weight * terms[f"ctr/{space}"]
        if dictionary_config.usage_weight > 0:
            terms[f"usage/{space}"] = dictionary_usage_loss(values.dictionary.activation, present)
            total = total + dictionary_config.usage_weight * terms[f"usage/{space}"]

    terms["loss"] = total
    return terms
