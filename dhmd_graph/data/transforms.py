r"""Turn token ids into a one-step feature modality: TF-IDF of the words of each sample.

A short utterance's words carry most of its sentiment, and with about a thousand
utterances a model learns a word embedding badly (two thousand words, most seen a few
times). A bag of words sidesteps that: :func:`tfidf_features` counts each sample's token
ids (unigrams, or also the bigrams seen in training), weights them by TF-IDF fitted on
the training split only (sublinear term frequency :math:`1 + \log \mathrm{tf}`, smoothed
inverse document frequency, rows of unit norm; scikit-learn's ``TfidfTransformer``), and
:func:`bag_of_words` puts the result in place of the token-id modality as float features
of one step, ``(N, 1, F)``: one column per n-gram of the training split, or, with
``components``, its first ``components`` latent-semantic directions (a truncated SVD
fitted on the training split). A model then reads it as it reads any one-step feature
(a linear projection of the bag, the same input the linear baseline of
:mod:`dhmd_graph.baselines` has).

The model can also make the bag itself, from the token ids, at every step
(``ModalityConfig.bag_of_words``, :class:`~dhmd_graph.nn.TemporalProjection`): the same
TF-IDF rows over the vocabulary's ids, with the training split's
:func:`inverse_document_frequency` kept in the model, so that a saved model reads token
ids at prediction time as it did in training.

Token ids are those of ``(N, T)`` arrays within each sample's length, or the ids of BERT
tokens ``(N, T, 3)`` where their attention mask is set. Id 0 (padding) never occurs
within a length; the unknown id is counted like any word.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer

from dhmd_graph.data.batch import MultimodalDataset

__all__ = ["bag_of_words", "inverse_document_frequency", "tfidf_features"]


def _token_ids(array: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Per sample the valid token ids of ``(N, T)`` ids or ``(N, T, 3)`` BERT tokens."""
    ids = np.asarray(array)
    if ids.ndim == 3:  # BERT tokens: ids, attention mask, segment ids
        return [row[:, 0][row[:, 1] != 0] for row in ids]
    return [row[:length] for row, length in zip(ids, lengths, strict=True)]


def _counts(samples: list[np.ndarray], ngrams: int, columns: dict[tuple[int, ...], int],
            grow: bool) -> sparse.csr_matrix:
    """``(N, V)`` counts of the n-grams in ``columns`` (new ones added when ``grow``)."""
    rows, cols = [], []
    for row, ids in enumerate(samples):
        ids = ids.tolist()
        for n in range(1, ngrams + 1):
            for start in range(len(ids) - n + 1):
                gram = tuple(ids[start: start + n])
                if gram not in columns:
                    if not grow:
                        continue
                    columns[gram] = len(columns)
                rows.append(row)
                cols.append(columns[gram])
    values = np.ones(len(rows), dtype=np.float64)
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(len(samples), len(columns)))
    matrix.sum_duplicates()
    return matrix


def inverse_document_frequency(dataset: MultimodalDataset, modality: str, vocab_size: int
                               ) -> np.ndarray:
    r"""The smoothed inverse document frequency :math:`(V)` of every token id of a token
    modality, :math:`\mathrm{idf}_v = \ln\frac{1 + N}{1 + \mathrm{df}_v} + 1` over the
    :math:`N` samples of ``dataset`` (scikit-learn's ``TfidfTransformer`` default), with
    :math:`\mathrm{df}_v` the samples holding id :math:`v` within their length.

    Args:
        dataset (MultimodalDataset): The training split.
        modality (str): A modality of token ids ``(N, T)``.
        vocab_size (int): :math:`V`, the model's vocabulary size.

    Raises:
        ConfigError: An id at or above ``vocab_size``, or a modality that is not token ids.
    """
    from dhmd_graph.errors import ConfigError

    ids = dataset.features.get(modality)
    if ids is None or ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ConfigError(f"model.modalities.{modality}.bag_of_words: expected token ids "
                          f"(N, T) for '{modality}', found "
                          f"{'no such modality' if ids is None else f'{ids.dtype} {ids.shape}'}"
                          ". Drop bag_of_words for this modality.")
    frequency = np.zeros(vocab_size, dtype=np.int64)
    for row in _token_ids(ids, dataset.lengths[modality]):
        present = np.unique(row)
        if present.size and present[-1] >= vocab_size:
            raise ConfigError(f"model.modalities.{modality}.vocab_size is {vocab_size}, but "
                              f"the data holds token id {int(present[-1])}; build the model "
                              "for this dataset (fit_inputs).")
        frequency[present] += 1
    return np.log((1 + len(dataset)) / (1 + frequency)) + 1


