r"""The encoders of DHMD before attention: temporal projection, decoupling into
homogeneous and heterogeneous features with self-regression, and the residual
prediction heads.

A 1×1 convolution over time is a position-wise linear map, so the 1×1 encoders and
decoders of the reference are :class:`torch.nn.Linear` layers on ``(B, T, C)``
sequences here (same parameters, no transposes).
"""

from __future__ import annotations

import typing
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dhmd_graph.nn.masking import length_mask
from dhmd_graph.nn.transformer import inverted_dropout

__all__ = [
    "HOMOGENEOUS_HEADS",
    "DecoupledFeatures",
    "Decoupling",
    "FlattenHead",
    "HomogeneousHead",
    "ResidualHead",
    "TemporalProjection",
]

HomogeneousHead = Literal["pooled", "flatten"]
"""How a modality's homogeneous representation and logit are read from its sequence:
``"pooled"``, a :class:`ResidualHead` on the masked pooling of the sequence (any
length), or ``"flatten"``, a :class:`FlattenHead` on the whole sequence (bound to
one length)."""
HOMOGENEOUS_HEADS: tuple[str, ...] = typing.get_args(HomogeneousHead)


class TemporalProjection(nn.Module):
    r"""Projects one modality to the common width :math:`d` with a temporal
    convolution (no padding, no bias), as in the reference:

    .. math::
        \tilde{\mathbf{X}}_m = \mathrm{Conv1d}_{k_m}(\mathbf{X}_m),\qquad
        T'_m = \max(T_m - k_m + 1, 1).

    Token ids (:obj:`input_dim=None`) are embedded first (id 0 is padding); BERT
    tokens go through a text encoder first (:obj:`text_encoder`, e.g.
    :class:`~dhmd_graph.nn.BertTextEncoder`, whose hidden states are the features). An
    optional dropout acts on the features before the convolution (the DMD reference
    drops its text features there). Steps at or after each sample's true length
    :math:`L` are zeroed before the convolution, so valid outputs never see padding;
    sequences shorter than the kernel are zero-padded to it at the end. The true output
    lengths are :math:`\max(L - k + 1, 1)`.

    On input of :math:`T < k` steps (one step: a modality without a time axis) the one
    output step is therefore :math:`\sum_{j < T} \mathbf{W}_j \mathbf{x}_j`: exactly a
    kernel of :math:`T` taps, the first :math:`T` of the :math:`k` (the kernel is not
    centred), the others never meeting data. :func:`~dhmd_graph.experiment.fit_steps` builds
    the kernel of :math:`T` taps for such data, so that every weight is used and
    initialised at the scale of the steps that exist.

    With :obj:`bag_of_words`, a sample's token ids :math:`t_1 \dots t_L` are read as one
    bag instead of a sequence: with :math:`c_v` the count of id :math:`v > 0`, the
    TF-IDF row :math:`u_v = (1 + \ln c_v)\,\mathrm{idf}_v` for :math:`c_v > 0` (else 0),
    scaled to unit length, gives the one step
    :math:`\mathbf{x} = \mathbf{u}^\top \mathbf{E}` of the embedding :math:`\mathbf{E}`
    (what scikit-learn's ``TfidfTransformer(sublinear_tf=True)`` computes, times a
    learned matrix, initialised as :class:`torch.nn.Linear` initialises a map from
    :math:`V` inputs: uniform in :math:`\pm 1/\sqrt{V}`, not :math:`\mathcal{N}(0, 1)` as a
    token embedding). The buffer ``idf`` (ones until :meth:`set_idf`) is saved with the
    weights.

    Args:
        input_dim (int, optional): Feature width :math:`d_m`, or :obj:`None` for token
            ids.
        width (int): Output width :math:`d`.
        kernel_size (int, optional): Kernel :math:`k_m`. (default: :obj:`1`)
        vocab_size (int, optional): Vocabulary size for token ids. (default: :obj:`None`)
        embedding_dim (int, optional): Token embedding width. (default: :obj:`300`)
        dropout (float, optional): Dropout on the input features (or token
            embeddings). (default: :obj:`0.0`)
        text_encoder (nn.Module, optional): A module mapping ``(B, T, 3)`` tokens to
            ``(B, T, H)`` features, with a ``hidden_size`` :math:`H` (then
            :obj:`input_dim` and :obj:`vocab_size` are :obj:`None`). (default: :obj:`None`)
        freeze_embedding (bool, optional): Keep the token embedding as it is (e.g. word
            vectors copied in with :meth:`load_embedding`). (default: :obj:`False`)
        bag_of_words (bool, optional): Read token ids as a TF-IDF-weighted bag, one step
            per sample (see above). (default: :obj:`False`)

    Shapes:
        - **input:** features :math:`(B, T, d_m)` float, token ids :math:`(B, T)` long
          or, with a text encoder, tokens :math:`(B, T, 3)` long; lengths :math:`(B)`
        - **output:** :math:`((B, T', d), (B))` projected sequence and its lengths
          (:math:`T' = 1` for a bag of words)
    """

    def __init__(
        self,
        input_dim: int | None,
        width: int,
        kernel_size: int = 1,
        vocab_size: int | None = None,
        embedding_dim: int = 300,
        dropout: float = 0.0,
        text_encoder: nn.Module | None = None,
        freeze_embedding: bool = False,
        bag_of_words: bool = False,
    ) -> None:
        super().__init__()
        if text_encoder is not None:
            if input_dim is not None or vocab_size is not None:
                raise ValueError("TemporalProjection: with a text_encoder the input width is "
                                 "its hidden_size; pass input_dim=None and vocab_size=None.")
        elif input_dim is None and vocab_size is None:
            raise ValueError("TemporalProjection: token-id input (input_dim=None) needs a "
                             "vocab_size.")
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.text_encoder = text_encoder
        self.embedding = (
            nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
            if input_dim is None and text_encoder is None else None
        )
        if freeze_embedding:
            if self.embedding is None:
                raise ValueError("TemporalProjection: freeze_embedding needs token-id input "
                                 "(input_dim=None, a vocab_size).")
            self.embedding.weight.requires_grad_(False)
        if bag_of_words and self.embedding is None:
            raise ValueError("TemporalProjection: bag_of_words needs token-id input "
                             "(input_dim=None, a vocab_size).")
        self.bag_of_words = bag_of_words
        if bag_of_words:
            self.register_buffer("idf", torch.ones(vocab_size))
            # u^T E is a linear map of the TF-IDF row: start it as nn.Linear(V, E) starts,
            # not at N(0, 1) per word, whose noise a rare word's few samples never undo
            bound = vocab_size ** -0.5
            with torch.no_grad():
                self.embedding.weight.uniform_(-bound, bound)
                self.embedding.weight[0] = 0
        in_channels = (text_encoder.hidden_size if text_encoder is not None
                       else embedding_dim if input_dim is None else input_dim)
        self.conv = nn.Conv1d(in_channels, width, kernel_size, bias=False)

    @torch.no_grad()
    def load_embedding(self, vectors: Tensor) -> None:
        r"""Copy ``vectors`` :math:`(V', E)` into the first :math:`V'` rows of the token
        embedding (:math:`V' \leq` ``vocab_size``, :math:`E` = ``embedding_dim``); rows
        beyond :math:`V'` keep their values."""
        if self.embedding is None:
            raise ValueError("TemporalProjection.load_embedding: this projection reads "
                             "features, not token ids; it has no embedding.")
        rows, width = self.embedding.weight.shape
        if vectors.dim() != 2 or vectors.shape[0] > rows or vectors.shape[1] != width:
            raise ValueError(f"TemporalProjection.load_embedding: expected at most {rows} "
                             f"vectors of width {width} (embedding_dim), found "
                             f"{tuple(vectors.shape)}. Set the modality's embedding_dim to "
                             "the vectors' width.")
        weight = self.embedding.weight
        weight[: vectors.shape[0]] = vectors.to(device=weight.device, dtype=weight.dtype)

    @torch.no_grad()
    def set_idf(self, idf: Tensor) -> None:
        r"""Set the bag of words' inverse document frequencies :math:`(V)`
        (:func:`~dhmd_graph.data.transforms.inverse_document_frequency`)."""
        if not self.bag_of_words:
            raise ValueError("TemporalProjection.set_idf: this projection reads sequences, "
                             "not a bag of words; build it with bag_of_words=True.")
        if idf.shape != self.idf.shape:
            raise ValueError(f"TemporalProjection.set_idf: expected {tuple(self.idf.shape)} "
                             f"values (one per id of the vocabulary), found "
                             f"{tuple(idf.shape)}.")
        self.idf.copy_(idf)

    def tfidf(self, ids: Tensor, lengths: Tensor) -> Tensor:
        r"""The unit-length TF-IDF rows :math:`(B, V)` of token ids :math:`(B, T)` with
        true lengths :math:`(B)`; padding (id 0 or past the length) is not counted."""
        valid = length_mask(lengths, ids.shape[1]) & (ids != 0)  # (B, T)
        counts = self.idf.new_zeros(ids.shape[0], self.idf.shape[0])  # (B, V)
        counts.scatter_add_(1, ids, valid.to(counts.dtype))
        present = counts > 0
        weights = torch.where(present, counts.clamp_min(1).log() + 1, 0) * self.idf  # (B, V)
        return F.normalize(weights, dim=1)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.text_encoder is not None:
            x = self.text_encoder(x)  # (B, T, 3) tokens -> (B, T, H)
        if self.bag_of_words:
            x = (self.tfidf(x, lengths) @ self.embedding.weight).unsqueeze(1)  # (B, 1, d_m)
            lengths = torch.ones_like(lengths)
        elif self.embedding is not None:
            x = self.embedding(x)  # (B, T, d_m)
        x = inverted_dropout(x, self.dropout, self.training)  # (B, T, d_m)
        x = x * length_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)  # (B, T, d_m)
        x = F.pad(x, (0, 0, 0, max(self.kernel_size - x.shape[1], 0)))  # (B, max(T, k), d_m)
        out = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T', d)
        return out, (lengths - self.kernel_size + 1).clamp_min(1)

    def __repr__(self) -> str:
        source = ("bert" if self.text_encoder is not None
                  else "bag of words" if self.bag_of_words
                  else "tokens" if self.embedding is not None else self.conv.in_channels)
        return (f"{type(self).__name__}({source}, {self.conv.out_channels}, "
                f"kernel_size={self.kernel_size})")


