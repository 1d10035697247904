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

__all__ = ["bag_of_words", "tfidf_features"]


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