def tfidf_features(datasets: Mapping[str, MultimodalDataset], modality: str, *,
                   ngrams: int = 1) -> dict[str, sparse.csr_matrix]:
    r"""Per split the ``(N, F)`` TF-IDF rows of a token modality, fitted on ``'train'``
    (see the module docstring); column :math:`j` is the :math:`j`-th n-gram of the
    training split in order of first appearance.

    Args:
        datasets (Mapping[str, MultimodalDataset]): ``'train'`` and any other splits.
        modality (str): A modality of token ids or BERT tokens.
        ngrams (int, optional): n-grams up to this length, 1 or 2. (default: ``1``)

    Raises:
        ValueError: ``ngrams`` is not 1 or 2, or ``modality`` does not hold token ids.
    """
    if ngrams not in (1, 2):
        raise ValueError(f"tfidf_features: ngrams must be 1 or 2, found {ngrams!r}.")
    train = datasets["train"]
    if modality not in train.features or not np.issubdtype(train.features[modality].dtype,
                                                           np.integer):
        raise ValueError(f"tfidf_features: {modality!r} must be a modality of token ids; the "
                         f"data's are {sorted(train.features)} with dtypes "
                         f"{ {k: str(v.dtype) for k, v in train.features.items()} }.")
    columns: dict[tuple[int, ...], int] = {}
    counts = {"train": _counts(_token_ids(train.features[modality], train.lengths[modality]),
                               ngrams, columns, grow=True)}
    for split, dataset in datasets.items():
        if split != "train":
            counts[split] = _counts(_token_ids(dataset.features[modality],
                                               dataset.lengths[modality]),
                                    ngrams, columns, grow=False)
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts["train"])
    return {split: tfidf.transform(counts[split]).tocsr() for split in datasets}


def bag_of_words(datasets: Mapping[str, MultimodalDataset], modality: str = "text", *,
                 ngrams: int = 1, components: int | None = None, seed: int = 0
                 ) -> dict[str, MultimodalDataset]:
    r"""The splits with the token modality ``modality`` replaced by its TF-IDF bag of words
    as one-step float features ``(N, 1, F)`` (see the module docstring).

    Args:
        datasets (Mapping[str, MultimodalDataset]): ``'train'`` and any other splits.
        modality (str, optional): The token modality. (default: ``'text'``)
        ngrams (int, optional): n-grams up to this length, 1 or 2. (default: ``1``)
        components (int, optional): Keep this many latent-semantic directions (truncated
            SVD fitted on the training split) instead of one column per n-gram.
            (default: :obj:`None`)
        seed (int, optional): The SVD's random state. (default: ``0``)

    Returns:
        dict[str, MultimodalDataset]: New splits; every other field is the input's.

    Raises:
        ValueError: As :func:`tfidf_features`, or ``components`` not below the number of
            n-grams.
    """
    rows = tfidf_features(datasets, modality, ngrams=ngrams)
    if components is not None:
        width = rows["train"].shape[1]
        if not 1 <= components < width:
            raise ValueError(f"bag_of_words: components must be in [1, {width - 1}] (the "
                             f"training split has {width} n-grams), found {components!r}.")
        svd = TruncatedSVD(components, random_state=seed).fit(rows["train"])
        dense = {split: svd.transform(x) for split, x in rows.items()}
    else:
        dense = {split: x.toarray() for split, x in rows.items()}
    out = {}
    for split, dataset in datasets.items():
        features = dict(dataset.features)
        features[modality] = dense[split].astype(np.float32)[:, None, :]  # (N, 1, F)
        lengths = dict(dataset.lengths)
        lengths[modality] = np.ones(len(dataset), dtype=np.int64)
        out[split] = MultimodalDataset(
            features, lengths, dataset.labels, dataset.ids, label_kind=dataset.label_kind,
            num_classes=dataset.num_classes, label_names=dataset.label_names,
            label_field=dataset.label_field, unimodal_labels=dataset.unimodal_labels,
            raw_text=dataset.raw_text, extras=dataset.extras, vocabulary=dataset.vocabulary,
            source=dataset.source, split=dataset.split)
    return out
