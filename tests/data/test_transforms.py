"""bag_of_words: token ids as a one-step TF-IDF feature modality."""

import numpy as np
import pytest

from dhmd_graph.data import MultimodalDataset
from dhmd_graph.data.loading import modality_inputs
from dhmd_graph.data.transforms import (
    bag_of_words,
    inverse_document_frequency,
    tfidf_features,
)
from dhmd_graph.errors import ConfigError


def _split(ids, lengths, name):
    n = len(ids)
    return MultimodalDataset(
        {"text": np.array(ids), "audio": np.ones((n, 1, 2), np.float32)},
        {"text": np.array(lengths), "audio": np.ones(n, int)}, np.arange(n, dtype=float),
        [f"{name}{i}" for i in range(n)], raw_text=[f"t{i}" for i in range(n)],
        vocabulary=["<pad>", "<unk>", *"abcdefgh"], split=name)


SPLITS = {"train": _split([[2, 3, 3, 0], [4, 2, 0, 0], [5, 6, 7, 2]], [3, 2, 4], "train"),
          "valid": _split([[9, 2, 0, 0]], [2], "valid"),
          "test": _split([[3, 1, 8, 0], [2, 2, 2, 2]], [3, 4], "test")}


def test_one_step_tfidf_replaces_the_token_ids():
    out = bag_of_words(SPLITS)
    rows = tfidf_features(SPLITS, "text")
    for split, dataset in out.items():
        assert dataset.features["text"].shape == (len(dataset), 1, 6)  # 6 training words
        assert dataset.lengths["text"].tolist() == [1] * len(dataset)
        np.testing.assert_allclose(dataset.features["text"][:, 0], rows[split].toarray(),
                                   rtol=1e-6)
        assert dataset.ids == SPLITS[split].ids and dataset.raw_text == SPLITS[split].raw_text
        np.testing.assert_array_equal(dataset.features["audio"], SPLITS[split].features["audio"])
    assert modality_inputs(out)["text"] == (6, None, False)
    # unseen words (9, 8, the unknown id 1) have no column; rows have unit norm
    np.testing.assert_allclose(np.linalg.norm(out["test"].features["text"][:, 0], axis=1), 1,
                               rtol=1e-6)
    assert np.count_nonzero(out["valid"].features["text"]) == 1
    # sublinear term frequency: 'b' twice in the first sample weighs 1 + log 2, not 2
    first = rows["train"].toarray()[0]
    idf = np.log(4 / np.array([3 + 1, 1 + 1])) + 1  # 'a' in 3 of 3 samples, 'b' in 1
    expected = np.array([idf[0], (1 + np.log(2)) * idf[1]])
    np.testing.assert_allclose(first[:2], expected / np.linalg.norm(expected))


def test_bigrams_and_latent_components():
    assert bag_of_words(SPLITS, ngrams=2)["train"].features["text"].shape[2] == 6 + 6
    reduced = bag_of_words(SPLITS, components=2)
    assert reduced["test"].features["text"].shape == (2, 1, 2)
    with pytest.raises(ValueError, match=r"components must be in \[1, 5\]"):
        bag_of_words(SPLITS, components=6)
    with pytest.raises(ValueError, match="must be a modality of token ids"):
        bag_of_words(SPLITS, "audio")


def test_inverse_document_frequency_is_scikit_learns_by_token_id():
    from sklearn.feature_extraction.text import TfidfTransformer

    train = SPLITS["train"]
    idf = inverse_document_frequency(train, "text", 12)
    counts = np.zeros((3, 12))
    for row, (ids, length) in enumerate(zip(train.features["text"], train.lengths["text"],
                                            strict=True)):
        np.add.at(counts[row], ids[:length], 1)
    expected = TfidfTransformer().fit(counts).idf_
    np.testing.assert_allclose(idf, expected)
    assert idf[2] == pytest.approx(np.log(4 / 4) + 1)  # in all three samples
    assert idf[9] == pytest.approx(np.log(4 / 1) + 1)  # in none


def test_inverse_document_frequency_refuses_ids_beyond_the_vocabulary_and_features():
    with pytest.raises(ConfigError, match="vocab_size is 6, but the data holds token id 7"):
        inverse_document_frequency(SPLITS["train"], "text", 6)
    with pytest.raises(ConfigError, match="expected token ids"):
        inverse_document_frequency(SPLITS["train"], "audio", 6)
