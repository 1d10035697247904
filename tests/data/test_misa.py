import pickle

import numpy as np
import pytest

from dhmd_graph.data import collate, load_misa
from dhmd_graph.data.errors import DatasetError

SENTENCES = {
    "train": [["i", "love", "it"], ["i", "hate", "this", "movie"], ["ok"]],
    "dev": [["love", "this", "film"]],
    "test": [["hate", "it", "so", "much", "really"], ["ok"]],
}


def _sample(words, label, segment, rng):
    size = len(words)
    word_ids = np.arange(100, 100 + size)  # ids of MISA's own vocabulary: ignored
    visual = rng.normal(size=(size, 47))
    acoustic = rng.normal(size=(size, 74))
    return (word_ids, visual, acoustic, list(words)), np.array([[label]]), segment


def write_misa(directory, sentences=SENTENCES, mutate=None):
    rng = np.random.default_rng(0)
    for split, rows in sentences.items():
        samples = [_sample(words, 0.5 * i - 1, f"vid{split}[{i}]", rng) for i, words in enumerate(rows)]
        if mutate is not None:
            samples = mutate(split, samples)
        (directory / f"{split}.pkl").write_bytes(pickle.dumps(samples))
    return directory


def test_splits_vocabulary_and_padding(tmp_path):
    datasets = load_misa(write_misa(tmp_path))
    assert list(datasets) == ["train", "valid", "test"]
    train, valid, test = datasets.values()
    assert train.modalities == ("text", "audio", "vision")
    assert train.vocabulary[:2] == ["<pad>", "<unk>"]
    assert train.vocabulary == ["<pad>", "<unk>", "i", "love", "it", "hate", "this", "movie", "ok"]
    assert valid.vocabulary == train.vocabulary
    # Padded to the split's longest sample; token ids over the train vocabulary.
    assert train.features["text"].dtype == np.int64
    assert train.features["text"].tolist() == [[2, 3, 4, 0], [2, 5, 6, 7], [8, 0, 0, 0]]
    assert valid.features["text"].tolist() == [[3, 6, 1]]  # 'film' is unknown
    assert test.features["text"][0].tolist() == [5, 4, 1, 1, 1]
    assert train.features["audio"].shape == (3, 4, 74) and train.features["vision"].shape == (3, 4, 47)
    assert train.features["audio"].dtype == np.float32
    for name in train.modalities:
        assert train.lengths[name].tolist() == [3, 4, 1]
    assert np.all(train.features["audio"][2, 1:] == 0)
    assert train.labels.tolist() == [-1.0, -0.5, 0.0]
    assert train.ids == ["vidtrain[0]", "vidtrain[1]", "vidtrain[2]"]
    assert train.raw_text[1] == "i hate this movie"


def test_batches_carry_token_ids(tmp_path):
    train = load_misa(write_misa(tmp_path))["train"]
    batch = collate([train[0], train[2]])
    assert batch.features["text"].dtype.is_floating_point is False
    assert batch.features["text"].tolist() == [[2, 3, 4], [8, 0, 0]]
    assert batch.mask("vision").tolist() == [[True, True, True], [True, False, False]]


def test_missing_split_file(tmp_path):
    write_misa(tmp_path)
    (tmp_path / "dev.pkl").unlink()
    with pytest.raises(DatasetError, match="no such file") as info:
        load_misa(tmp_path)
    assert "dev.pkl" in str(info.value)


def _shorten_visual(split, samples):
    if split == "test":
        (ids, visual, acoustic, words), label, segment = samples[0]
        samples[0] = (ids, visual[:-1], acoustic, words), label, segment
    return samples


def _malformed(split, samples):
    return samples + [("just a string",)] if split == "train" else samples


def _wide_label(split, samples):
    if split == "dev":
        inputs, _, segment = samples[0]
        samples[0] = inputs, np.array([[4.0]]), segment
    return samples


def _nan_acoustic(split, samples):
    if split == "train":
        samples[1][0][2][0, 0] = np.nan
    return samples


def _words(value, sample=1):
    def mutate(split, samples):
        if split == "train":
            (ids, visual, acoustic, _), label, segment = samples[sample]
            samples[sample] = (ids, visual, acoustic, value), label, segment
        return samples
    return mutate


def _segment(split, samples):
    if split == "test":
        inputs, label, _ = samples[1]
        samples[1] = inputs, label, ["not", "an", "id"]
    return samples


@pytest.mark.parametrize("mutate, split, field, found", [
    (_words(7), "train", "words of sample 1", "int 7 ('vidtrain[1]')"),
    (_words("i hate this movie"), "train", "words of sample 1", "str 'i hate this movie'"),
    (_words(["i", 3, "this", "movie"]), "train", "words of sample 1", "int 3"),
    (_words([]), "train", "words of sample 1", "a non-empty list of strings"),
    (_segment, "test", "segment id of sample 1", "list ['not', 'an', 'id']"),
    (_shorten_visual, "test", "visual of sample 0", "shape (4, 47) ('vidtest[0]')"),
    (_malformed, "train", "sample 3", "a tuple"),
    (_wide_label, "valid", "label", "4.0 at sample 0 ('viddev[0]')"),
    (_nan_acoustic, "train", "audio", "sample 1 ('vidtrain[1]')"),
])
def test_invalid_samples(tmp_path, mutate, split, field, found):
    write_misa(tmp_path, mutate=mutate)
    with pytest.raises(DatasetError) as info:
        load_misa(tmp_path)
    assert info.value.split == split and info.value.field == field
    assert found in str(info.value)
    assert info.value.file.endswith(".pkl")
