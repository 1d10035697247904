"""The utterance-level stand-in for small real data: layout, vocabulary, planted truth."""

import json

import numpy as np
import pytest

from dhmd_graph.baselines import fit_baselines
from dhmd_graph.data import load_dataset
from dhmd_graph.data.synthetic_utterances import (
    GENERATOR_VERSION,
    default_utterance_dataset_path,
    write_synthetic_utterances,
)

SMALL = {"train": 400, "valid": 100, "test": 150}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("utterances")
    write_synthetic_utterances(root / "data", sizes=SMALL, seed=3, vectors=root / "words.vec")
    return root


def test_one_step_audio_vision_and_token_text(folder):
    splits = load_dataset(folder / "data")
    assert {split: len(d) for split, d in splits.items()} == SMALL
    for dataset in splits.values():
        assert dataset.features["audio"].shape[1:] == (1, 4)
        assert dataset.features["vision"].shape[1:] == (1, 16)
        assert dataset.features["text"].ndim == 2 and dataset.features["text"].dtype == np.int64
        length = dataset.lengths["text"]
        assert length.min() >= 1 and length.max() <= 114
    train = splits["train"]
    vision = train.features["vision"][:, 0]  # standardised on train
    np.testing.assert_allclose(vision.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(vision.std(0), 1, atol=1e-3)


def test_vocabulary_is_the_training_words_and_others_are_unknown(folder):
    splits = load_dataset(folder / "data")
    vocabulary = splits["train"].vocabulary
    assert vocabulary[:2] == ["<pad>", "<unk>"] and len(set(vocabulary)) == len(vocabulary)
    index = {word: i for i, word in enumerate(vocabulary)}
    unknown = {}
    for split, dataset in splits.items():
        ids = dataset.features["text"]
        for i in range(len(dataset)):
            words = dataset.raw_text[i].split()
            assert len(words) == dataset.lengths["text"][i]
            expected = [index.get(word, 1) for word in words]  # id 1: unknown
            assert ids[i, : len(words)].tolist() == expected
            assert (ids[i, len(words):] == 0).all()
        valid = np.arange(ids.shape[1])[None] < dataset.lengths["text"][:, None]
        unknown[split] = float((ids[valid] == 1).mean())
    assert unknown["train"] == 0.0
    assert 0.03 < unknown["valid"] < 0.3 and 0.03 < unknown["test"] < 0.3


def test_deterministic_per_seed(folder, tmp_path):
    write_synthetic_utterances(tmp_path / "same", sizes=SMALL, seed=3)
    write_synthetic_utterances(tmp_path / "other", sizes=SMALL, seed=4)
    for name in ("text.npy", "audio.npy", "vision.npy", "labels.csv", "vocabulary.json"):
        same = (tmp_path / "same" / name).read_bytes()
        assert same == (folder / "data" / name).read_bytes()
    for name in ("text.npy", "labels.csv"):
        assert (tmp_path / "other" / name).read_bytes() != (folder / "data" / name).read_bytes()


def test_words_carry_the_sentiment_and_audio_vision_are_weak(folder):
    splits = load_dataset(folder / "data")
    text = fit_baselines(splits, modalities=["text"])
    audio = fit_baselines(splits, modalities=["audio"])[1]
    mean, ridge = text
    assert ridge.test["MAE"] < mean.test["MAE"] - 0.15 and ridge.test["Corr"] > 0.35
    assert audio.test["Corr"] < 0.35 and audio.test["MAE"] > ridge.test["MAE"]


def test_vectors_file_has_a_header_and_covers_the_general_words(folder):
    lines = (folder / "words.vec").read_text(encoding="utf-8").splitlines()
    count, dim = map(int, lines[0].split())
    assert len(lines) == count + 1 and dim == 50
    assert all(len(line.split()) == dim + 1 for line in lines[1:50])
    words = {line.split(" ", 1)[0] for line in lines[1:]}
    vocabulary = json.loads((folder / "data" / "vocabulary.json").read_text())[2:]
    coverage = np.mean([word in words for word in vocabulary])
    assert 0.8 < coverage < 1.0  # every general word, most topic words


def test_bad_sizes_and_profile_are_refused(tmp_path):
    with pytest.raises(ValueError, match="sizes must give an integer >= 2"):
        write_synthetic_utterances(tmp_path / "x", sizes={"train": 10, "valid": 1, "test": 5})
    with pytest.raises(ValueError, match="unknown profile 'mosei'"):
        write_synthetic_utterances(tmp_path / "x", profile="mosei")


def test_default_path_is_cached_by_version(tmp_path, monkeypatch):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path))
    sizes = {"train": 30, "valid": 10, "test": 10}
    path = default_utterance_dataset_path(sizes=sizes, seed=1)
    assert path == (tmp_path / "synthetic_utterances" / f"v{GENERATOR_VERSION}"
                    / "mosi_utterance_30-10-10_1")
    stamp = (path / "labels.csv").stat().st_mtime_ns
    assert default_utterance_dataset_path(sizes=sizes, seed=1) == path
    assert (path / "labels.csv").stat().st_mtime_ns == stamp  # not written again