class DecoupledFeatures(NamedTuple):
    r"""The decoupled features of every modality (lists in modality order).

    Attributes:
        projected (list[Tensor]): :math:`\tilde{\mathbf{X}}_m`, ``(B, T'_m, d)``.
        private (list[Tensor]): Heterogeneous :math:`\mathbf{s}_m = E_m(\tilde{\mathbf{X}}_m)`.
        shared (list[Tensor]): Homogeneous :math:`\mathbf{c}_m = E_c(\tilde{\mathbf{X}}_m)`.
        reconstructed (list[Tensor]): :math:`\hat{\mathbf{X}}_m = D_m([\mathbf{s}_m ;
            \mathbf{c}_m])`.
        private_recoded (list[Tensor]): :math:`\mathbf{s}^r_m = E_m(\hat{\mathbf{X}}_m)`.
        lengths (list[Tensor]): ``(B,)`` true lengths :math:`T'_m` of every sequence.
    """

    projected: list[Tensor]
    private: list[Tensor]
    shared: list[Tensor]
    reconstructed: list[Tensor]
    private_recoded: list[Tensor]
    lengths: list[Tensor]


class Decoupling(nn.Module):
    r"""Decouples each projected modality into a heterogeneous (private) and a
    homogeneous (shared) part, with the self-regression of the reference:

    .. math::
        \mathbf{s}_m = E_m(\tilde{\mathbf{X}}_m),\quad
        \mathbf{c}_m = E_c(\tilde{\mathbf{X}}_m),\quad
        \hat{\mathbf{X}}_m = D_m([\mathbf{s}_m ; \mathbf{c}_m]),\quad
        \mathbf{s}^r_m = E_m(\hat{\mathbf{X}}_m),

    with one private encoder :math:`E_m` and decoder :math:`D_m` per modality and one
    shared encoder :math:`E_c` for all (run once on all modalities concatenated along
    time). All are bias-free position-wise linear maps (1×1 convolutions).

    Args:
        num_modalities (int): :math:`M`.
        width (int): :math:`d`.

    Shapes:
        - **input:** :math:`M` sequences :math:`(B, T'_m, d)` and their lengths
          :math:`(B)`
        - **output:** :class:`DecoupledFeatures`
    """

    def __init__(self, num_modalities: int, width: int) -> None:
        super().__init__()
        self.private = nn.ModuleList(
            nn.Linear(width, width, bias=False) for _ in range(num_modalities)
        )
        self.shared = nn.Linear(width, width, bias=False)
        self.decoders = nn.ModuleList(
            nn.Linear(2 * width, width, bias=False) for _ in range(num_modalities)
        )

    def forward(self, projected: list[Tensor], lengths: list[Tensor]) -> DecoupledFeatures:
        steps = [x.shape[1] for x in projected]
        shared = list(self.shared(torch.cat(projected, dim=1)).split(steps, dim=1))  # (B, T'_m, d)
        private, reconstructed, recoded = [], [], []
        for x, c, encoder, decoder in zip(projected, shared, self.private, self.decoders,
                                          strict=True):
            s = encoder(x)  # (B, T', d)
            x_hat = decoder(torch.cat([s, c], dim=-1))  # (B, T', d)
            private.append(s)
            reconstructed.append(x_hat)
            recoded.append(encoder(x_hat))  # (B, T', d)
        return DecoupledFeatures(projected, private, shared, reconstructed, recoded, lengths)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.private)}, {self.shared.in_features})"


