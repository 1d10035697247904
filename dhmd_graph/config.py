r"""Typed configuration of DHMD: one dataclass per component, composed into
:class:`DHMDConfig`.

Every width, head count, kernel, prior, loss weight and switch of the method lives
here, never inline in a module. Configs validate themselves on construction (and
therefore after every :func:`apply_overrides`) and raise a
:class:`~dhmd_graph.errors.ConfigError` that names the class, the field, what was
expected and what was found.

* :func:`config_to_dict` / :func:`config_from_dict` round-trip a config through plain
  JSON-able data (for checkpoints loaded with ``weights_only=True``).
* :func:`apply_overrides` applies dotted command-line overrides such as
  ``"width=40"`` or ``"homogeneous_graph.temperature=4"``
  (:func:`dhmd_graph.fields.apply_overrides` also returns the keys set).
* The settings per benchmark are in :mod:`dhmd_graph.presets`; fitting a config to a
  dataset (input widths, vocabularies, the task) in :mod:`dhmd_graph.experiment`.

Example:
    >>> from dhmd_graph.presets import preset
    >>> cfg = apply_overrides(preset("mosi"), ["encoder.num_layers=2", "dictionary.atoms=0"])
    >>> config_from_dict(config_to_dict(cfg)) == cfg
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from dhmd_graph import fields
from dhmd_graph.errors import ConfigError
from dhmd_graph.fields import check_field_types, from_dict, to_dict
from dhmd_graph.losses import LOGIT_METRICS, MARGIN_REDUCTIONS, METRICS, REPR_REDUCTIONS
from dhmd_graph.nn.dictionary import ACTIVATIONS
from dhmd_graph.nn.distill import NORMALIZATIONS, SCORERS
from dhmd_graph.nn.encoders import HOMOGENEOUS_HEADS
from dhmd_graph.nn.masking import CAUSAL_ALIGNMENTS, POOLINGS
from dhmd_graph.nn.transformer import CROSS_MODAL_NORMS, POSITIONAL_ENCODINGS
from dhmd_graph.tasks import TASKS, task_spec

__all__ = [
    "TASKS",
    "DHMDConfig",
    "DictionaryConfig",
    "EncoderConfig",
    "GraphConfig",
    "LossConfig",
    "ModalityConfig",
    "SmallDataRecipe",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "edge_name",
    "field_error",
    "parse_edge",
]

# The choice lists of the layers are defined once, beside the layer (imported above);
# these two are the model's own (built in dhmd_graph.model).
MarginEmbedding = Literal["pooled", "flatten"]
"""The vectors the margin loss compares (``LossConfig.margin_embedding``)."""
MARGIN_EMBEDDINGS: tuple[str, ...] = get_args(MarginEmbedding)
Fusion = Literal["dhmd", "dmd"]
"""What the fusion network reads (``DHMDConfig.fusion``)."""
FUSIONS: tuple[str, ...] = get_args(Fusion)
SCORER_INPUTS = ("readout", "statistics")
EDGE_TARGETS = ("none", "teacher_error", "error_gain")
PRIOR_SCHEDULES = ("constant", "linear")
CONTRASTIVE_INPUTS = ("reconstruction", "representation")
CONTRASTIVE_POSITIVES = ("sample", "label")
CONTRASTIVE_CROSS_MODAL = ("both", "homogeneous")


def field_error(owner: object, name: str, expected: str, found: object, fix: str) -> ConfigError:
    """The :class:`~dhmd_graph.errors.ConfigError` of a bad field: ``Class.field``, what
    was expected, what was found, and the fix."""
    return ConfigError(
        f"{type(owner).__name__}.{name}: expected {expected}, found {found!r}. {fix}."
    )


def _check_positive(owner: object, name: str, integer: bool = False) -> None:
    value = getattr(owner, name)
    if integer and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise field_error(owner, name, "an integer >= 1", value, f"Set {name} to a positive integer")
    if not integer and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise field_error(owner, name, "a finite number > 0", value, f"Set {name} to a positive number")


def _check_weight(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise field_error(owner, name, "a finite number >= 0", value, "Loss weights cannot be negative")


def _check_dropout(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise field_error(owner, name, "a probability in [0, 1)", value, "Use 0 to disable dropout")


def _check_bool(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not isinstance(value, bool):
        raise field_error(owner, name, "true or false", value, f"Set {name} to a boolean")


def _check_choice(owner: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(owner, name)
    if value not in choices:
        raise field_error(owner, name, f"one of {choices}", value, "Pick one of the listed values")


def edge_name(teacher: str, student: str) -> str:
    """The name ``"teacher->student"`` of a distillation edge."""
    return f"{teacher}->{student}"


def parse_edge(name: str) -> tuple[str, str]:
    """Splits ``"teacher->student"`` into ``(teacher, student)``."""
    teacher, arrow, student = name.partition("->")
    if not arrow or not teacher or not student or "->" in student:
        raise ConfigError(
            f"edge name: expected 'teacher->student' (e.g. 'text->audio'), found {name!r}."
        )
    return teacher, student


INPUT_FIELDS = ("input_dim", "vocab_size")
"""The fields of :class:`ModalityConfig` taken from the data
(:func:`dhmd_graph.experiment.fit_inputs`)."""


@dataclass
class ModalityConfig:
    r"""One input modality.

    Args:
        name (str): The modality's name, as in the batch (e.g. ``"text"``).
        input_dim (int, optional): Feature width :math:`d_m` of float inputs
            ``(B, T, d_m)``; :obj:`None` for token ids ``(B, T)``, which go through a
            learned embedding first. (default: :obj:`None`)
        kernel_size (int, optional): Kernel :math:`k_m` of the temporal projection
            (a sequence of true length :math:`L` becomes :math:`\max(L - k + 1, 1)`
            steps). (default: :obj:`1`)
        vocab_size (int, optional): Vocabulary size of token ids (id 0 is padding);
            required when :obj:`input_dim` is :obj:`None`. (default: :obj:`None`)
        embedding_dim (int, optional): Width of the learned token embedding.
            (default: :obj:`300`)
        sequence_length (int, optional): The padded length :math:`T_m` the data is
            stored with. When set, every batch is zero-padded to it (a longer batch is
            an error). The reference builds its homogeneous heads and margin
            embeddings for this one length (``encoder.homogeneous_head='flatten'`` and
            ``loss.margin_embedding='flatten'`` need it): 50 for every aligned
            modality, 50 / 375 / 500 (MOSI) and 50 / 500 / 500 (MOSEI) for unaligned
            text / audio / vision. (default: :obj:`None`, no fixed length)
        length_mask (bool, optional): Mask the padded steps by the true lengths in
            every attention, pooling and loss (ours; never by all-zero frames). :obj:`False`
            treats every step of the padded input as valid, as the reference does for all
            modalities (docs/guide/dmd.md, difference 9: it never reads a length; in
            aligned data only the text is padded). Our datasets crop each sample to its true
            length and pad batches with zeros, so the padded steps hold zeros (as in MMSA
            audio and vision and in our synthetic files). (default: :obj:`True`)
        input_dropout (float, optional): Dropout on the input features before the
            temporal projection. The reference drops the text features (``text_dropout``:
            MOSI 0.5, MOSEI 0.3) and nothing else (docs/guide/dmd.md, difference
            10); ours is off.
            (default: :obj:`0.0`)
        attention_dropout (float, optional): Dropout on the attention weights of every
            attention whose keys and values come from this modality: its homogeneous
            self-attention encoder and the cross-modal transformers it is the source
            of. :obj:`None` uses ``encoder.attention_dropout``, one rate for all (ours).
            The reference sets one rate per source modality (``attn_dropout`` for text
            and the memory encoders, ``attn_dropout_a``, ``attn_dropout_v``;
            docs/guide/dmd.md, difference 10). (default: :obj:`None`)
        bert_path (str, optional): A local folder with a BERT model (``config.json``
            and weights, see :class:`~dhmd_graph.nn.BertTextEncoder`). The modality's
            input is then BERT token ids ``(B, T, 3)`` (ids, attention mask, segment
            ids; MMSA's ``text_bert``, read with ``load_mmsa(..., text="bert")``), and
            BERT's last hidden state enters the temporal projection, as in the reference
            (its ``use_bert``). Needs the ``bert`` extra; ``input_dim`` and
            ``vocab_size`` stay :obj:`None` (the width is BERT's hidden size). A model
            restored from a checkpoint reads only ``config.json`` there.
            (default: :obj:`None`, no BERT)
        bert_finetune (bool, optional): With ``bert_path``, train BERT with the rest of
            the model (the reference's ``use_finetune``); :obj:`False` freezes it.
            (default: :obj:`True`)
        word_vectors (str, optional): For token ids, a local GloVe, word2vec (text) or
            fastText ``.vec`` file whose vectors start the token embedding, row by row
            for the words of the dataset's vocabulary (see
            :mod:`~dhmd_graph.nn.word_vectors`); ``embedding_dim`` must be the file's
            width. The model reads it in :meth:`DHMD.load_word_vectors
            <dhmd_graph.model.DHMD.load_word_vectors>`, which returns the coverage; a
            model restored from a checkpoint does not read it. Use it for a vocabulary
            of a few thousand words and about a thousand samples, where an embedding
            learned from scratch has too little to learn from. (default: :obj:`None`,
            a random embedding)
        word_vectors_finetune (bool, optional): With ``word_vectors``, train the
            embedding with the model; :obj:`False` keeps the vectors as they are (words
            the file lacks then stay zero). (default: :obj:`True`)
        bag_of_words (bool, optional): For token ids, read each sample's ids as one bag:
            its TF-IDF row over the vocabulary (sublinear term frequency, the training
            split's inverse document frequency, unit length) times the token embedding,
            one step of width ``embedding_dim`` (:class:`~dhmd_graph.nn.TemporalProjection`).
            Word order is dropped; what is left is the input a linear bag-of-words model
            reads, learned end to end. Ours, for short utterances with about a thousand
            samples, where a sequence model over an embedding learned from scratch
            overfits (the small-data recipe turns it on). The inverse document frequency
            is a buffer of the model, fitted by :meth:`DHMD.fit_bag_of_words
            <dhmd_graph.model.DHMD.fit_bag_of_words>` and saved with its weights.
            (default: :obj:`False`)
    """

    name: str
    input_dim: int | None = None
    kernel_size: int = 1
    vocab_size: int | None = None
    embedding_dim: int = 300
    sequence_length: int | None = None
    length_mask: bool = True
    input_dropout: float = 0.0
    attention_dropout: float | None = None
    bert_path: str | None = None
    bert_finetune: bool = True
    word_vectors: str | None = None
    word_vectors_finetune: bool = True
    bag_of_words: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.bag_of_words and self.bert_path is not None:
            raise field_error(self, "bag_of_words", "false with bert_path (a bag is made of "
                              "token ids)", self.bag_of_words, "Drop bag_of_words or bert_path")
        if self.word_vectors is not None and (not self.word_vectors or self.bert_path):
            raise field_error(self, "word_vectors", "a local vectors file for token ids, or null "
                        "(not with bert_path)", self.word_vectors,
                        "Name a GloVe/word2vec/fastText text file, or drop bert_path")
        if not self.word_vectors_finetune and self.word_vectors is None:
            raise field_error(self, "word_vectors_finetune", "true without word_vectors (it would "
                        "freeze a random embedding)", self.word_vectors_finetune,
                        "Set word_vectors to a vectors file, or drop word_vectors_finetune")
        if not isinstance(self.name, str) or not self.name or "->" in self.name or "." in self.name:
            raise field_error(self, "name", "a non-empty name without '->' or '.'", self.name,
                        "Use the modality's key in the batch, e.g. 'text'")
        if self.bert_path is not None:
            if not self.bert_path:
                raise field_error(self, "bert_path", "a local BERT folder or null", self.bert_path,
                            "Name the folder of a saved BERT model, e.g. 'bert-base-uncased'")
            for field in INPUT_FIELDS:
                if getattr(self, field) is not None:
                    raise field_error(self, field, "null with bert_path (BERT's hidden size is the "
                                "input width)", getattr(self, field),
                                f"Drop {field}, or drop bert_path to read features")
        elif self.input_dim is None:
            if self.vocab_size is None or isinstance(self.vocab_size, bool) or self.vocab_size < 2:
                raise field_error(self, "vocab_size", "an integer >= 2 for token-id input "
                            "(input_dim=None)", self.vocab_size,
                            f"Give modality '{self.name}' a vocab_size or a feature input_dim")
        else:
            _check_positive(self, "input_dim", integer=True)
        _check_positive(self, "kernel_size", integer=True)
        _check_positive(self, "embedding_dim", integer=True)
        if self.sequence_length is not None:
            _check_positive(self, "sequence_length", integer=True)
            if self.sequence_length < self.kernel_size:
                raise field_error(self, "sequence_length", f"at least kernel_size={self.kernel_size}",
                            self.sequence_length, "Use the data's padded length")
        if not isinstance(self.length_mask, bool):
            raise field_error(self, "length_mask", "true or false", self.length_mask,
                        "Set length_mask to a boolean")
        _check_dropout(self, "input_dropout")
        if self.attention_dropout is not None:
            _check_dropout(self, "attention_dropout")

    @property
    def projected_length(self) -> int | None:
        r"""The length :math:`T'_m = T_m - k_m + 1` after the temporal projection of a
        :obj:`sequence_length`-step input (1 for a bag of words), or :obj:`None` without a
        fixed length."""
        if self.sequence_length is None:
            return None
        if self.bag_of_words:
            return 1
        return self.sequence_length - self.kernel_size + 1


@dataclass
class EncoderConfig:
    r"""The attention encoders (self-attention, cross-modal, memory) and the heads.

    Args:
        num_layers (int, optional): Layers of every self-attention encoder over the
            homogeneous features and of every cross-modal transformer.
            (default: :obj:`4`)
        memory_layers (int, optional): Layers of the heterogeneous memory encoders.
            (default: :obj:`4`)
        attention_dropout (float, optional): Dropout on attention weights.
            (default: :obj:`0.1`)
        dropout (float, optional): Dropout on residual branches and inside the
            feed-forward blocks. (default: :obj:`0.1`)
        embed_dropout (float, optional): Dropout on the scaled, position-encoded
            encoder inputs. (default: :obj:`0.25`)
        output_dropout (float, optional): Dropout inside the residual MLP heads.
            (default: :obj:`0.1`)
        feedforward_ratio (int, optional): Feed-forward width as a multiple of the
            model width. (default: :obj:`4`)
        causal (bool, optional): Causal attention masks (the reference always uses
            them). (default: :obj:`True`)
        pooling (str, optional): The readout of the homogeneous self-attention
            encoders and of the heterogeneous memory encoders (and of :math:`r_m` with
            the ``"pooled"`` homogeneous head): ``"mean"`` (length-masked mean, ours),
            ``"attention"`` (learned attention pooling over valid steps) or ``"last"``
            (the last valid step; the reference reads ``h[-1]``, the last *padded*
            step, which is the last valid one when ``length_mask`` is off;
            docs/guide/dmd.md, difference 2). (default: :obj:`"mean"`)
        positional_encoding (str, optional): ``"interleaved"`` (ours: sin and cos
            interleaved channel by channel, frequencies :math:`10^{-8k/C}`, positions
            counted from 0) or ``"fairseq"`` (the reference: sin in the first half of
            the channels, cos in the second, frequencies :math:`10^{-4k/(C/2-1)}`,
            positions counted from 1, and a step whose first input channel is exactly
            0 treated as padding and given no position at all;
            docs/guide/dmd.md, difference 1). Ours
            encodes every step, whatever its value. (default: :obj:`"interleaved"`)
        homogeneous_head (str, optional): How each modality's homogeneous
            representation :math:`r_m` and logit are read from :math:`c_m`:
            ``"pooled"`` (ours: the length-masked readout of :obj:`pooling`, then a
            residual head of width :math:`d`; any length works) or ``"flatten"`` (the
            reference: the time-major flatten of all :math:`T'_m` steps through a
            residual head of width :math:`T'_m d`, :math:`r_m` its first layer after
            the ReLU; bound to ``modalities.*.sequence_length``;
            docs/guide/dmd.md, difference 3).
            (default: :obj:`"pooled"`)
        cross_modal_norm (str, optional): The LayerNorm of the key/value input in
            every cross-modal block: ``"separate"`` (ours: its own LayerNorm) or
            ``"shared"`` (the reference: the query's LayerNorm normalises both; docs/guide/dmd.md,
            difference 8). Ours lets the two modalities keep separate statistics.
            (default: :obj:`"separate"`)
        causal_alignment (str, optional): How the causal mask lines up a query
            sequence of :math:`L_q` steps with keys of :math:`L_k` steps: ``"relative"``
            (ours: key :math:`j` is visible to query :math:`i` iff :math:`j L_q \le i
            L_k`, the same moment in relative time) or ``"shifted"`` (the reference's
            ``buffered_future_mask``: iff :math:`j \le i + |L_k - L_q|`, with the padded
            lengths). Both are :math:`j \le i` for equal lengths; they differ in
            unaligned data and in MOSEI, whose kernels L5 A1 V3 give 46 / 50 / 48 steps.
            Ours stays the default although the switch ablation measured a test MAE
            0.002 lower with ``"shifted"`` (a tenth of the seeds' spread): the shifted
            mask stops being causal between sequences of different lengths (the first
            of 46 text steps sees about 450 of 500 audio steps). (default:
            :obj:`"relative"`)
    """

    num_layers: int = 4
    memory_layers: int = 4
    attention_dropout: float = 0.1
    dropout: float = 0.1
    embed_dropout: float = 0.25
    output_dropout: float = 0.1
    feedforward_ratio: int = 4
    causal: bool = True
    pooling: str = "mean"
    positional_encoding: str = "interleaved"
    homogeneous_head: str = "pooled"
    cross_modal_norm: str = "separate"
    causal_alignment: str = "relative"

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("num_layers", "memory_layers", "feedforward_ratio"):
            _check_positive(self, name, integer=True)
        for name in ("attention_dropout", "dropout", "embed_dropout", "output_dropout"):
            _check_dropout(self, name)
        _check_choice(self, "pooling", POOLINGS)
        _check_choice(self, "positional_encoding", POSITIONAL_ENCODINGS)
        _check_choice(self, "homogeneous_head", HOMOGENEOUS_HEADS)
        _check_choice(self, "cross_modal_norm", CROSS_MODAL_NORMS)
        _check_choice(self, "causal_alignment", CAUSAL_ALIGNMENTS)


@dataclass
class GraphConfig:
    r"""One graph distillation unit (GD-Unit) and its loss terms.

    The loss of the graph is
    ``weight * (logit_weight * logit + use_repr_term * repr_weight * repr
    + regularizer_weight * reg)``; the reference (``w_losses = [1, 10]`` in both
    graphs, ``trains/singleTask/distillnets/get_distillation_kernel.py:79``) weighs
    the logit term 1 and the representation term 10.

    Args:
        hidden_channels (int, optional): Size :math:`g` of each half of the node
            embedding. (default: :obj:`64`)
        temperature (float, optional): Edge-weight softmax temperature.
            (default: :obj:`8.0`)
        normalize (str, optional): ``"graph"`` (all edges of a sample sum to one, the
            reference) or ``"target"`` (per student). (default: :obj:`"graph"`)
        prior (dict[str, float], optional): Prior logits per edge
            ``{"text->audio": 1.0, ...}``; unlisted edges get 0. :obj:`None` means no
            prior and no regulariser. (default: :obj:`None`)
        prior_temperature (float, optional): Prior softmax temperature.
            (default: :obj:`0.25`)
        regularizer_weight (float, optional): Weight of the prior regulariser inside
            the graph's loss. (default: :obj:`10.0`)
        logit_metric (str, optional): Distance on logits, one of
            ``'l1' | 'l2' | 'cosine' | 'positive_cosine' | 'kl'``. ``'l1'`` is the
            reference's for its one output, and stays our default for every task: with
            :math:`C > 1` outputs it is the mean absolute difference of the logit
            vectors. ``'kl'`` (classification tasks only, ours) compares softened class
            distributions instead, :math:`\tau^2 \mathrm{KL}(p_{teacher} \Vert
            p_{student})` with :math:`p = \mathrm{softmax}(\mathbf{y} / \tau)` for
            ``multiclass`` and per-label Bernoulli :math:`\sigma(y / \tau)` for
            ``multilabel`` and ``binary`` (Hinton et al.'s knowledge distillation; see
            :func:`~dhmd_graph.losses.softened_kl`): it ignores a shift shared by all
            logits, which L1 penalises. (default: :obj:`"l1"`)
        logit_temperature (float, optional): Temperature :math:`\tau` of ``'kl'``.
            (default: :obj:`1.0`)
        repr_metric (str, optional): Distance on representations. ``'positive_cosine'``
            (:math:`\max(0, \cos)`) is the reference's heterogeneous quirk.
            (default: :obj:`"cosine"`)
        use_repr_term (bool, optional): Whether the representation term enters the
            loss (the reference computes but ignores it in the homogeneous graph).
            (default: :obj:`True`)
        logit_weight (float, optional): Weight of the logit term inside the graph's
            loss (the reference: 1). (default: :obj:`1.0`)
        repr_weight (float, optional): Weight of the representation term inside the
            graph's loss (the reference: 10, in both graphs). (default: :obj:`10.0`)
        repr_reduction (str, optional): How the representation term averages over
            the batch, per edge: ``"per_sample"`` (ours: :math:`\mathrm{mean}_b(w_b
            d_b)`, each sample's distance weighted by its own edge weight) or
            ``"batch_means"`` (the reference's ``min_cosine``:
            :math:`\mathrm{mean}_b(w_b) \cdot \mathrm{mean}_b(d_b)`, which loses the
            per-sample weighting; docs/guide/dmd.md, difference 7). Ours stays the
            default: in the switch ablation the reference's gave a test MAE 0.013 higher on
            the default model, though 0.008 lower with the margin loss on (docs/guide/dmd.md).
            (default: :obj:`"per_sample"`)
        weight (float, optional): Weight of the graph's total loss.
            (default: :obj:`0.05`)
        edges (list[str], optional): Keep only these edges (``"teacher->student"``);
            :obj:`None` means all ordered pairs. (default: :obj:`None`)
        propagate (bool, optional): Whether the GD-Unit **outputs features** that go on
            to the space's dictionary and fusion (*[pub]*, DHMD's framework figure):
            :math:`\hat{\mathbf{x}}_j` of
            :class:`~dhmd_graph.nn.DynamicGraphDistill`. :obj:`False` makes it a loss
            only, as in DMD: the space passes each node's own representation on.
            (default: :obj:`True`)
        out_channels (int, optional): Width of the GD output through learned maps
            :math:`\mathbf{\Theta}, \mathbf{\Theta}_{root}` and a bias; :obj:`None`
            keeps the representation's width with identity maps,
            :math:`\hat{\mathbf{x}}_j = \mathbf{r}_j + \sum_i w_{i \rightarrow j}
            \mathbf{r}_i` (*[open]*, ours). Only with :obj:`propagate`.
            (default: :obj:`None`)
        root_weight (bool, optional): Whether a node's own representation is added to
            its GD output (*[open]*, ours: yes, as PyG's convolutions do). Only with
            :obj:`propagate`. (default: :obj:`True`)
        detach_teacher (bool, optional): Whether the GD output's messages carry the
            teachers' representations detached (*[open]*, ours: not detached, so a
            teacher learns what to send; the distillation losses always detach the
            teacher). Only with :obj:`propagate`. (default: :obj:`False`)
        scorer (str, optional): The edge scorer of
            :class:`~dhmd_graph.nn.DynamicGraphDistill`: ``"additive"`` (the reference:
            :math:`\mathbf{w}^{\top}[\mathbf{h}_j \Vert \mathbf{h}_i]`, a teacher part
            plus a student part, so the teachers of a sample are ranked alike for every
            student), ``"pairwise"`` (ours: an MLP on :math:`[\mathbf{h}_i \Vert
            \mathbf{h}_j \Vert \mathbf{h}_i - \mathbf{h}_j \Vert \mathbf{h}_i \odot
            \mathbf{h}_j]`) or ``"bilinear"`` (ours: :math:`\mathbf{h}_j^{\top}
            \mathbf{W}\mathbf{h}_i`). (default: :obj:`"additive"`)
        scorer_input (str, optional): What the node embedding :math:`\mathbf{h}_m`
            reads: ``"readout"`` (the reference: the node's logit and its
            representation, a map of the pooled readout) or ``"statistics"`` (ours:
            also the length-masked mean, standard deviation and step-difference RMS of
            the space's sequence, :func:`~dhmd_graph.nn.temporal_statistics`, which keep
            the temporal structure a pooled readout discards). (default:
            :obj:`"readout"`)
        edge_target (str, optional): A signal tying the learned weights :math:`E` to the
            teachers' quality on each sample (ours; the reference has none, so nothing
            trains :math:`E` toward good teachers): ``"none"``, ``"teacher_error"``
            (KL from :math:`\mathrm{softmax}(-\ell_i / \tau_q)`, :math:`\ell_i` the
            teacher node's detached per-sample task error) or ``"error_gain"``
            (:math:`\mathrm{softmax}((\ell_j - \ell_i) / \tau_q)`), see
            :func:`~dhmd_graph.losses.edge_target_loss`. (default: :obj:`"none"`)
        edge_target_weight (float, optional): Weight of that term in the objective (not
            multiplied by :obj:`weight`). (default: :obj:`1.0`)
        edge_target_temperature (float, optional): :math:`\tau_q`, in units of the task
            error. (default: :obj:`0.5`)
        loss_trains_weights (bool, optional): Whether the distillation losses' gradient
            reaches the edge weights :math:`w` (the reference: yes, which rewards edges
            whose student already agrees with its teacher); :obj:`False` detaches
            :math:`w` in them, so only the task (through the GD outputs), the prior
            regulariser and :obj:`edge_target` train the scorer. (default: :obj:`True`)
        prior_schedule (str, optional): ``"constant"`` (the reference: the prior in
            :math:`w = E + p` and its regulariser at full strength throughout) or
            ``"linear"`` (ours: both scaled by :math:`\alpha = \max(0, 1 - t / T)`
            after :math:`t` training batches, :math:`T` = :obj:`prior_anneal_steps`, so
            the prior is a starting point and :math:`w = E` at the end). Only with a
            prior. (default: :obj:`"constant"`)
        prior_anneal_steps (int, optional): :math:`T`, the training batches over which
            a ``"linear"`` prior fades. (default: :obj:`1000`)
    """

    hidden_channels: int = 64
    temperature: float = 8.0
    normalize: str = "graph"
    prior: dict[str, float] | None = None
    prior_temperature: float = 0.25
    regularizer_weight: float = 10.0
    logit_metric: str = "l1"
    logit_temperature: float = 1.0
    repr_metric: str = "cosine"
    use_repr_term: bool = True
    logit_weight: float = 1.0
    repr_weight: float = 10.0
    repr_reduction: str = "per_sample"
    weight: float = 0.05
    edges: list[str] | None = None
    propagate: bool = True
    out_channels: int | None = None
    root_weight: bool = True
    detach_teacher: bool = False
    scorer: str = "additive"
    scorer_input: str = "readout"
    edge_target: str = "none"
    edge_target_weight: float = 1.0
    edge_target_temperature: float = 0.5
    loss_trains_weights: bool = True
    prior_schedule: str = "constant"
    prior_anneal_steps: int = 1000

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_positive(self, "hidden_channels", integer=True)
        for name in ("propagate", "root_weight", "detach_teacher", "loss_trains_weights"):
            _check_bool(self, name)
        _check_choice(self, "scorer", SCORERS)
        _check_choice(self, "scorer_input", SCORER_INPUTS)
        _check_choice(self, "edge_target", EDGE_TARGETS)
        _check_choice(self, "prior_schedule", PRIOR_SCHEDULES)
        _check_weight(self, "edge_target_weight")
        _check_positive(self, "edge_target_temperature")
        _check_positive(self, "prior_anneal_steps", integer=True)
        if self.out_channels is not None:
            _check_positive(self, "out_channels", integer=True)
        _check_positive(self, "temperature")
        _check_positive(self, "prior_temperature")
        _check_choice(self, "normalize", NORMALIZATIONS)
        _check_choice(self, "logit_metric", LOGIT_METRICS)
        _check_positive(self, "logit_temperature")
        _check_choice(self, "repr_metric", METRICS)
        _check_choice(self, "repr_reduction", REPR_REDUCTIONS)
        _check_weight(self, "regularizer_weight")
        _check_weight(self, "logit_weight")
        _check_weight(self, "repr_weight")
        _check_weight(self, "weight")
        if self.prior is not None:
            if not isinstance(self.prior, dict):
                raise field_error(self, "prior", "a dict {'teacher->student': logit} or None",
                            self.prior, "Write the prior as edge names mapped to logits")
            for name, logit in self.prior.items():
                parse_edge(name)
                if not isinstance(logit, (int, float)) or not math.isfinite(logit):
                    raise field_error(self, "prior", "finite logits", f"{name}: {logit!r}",
                                "Give every prior edge a finite number")
        if self.edges is not None:
            if not isinstance(self.edges, list) or not self.edges:
                raise field_error(self, "edges", "a non-empty list of 'teacher->student' or None",
                            self.edges, "Use None for all edges")
            for name in self.edges:
                parse_edge(name)
            if len(set(self.edges)) != len(self.edges):
                raise field_error(self, "edges", "each edge once", self.edges, "Remove duplicates")


@dataclass
class DictionaryConfig:
    r"""The modality-shared dictionaries, one per decoupled space after its GD-Unit
    (*[pub]*, DHMD's framework figure;
    :class:`~dhmd_graph.nn.ModalitySharedDictionary`), and their contrastive loss
    :math:`\lambda (\mathcal{L}^{hom}_{ctr} + \mathcal{L}^{het}_{ctr})`
    (:func:`~dhmd_graph.losses.dictionary_contrastive_loss`). Every value is *[open]*:
    not published, our default. Both spaces use these settings, each with its own atoms.

    Args:
        atoms (int, optional): Number :math:`K` of atoms per space; ``0`` disables the
            dictionaries and their loss. (default: :obj:`64`)
        atom_channels (int, optional): Width :math:`C` of the atoms, with a learned map
            back to the space's width; :obj:`None` puts the atoms in the GD output's
            space (a reconstruction is a convex combination of atoms).
            (default: :obj:`None`)
        temperature (float, optional): Temperature :math:`\tau` of the activation over
            the atoms. (default: :obj:`1.0`)
        activation (str, optional): ``"softmax"`` or ``"sparsemax"`` over the atoms.
            (default: :obj:`"softmax"`)
        contrastive_temperature (float, optional): Temperature of the InfoNCE
            contrastive loss on the reconstructions (the same sample's other modalities
            are the positives, other samples the negatives). (default: :obj:`0.1`)
        weight (float, optional): :math:`\lambda`, the weight of each space's
            contrastive loss; ``0`` trains the dictionaries through the fusion only.
            (default: :obj:`0.05`)
        usage_weight (float, optional): Weight of an extra anti-collapse term
            (:func:`~dhmd_graph.losses.dictionary_usage_loss`, the batch-mean activation
            pushed toward using all atoms); off by default since the contrastive
            negatives guard against collapse by themselves. (default: :obj:`0.0`)
        contrastive_input (str, optional): What the contrastive loss compares:
            ``"reconstruction"`` (ours so far, the figure's: the dictionary outputs, which
            share their sample's teachers through the GD-Unit, so telling samples apart
            is easy and not what the label needs) or ``"representation"`` (the space's
            representations before the GD-Unit). (default: :obj:`"reconstruction"`)
        contrastive_positives (str, optional): ``"sample"`` (InfoNCE, the same sample's
            other modalities are the positives,
            :func:`~dhmd_graph.losses.dictionary_contrastive_loss`) or ``"label"``
            (supervised contrastive: every vector whose label is within
            :obj:`contrastive_label_tolerance`,
            :func:`~dhmd_graph.losses.supervised_contrastive_loss`). (default:
            :obj:`"sample"`)
        contrastive_label_tolerance (float, optional): The largest label distance of a
            ``"label"`` positive (L1; one-hot classes are 2 apart).
            (default: :obj:`0.5`)
        contrastive_cross_modal (str, optional): In which spaces ``"label"`` compares
            vectors of different modalities: ``"both"`` or ``"homogeneous"`` (the
            heterogeneous space then compares each modality only with itself, so the
            loss does not pull the decoupled private features together).
            (default: :obj:`"both"`)
    """

    atoms: int = 64
    atom_channels: int | None = None
    temperature: float = 1.0
    activation: str = "softmax"
    contrastive_temperature: float = 0.1
    weight: float = 0.05
    usage_weight: float = 0.0
    contrastive_input: str = "reconstruction"
    contrastive_positives: str = "sample"
    contrastive_label_tolerance: float = 0.5
    contrastive_cross_modal: str = "both"

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.atoms, int) or isinstance(self.atoms, bool) or self.atoms < 0:
            raise field_error(self, "atoms", "an integer >= 0", self.atoms, "Use 0 to disable")
        if self.atom_channels is not None:
            _check_positive(self, "atom_channels", integer=True)
        _check_positive(self, "temperature")
        _check_positive(self, "contrastive_temperature")
        _check_choice(self, "activation", ACTIVATIONS)
        _check_weight(self, "weight")
        _check_weight(self, "usage_weight")
        _check_choice(self, "contrastive_input", CONTRASTIVE_INPUTS)
        _check_choice(self, "contrastive_positives", CONTRASTIVE_POSITIVES)
        _check_weight(self, "contrastive_label_tolerance")
        _check_choice(self, "contrastive_cross_modal", CONTRASTIVE_CROSS_MODAL)


@dataclass
class LossConfig:
    r"""Weights of the non-graph terms of the objective.

    Args:
        task (float, optional): Weight of the task loss (L1, cross-entropy or BCE, as
            ``DHMDConfig.task``). (default: :obj:`1.0`)
        reconstruction (float, optional): Weight of :math:`\mathcal{L}_{rec}`.
            (default: :obj:`0.1`)
        cycle (float, optional): Weight of :math:`\mathcal{L}_{cyc}`. (default: :obj:`0.1`)
        use_margin (bool, optional): Whether the triplet margin loss
            :math:`\mathcal{L}_{mar}` (DMD's) enters the objective. DHMD's framework
            figure draws no margin loss, and on the synthetic default it made
            no measurable difference (``benchmarks/hmd_ablation.py``: test MAE 0.5574 ±
            0.0158 with it, 0.5595 ± 0.0114 without, 3 seeds), so it is off; the ``dmd``
            presets turn it on. (default: :obj:`False`)
        margin (float, optional): Weight of the triplet margin loss.
            (default: :obj:`0.01`)
        orthogonality (float, optional): Weight of :math:`\mathcal{L}_{ort}`.
            (default: :obj:`0.01`)
        margin_scale (float, optional): The triplet margin per unit of label
            difference. (default: :obj:`0.15`)
        margin_embedding (str, optional): The vectors the margin loss compares:
            ``"pooled"`` (ours: the homogeneous representations :math:`r_m`, any
            length) or ``"flatten"`` (the reference: a separate
            ``Linear(d T'_m -> d)`` per modality on the channel-major flatten of
            :math:`c_m`, bound to ``modalities.*.sequence_length``;
            docs/guide/dmd.md, difference 4).
            (default: :obj:`"pooled"`)
        margin_reduction (str, optional): How the triplet hinges are averaged:
            ``"anchor"`` (the reference's ``HingeLoss``: over each anchor's
            (positive, negative) pairs first, then over the anchors that have both;
            docs/guide/dmd.md, difference 5) or ``"triplet"`` (over all triplets of the
            batch, so every triplet counts alike). The default is the reference's since the
            switch ablation (docs/guide/dmd.md: test MAE 0.012 lower with it, 3 seeds).
            (default: :obj:`"anchor"`)
    """

    task: float = 1.0
    reconstruction: float = 0.1
    cycle: float = 0.1
    use_margin: bool = False
    margin: float = 0.01
    orthogonality: float = 0.01
    margin_scale: float = 0.15
    margin_embedding: str = "pooled"
    margin_reduction: str = "anchor"

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("task", "reconstruction", "cycle", "margin", "orthogonality",
                     "margin_scale"):
            _check_weight(self, name)
        _check_bool(self, "use_margin")
        _check_choice(self, "margin_embedding", MARGIN_EMBEDDINGS)
        _check_choice(self, "margin_reduction", MARGIN_REDUCTIONS)


@dataclass
class DHMDConfig:
    r"""The whole DHMD model and objective.

    Args:
        modalities (list[ModalityConfig]): The ``M >= 2`` modalities, in node order.
        width (int, optional): Common width :math:`d`. (default: :obj:`50`)
        num_heads (int, optional): Attention heads; must divide :obj:`width`.
            (default: :obj:`10`)
        encoder (EncoderConfig, optional): Attention encoders and heads.
        homogeneous_graph (GraphConfig, optional): The homogeneous GD-Unit
            (``g = 64``, representation term off as in the reference).
        heterogeneous_graph (GraphConfig, optional): The heterogeneous GD-Unit
            (``g = 32``, ``max(0, cos)`` representation metric as in the reference).
        dictionary (DictionaryConfig, optional): The modality-shared dictionaries of
            both spaces.
        loss (LossConfig, optional): Weights of the other loss terms.
        modality_dropout (float, optional): Probability of dropping each modality of
            a training sample (never all of them). (default: :obj:`0.0`)
        fusion (str, optional): What the fusion network reads. ``"dhmd"`` (*[pub]*,
            DHMD's framework figure): per space and modality the GD output
            :math:`\hat{\mathbf{x}}_m` concatenated with its dictionary
            reconstruction :math:`\hat{\hat{\mathbf{x}}}_m`, each pair through a block
            :math:`\sigma(\mathbf{W}[\hat{\mathbf{x}}_m \Vert
            \hat{\hat{\mathbf{x}}}_m])` of the space's width (*[ours]*), plus DMD's
            :math:`\sigma(\mathbf{W}_c \mathbf{c}_{fus})` (*[ours]*: the figure does not
            show whether the homogeneous self-attention summary survives; we keep it).
            ``"dmd"`` (DMD's fusion, the reference's): :math:`[\sigma(\mathbf{W}_m
            \mathbf{g}_m)]_m \Vert \sigma(\mathbf{W}_c \mathbf{c}_{fus})`; GD outputs
            and dictionary reconstructions are then not fused (a dictionary with
            ``atoms > 0`` still trains through its contrastive loss).
            (default: :obj:`"dhmd"`)
        task (str, optional): What the model predicts, and so the width of the final
            head, of :math:`y_c`, of every per-modality head of both spaces (the GD-Unit
            nodes' logits) and the form of every task term of the objective:
            ``"regression"`` (one score, L1; DMD's and DHMD's sentiment task),
            ``"multiclass"`` (:obj:`num_classes` logits, softmax cross-entropy; e.g.
            IEMOCAP-6, MMSA's 3-class sentiment), ``"multilabel"`` (:obj:`num_classes`
            logits, one sigmoid each, binary cross-entropy; e.g. CMU-MOSEI's six
            emotions, IEMOCAP's four binary emotions) or ``"binary"`` (one logit,
            binary cross-entropy; humour, sarcasm). :func:`fit_task` takes it from the
            data's labels. (default: :obj:`"regression"`)
        num_classes (int, optional): :math:`C`, the classes (``multiclass``, at least 2)
            or labels (``multilabel``, at least 1); :obj:`None` for ``regression`` and
            ``binary``, which have one output. (default: :obj:`None`)
        class_weights (list[float], optional): Weights of the classification task
            terms: ``multiclass``, the weight of each of the :math:`C` classes in the
            cross-entropy; ``multilabel``, the weight of the *positive* of each of the
            :math:`C` labels (``pos_weight`` of the BCE); ``binary``, one positive
            weight. Each sample's term is weighted, then averaged over the batch (not
            divided by the sum of the weights). :obj:`None` weighs all alike; not
            allowed with ``regression``. (default: :obj:`None`)
        class_names (list[str], optional): The name of each class (``multiclass``,
            :math:`C`; ``binary``, 2: the negative class, then the positive one) or label
            (``multilabel``, :math:`C`), in index order, as the predictions name them;
            :func:`fit_task` takes them from the data's label names. :obj:`None` names
            the classes by their index; not allowed with ``regression``.
            (default: :obj:`None`)
    """

    modalities: list[ModalityConfig]
    width: int = 50
    num_heads: int = 10
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    homogeneous_graph: GraphConfig = field(
        default_factory=lambda: GraphConfig(hidden_channels=64, use_repr_term=False)
    )
    heterogeneous_graph: GraphConfig = field(
        default_factory=lambda: GraphConfig(hidden_channels=32, repr_metric="positive_cosine")
    )
    dictionary: DictionaryConfig = field(default_factory=DictionaryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    modality_dropout: float = 0.0
    fusion: str = "dhmd"
    task: str = "regression"
    num_classes: int | None = None
    class_weights: list[float] | None = None
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.modalities, list) or len(self.modalities) < 2 or not all(
            isinstance(m, ModalityConfig) for m in self.modalities
        ):
            raise field_error(self, "modalities", "a list of at least 2 ModalityConfig",
                        self.modalities, "Distillation needs two or more modalities")
        names = self.modality_names
        if len(set(names)) != len(names):
            raise field_error(self, "modalities", "unique names", names, "Rename the duplicates")
        _check_positive(self, "width", integer=True)
        _check_positive(self, "num_heads", integer=True)
        if self.width % self.num_heads:
            raise field_error(self, "num_heads", f"a divisor of width={self.width}", self.num_heads,
                        "Change num_heads or width so that width % num_heads == 0")
        _check_dropout(self, "modality_dropout")
        _check_choice(self, "fusion", FUSIONS)
        bound = [f"{owner}.{name}={value!r}" for owner, name, value in (
            ("encoder", "homogeneous_head", self.encoder.homogeneous_head),
            ("loss", "margin_embedding", self.loss.margin_embedding)) if value == "flatten"]
        unbound = [m.name for m in self.modalities if m.sequence_length is None]
        if bound and unbound:
            raise field_error(self, "modalities", f"a sequence_length for every modality with "
                        f"{' and '.join(bound)}; these have none", unbound,
                        "Set modalities.NAME.sequence_length to the data's padded length, "
                        "or use the 'pooled' variant, which works with any length")
        self._check_task()
        if self.encoder.positional_encoding == "fairseq" and self.width < 4:
            raise field_error(self, "width", "at least 4 with encoder.positional_encoding='fairseq'",
                        self.width, "Its frequencies divide by C/2 - 1; use a wider model")
        for space in ("homogeneous_graph", "heterogeneous_graph"):
            graph = getattr(self, space)
            for key, names_used in (("prior", graph.prior or {}), ("edges", graph.edges or [])):
                for name in names_used:
                    teacher, student = parse_edge(name)
                    if teacher not in names or student not in names or teacher == student:
                        raise field_error(self, f"{space}.{key}",
                                    f"edges between two different modalities of {names}",
                                    name, "Fix the edge name or the modality names")

    def _check_task(self) -> None:
        _check_choice(self, "task", TASKS)
        spec, classes = task_spec(self.task), self.num_classes
        if not spec.per_class:
            if classes is not None:
                raise field_error(self, "num_classes", f"None for task={self.task!r} (one output)",
                            classes, "Drop num_classes, or use task='multiclass' / "
                            "'multilabel' for several outputs")
        else:
            least = spec.min_classes
            if not isinstance(classes, int) or isinstance(classes, bool) or classes < least:
                raise field_error(self, "num_classes", f"an integer >= {least} for task="
                            f"{self.task!r}", classes, "Set num_classes to the number of "
                            "classes or labels of the data (it is taken from the data by "
                            "default)")
        if self.class_weights is not None:
            if self.task == "regression":
                raise field_error(self, "class_weights", "None for task='regression'",
                            self.class_weights, "Class weights apply to classification tasks")
            weights = self.class_weights
            if (not isinstance(weights, list) or len(weights) != self.output_channels
                    or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                               and math.isfinite(w) and w > 0 for w in weights)):
                raise field_error(self, "class_weights", f"a list of {self.output_channels} finite "
                            f"numbers > 0 (one per output of task={self.task!r})", weights,
                            "Give one positive weight per class (multiclass), per label's "
                            "positive (multilabel), or one positive weight (binary)")
        names = self.class_names
        if names is not None:
            count = 2 if self.task == "binary" else self.num_classes
            if self.task == "regression" or len(names) != count or len(set(names)) != count \
                    or not all(names):
                raise field_error(self, "class_names", "None for task='regression'"
                            if self.task == "regression" else f"{count} different non-empty "
                            f"names (one per class or label of task={self.task!r})", names,
                            "Give one name per class or label, or drop class_names (it is "
                            "taken from the data's label names by default)")
        for space in ("homogeneous_graph", "heterogeneous_graph"):
            if getattr(self, space).logit_metric == "kl" and self.task == "regression":
                raise field_error(self, f"{space}.logit_metric", "a distance other than 'kl' "
                            "for task='regression' (a score has no class distribution)",
                            "kl", "Use 'l1' (the reference's) for regression")

    @property
    def output_channels(self) -> int:
        """The width of every logit: :obj:`num_classes`, or 1 (``regression``,
        ``binary``)."""
        return task_spec(self.task).output_channels(self.num_classes)

    @property
    def modality_names(self) -> list[str]:
        """The modality names, in node order."""
        return [m.name for m in self.modalities]

    @property
    def graphs(self) -> dict[str, GraphConfig]:
        """The GD-Unit config of each decoupled space, keyed ``"homogeneous"`` and
        ``"heterogeneous"`` (the keys of :attr:`DHMD.spaces <dhmd_graph.DHMD.spaces>`)."""
        return {"homogeneous": self.homogeneous_graph, "heterogeneous": self.heterogeneous_graph}

    def edge_pairs(self, space: str) -> list[tuple[int, int]] | None:
        """The ``(teacher, student)`` index pairs kept in ``space`` (``"homogeneous"``
        or ``"heterogeneous"``), or :obj:`None` for all ordered pairs."""
        edges = self.graphs[space].edges
        if edges is None:
            return None
        index = {name: i for i, name in enumerate(self.modality_names)}
        return [(index[t], index[s]) for t, s in map(parse_edge, edges)]

    def prior_matrix(self, space: str) -> list[list[float]] | None:
        """The ``(M, M)`` prior logits of ``space`` indexed ``[teacher, student]``, or
        :obj:`None` without a prior."""
        prior = self.graphs[space].prior
        if prior is None:
            return None
        index = {name: i for i, name in enumerate(self.modality_names)}
        matrix = [[0.0] * len(index) for _ in index]
        for name, logit in prior.items():
            teacher, student = parse_edge(name)
            matrix[index[teacher]][index[student]] = float(logit)
        return matrix


@dataclass
class SmallDataRecipe:
    r"""The model and schedule ``dhmd train`` uses on small or one-step data, unless the
    user keeps the preset's (``--paper-schedule``) or sets a field himself
    (:func:`dhmd_graph.schedule.apply_small_data_recipe`).

    The presets are the papers' settings for their benchmarks: 50-wide models of 4
    layers trained with 10 batches of 16 per optimiser step. On about a thousand
    utterances that is ten optimiser steps per epoch for a model that overfits in two
    epochs, and kernels of 3 to 5 over inputs of one step. This recipe makes the model
    smaller and more regularised, and the schedule take enough optimiser steps per
    epoch; it leaves the method (spaces, graphs, dictionaries, losses) as the preset has
    it. Every value is *[open]*, ours.

    Args:
        max_train_samples (int, optional): Data counts as small when its train split has
            at most this many samples. (default: :obj:`5000`)
        width (int, optional): The model width :math:`d`. (default: :obj:`32`)
        num_heads (int, optional): Attention heads, a divisor of :obj:`width`.
            (default: :obj:`4`)
        num_layers (int, optional): ``encoder.num_layers``. (default: :obj:`2`)
        memory_layers (int, optional): ``encoder.memory_layers``. (default: :obj:`2`)
        dropout (float, optional): ``encoder.dropout`` and ``encoder.output_dropout``.
            (default: :obj:`0.2`)
        embed_dropout (float, optional): ``encoder.embed_dropout``. (default: :obj:`0.2`)
        embedding_dim (int, optional): The width of a token embedding learned from
            scratch (not with ``word_vectors``, whose width is the file's).
            (default: :obj:`64`)
        bag_of_words (bool, optional): ``bag_of_words`` for every token-id modality:
            a TF-IDF-weighted bag of its embedding, one step per sample, instead of a
            sequence (docs "Small data" has the evidence). (default: :obj:`True`)
        token_dropout (float, optional): ``input_dropout`` of every token-id modality
            (on its bag, or on its embedded tokens); the DMD reference drops MOSI's text
            features at this rate. (default: :obj:`0.5`)
        modality_dropout (float, optional): ``modality_dropout``. (default: :obj:`0.1`)
        lr (float, optional): ``train.lr``. (default: :obj:`1e-3`)
        weight_decay (float, optional): ``train.weight_decay``. (default: :obj:`1e-4`)
        batch_size (int, optional): The largest ``train.batch_size``; smaller where the
            train split would otherwise give fewer than :obj:`min_steps_per_epoch`
            optimiser steps. (default: :obj:`32`)
        accumulation_steps (int, optional): ``train.accumulation_steps``.
            (default: :obj:`1`)
        min_steps_per_epoch (int, optional): The optimiser steps per epoch the batch size
            aims at; the run header warns below it, whatever the recipe.
            (default: :obj:`20`)
        max_epochs (int, optional): ``train.max_epochs``. (default: :obj:`50`)
        early_stop_patience (int, optional): ``train.early_stop_patience``: long enough
            that a noisy validation metric does not end the run at a lucky first epoch.
            (default: :obj:`12`)
        lr_patience (int, optional): ``train.lr_patience``. (default: :obj:`4`)
    """

    max_train_samples: int = 5000
    width: int = 32
    num_heads: int = 4
    num_layers: int = 2
    memory_layers: int = 2
    dropout: float = 0.2
    embed_dropout: float = 0.2
    embedding_dim: int = 64
    bag_of_words: bool = True
    token_dropout: float = 0.5
    modality_dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    accumulation_steps: int = 1
    min_steps_per_epoch: int = 20
    max_epochs: int = 50
    early_stop_patience: int = 12
    lr_patience: int = 4

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("max_train_samples", "width", "num_heads", "num_layers", "memory_layers",
                     "embedding_dim", "batch_size", "accumulation_steps",
                     "min_steps_per_epoch", "max_epochs", "early_stop_patience"):
            _check_positive(self, name, integer=True)
        for name in ("dropout", "embed_dropout", "token_dropout", "modality_dropout"):
            _check_dropout(self, name)
        _check_positive(self, "lr")
        _check_weight(self, "weight_decay")
        if self.width % self.num_heads:
            raise field_error(self, "num_heads", f"a divisor of width={self.width}",
                              self.num_heads, "Change num_heads or width")
        if not isinstance(self.lr_patience, int) or self.lr_patience < 0:
            raise field_error(self, "lr_patience", "an integer >= 0", self.lr_patience,
                              "Use 0 to halve the rate after every epoch without improvement")


# Plain data and overrides #############################################################


def config_to_dict(config: DHMDConfig) -> dict[str, Any]:
    """The config as plain JSON-able data (dicts, lists, numbers, strings, None)."""
    return to_dict(config)


def config_from_dict(data: dict[str, Any]) -> DHMDConfig:
    """Rebuilds a :class:`DHMDConfig` from :func:`config_to_dict` output (validated)."""
    return from_dict(DHMDConfig, data)


def apply_overrides(config: DHMDConfig, overrides: list[str]) -> DHMDConfig:
    r"""A copy of ``config`` with dotted ``key=value`` overrides applied: the model half
    of :func:`dhmd_graph.fields.apply_overrides` (which also returns the keys set).

    Values are converted to the field's type (``true``/``false`` for booleans,
    ``none`` for optional fields, JSON for dicts and lists). List entries of
    :obj:`modalities` are addressed by name or index:
    ``"modalities.audio.kernel_size=3"``. The result is validated once, after all
    overrides, so related fields can change together (``width=40 num_heads=8``).

    Raises:
        ConfigError: Naming the bad key and the valid keys, or the expected type.
    """
    return fields.apply_overrides(config, overrides)[0]
