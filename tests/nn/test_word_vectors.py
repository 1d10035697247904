"""Word vectors from a local file: formats, look-up, coverage, and the model hook."""

import numpy as np
import pytest
import torch

from dhmd_graph.config import DHMDConfig, ModalityConfig
from dhmd_graph.data import DatasetError, MultimodalDataset, collate
from dhmd_graph.model import DHMD
from dhmd_graph.nn.word_vectors import coverage_line, load_word_vectors, vector_width

VOCABULARY = ["<pad>", "<unk>", "good", "Bad", "movie", "zzz"]
VECTORS = {"good": [1.0, 0.0, 0.5], "bad": [-1.0, 0.0, 0.25], "movie": [0.0, 2.0, 0.0],
           "film": [0.0, 1.5, 0.0]}


def _write(path, header=False, extra=()):
    lines = [f"{len(VECTORS)} 3"] if header else []
    lines += [f"{word} {' '.join(str(v) for v in vector)}" for word, vector in VECTORS.items()]
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [False, True], ids=["glove", "fasttext-vec"])
def test_vectors_of_the_vocabulary_and_coverage(tmp_path, header):
    path = _write(tmp_path / "words.txt", header)
    assert vector_width(path) == 3
    vectors, coverage = load_word_vectors(path, VOCABULARY)
    assert vectors.shape == (6, 3) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors[2], torch.tensor(VECTORS["good"]))
    torch.testing.assert_close(vectors[3], torch.tensor(VECTORS["bad"]))  # 'Bad' lower-cased
    torch.testing.assert_close(vectors[4], torch.tensor(VECTORS["movie"]))
    assert not vectors[[0, 1, 5]].any()  # padding, unknown, and a word the file lacks
    assert coverage == 0.75  # 3 of the 4 words


def test_exact_case_wins_and_first_entry_wins_and_words_with_spaces(tmp_path):
    path = _write(tmp_path / "v.txt", extra=["Bad 9 9 9", "good 7 7 7", ". . . 4 4 4"])
    vectors, _ = load_word_vectors(path, [*VOCABULARY, ". . ."], num_embeddings=9)
    assert vectors.shape == (9, 3)
    assert vectors[3].tolist() == [9, 9, 9]  # the exact 'Bad' beats the earlier 'bad'
    assert vectors[2].tolist() == [1.0, 0.0, 0.5]  # the first 'good'
    assert vectors[6].tolist() == [4, 4, 4]


def test_coverage_line():
    assert coverage_line("text", "glove.txt", 0.75, 4) == (
        "text: word vectors from 'glove.txt' cover 75.0% of the vocabulary's 4 words "
        "(3 found; the others start at zero)")


def test_bad_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match="no word-vector file"):
        load_word_vectors(tmp_path / "missing.vec", VOCABULARY)
    bad = _write(tmp_path / "bad.txt", extra=["movie 1 2"])
    with pytest.raises(DatasetError, match="line 5") as error:
        load_word_vectors(bad, VOCABULARY)
    assert "a word and 3 values" in str(error.value)
    nan = _write(tmp_path / "nan.txt", extra=["zzz 1 x 2"])
    with pytest.raises(DatasetError, match="not a number"):
        load_word_vectors(nan, VOCABULARY)


def _config(path, finetune=True, embedding_dim=3):
    return DHMDConfig(modalities=[
        ModalityConfig("text", vocab_size=len(VOCABULARY), embedding_dim=embedding_dim,
                       word_vectors=str(path), word_vectors_finetune=finetune),
        ModalityConfig("audio", input_dim=2)], width=4, num_heads=2)


def _batch():
    ids = np.array([[2, 4, 0], [3, 5, 1]])
    split = MultimodalDataset({"text": ids, "audio": np.ones((2, 1, 2), np.float32)},
                              {"text": np.array([2, 3]), "audio": np.ones(2, int)},
                              np.array([1.0, -1.0]), ["a", "b"])
    return collate([split[0], split[1]])


@pytest.mark.parametrize("finetune", [True, False])
def test_model_starts_from_the_vectors_frozen_or_not(tmp_path, finetune):
    path = _write(tmp_path / "v.vec", header=True)
    torch.manual_seed(0)
    model = DHMD(_config(path, finetune))
    assert model.load_word_vectors(VOCABULARY) == {"text": 0.75}
    embedding = model.projections[0].embedding.weight
    expected, _ = load_word_vectors(path, VOCABULARY)
    torch.testing.assert_close(embedding.detach(), expected)
    assert embedding.requires_grad is finetune
    out = model(_batch())
    out.prediction.sum().backward()
    assert (embedding.grad is not None) is finetune


def test_model_hook_refuses_what_does_not_fit(tmp_path):
    path = _write(tmp_path / "v.txt")
    with pytest.raises(ValueError, match="embedding_dim=3"):
        DHMD(_config(path, embedding_dim=5)).load_word_vectors(VOCABULARY)
    with pytest.raises(ValueError, match="more than modalities.text.vocab_size"):
        DHMD(_config(path)).load_word_vectors([*VOCABULARY, "extra"])
    features = DHMDConfig(modalities=[ModalityConfig("text", input_dim=3, word_vectors=str(path)),
                                      ModalityConfig("audio", input_dim=2)], width=4, num_heads=2)
    with pytest.raises(ValueError, match="reads features of width 3"):
        DHMD(features)
    with pytest.raises(ValueError, match="freeze a random embedding"):
        ModalityConfig("text", vocab_size=9, word_vectors_finetune=False)
    with pytest.raises(ValueError, match="word_vectors"):
        ModalityConfig("text", bert_path="bert", word_vectors=str(path))