class ResidualHead(nn.Module):
    r"""The residual MLP head of the reference,

    .. math::
        \mathbf{h} = \mathbf{x} + \mathbf{W}_2\,\mathrm{Dropout}(\mathrm{ReLU}(
        \mathbf{W}_1 \mathbf{x})),\qquad y = \mathbf{W}_o \mathbf{h},

    returning both the representation :math:`\mathbf{h}` and the output :math:`y`.

    Args:
        channels (int): Input width :math:`C`.
        out_channels (int, optional): Output width. (default: :obj:`1`)
        dropout (float, optional): Dropout inside the MLP. (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(*, C)`
        - **output:** :math:`((*, C), (*, \text{out}))`
    """

    def __init__(self, channels: int, out_channels: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(channels, channels)
        self.back = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, out_channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x + self.back(self.dropout(torch.relu(self.hidden(x))))  # (*, C)
        return h, self.out(h)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hidden.in_features}, {self.out.out_features})"


class FlattenHead(nn.Module):
    r"""The homogeneous head of the DMD reference, bound to one sequence length
    :math:`T'`: the time-major flatten :math:`\mathbf{f} \in \mathbb{R}^{T' C}` of a
    sequence goes through a residual MLP of width :math:`T' C`,

    .. math::
        \mathbf{r} = \mathrm{ReLU}(\mathbf{W}_1 \mathbf{f}),\qquad
        \mathbf{h} = \mathbf{f} + \mathbf{W}_2\,\mathrm{Dropout}(\mathbf{r}),\qquad
        y = \mathbf{W}_o \mathbf{h},

    returning the representation :math:`\mathbf{r}` (width :math:`C`; the reference's
    ``repr_*_homo``, its ``proj1`` output after the in-place ReLU) and the output
    :math:`y`. Every step enters the flatten, padded or not. Compare
    :class:`ResidualHead` on a pooled vector, which works with any length.

    Args:
        steps (int): The sequence length :math:`T'` the head is built for.
        channels (int): Feature width :math:`C` (and width of :math:`\mathbf{r}`).
        out_channels (int, optional): Output width. (default: :obj:`1`)
        dropout (float, optional): Dropout on :math:`\mathbf{r}` in the residual
            branch. (default: :obj:`0.0`)
        name (str, optional): What the sequence is, for error messages.
            (default: :obj:`"input"`)

    Shapes:
        - **input:** :math:`(B, T', C)`
        - **output:** :math:`((B, C), (B, \text{out}))`
    """

    def __init__(self, steps: int, channels: int, out_channels: int = 1, dropout: float = 0.0,
                 name: str = "input") -> None:
        super().__init__()
        self.steps = steps
        self.name = name
        self.hidden = nn.Linear(steps * channels, channels)
        self.back = nn.Linear(channels, steps * channels)
        self.out = nn.Linear(steps * channels, out_channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] != self.steps:
            raise ValueError(
                f"{type(self).__name__} ({self.name}): built for sequences of {self.steps} "
                f"steps, found {x.shape[1]}. The 'flatten' head is bound to "
                "modalities.NAME.sequence_length (steps = sequence_length - kernel_size + 1); "
                "set it to the data's padded length, or use encoder.homogeneous_head=pooled, "
                "which works with any length.")
        flat = x.flatten(1)  # (B, T' C), time-major
        r = torch.relu(self.hidden(flat))  # (B, C)
        h = flat + self.back(self.dropout(r))  # (B, T' C)
        return r, self.out(h)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(steps={self.steps}, {self.hidden.out_features}, "
                f"{self.out.out_features})")
