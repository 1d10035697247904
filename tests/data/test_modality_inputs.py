"""modality_inputs and the 'model inputs' lines of describe."""

import numpy as np

from dhmd_graph.data import MultimodalDataset
from dhmd_graph.data.loading import describe, modality_inputs


def _split(token_ids, vocabulary=None):
    token_ids = np.asarray(token_ids, dtype=np.int64)  # (N, T)
    n, steps = token_ids.shape
    features = {"text": token_ids, "audio": np.zeros((n, steps, 3), np.float32)}
    lengths = {"text": np.full(n, steps), "audio": np.full(n, steps)}
    return MultimodalDataset(features, lengths, np.zeros(n), [str(i) for i in range(n)],
                             vocabulary=vocabulary)


def test_vocabulary_covers_every_split_and_the_largest_id():
    words = ["<pad>", "<unk>", "a", "b"]
    splits = {"train": _split([[2, 3]], words), "valid": _split([[1, 0]], words)}
    assert modality_inputs(splits) == {"text": (None, 4, False), "audio": (3, None, False)}
    # Without a vocabulary (or with ids beyond it) the largest id of any split decides.
    splits = {"train": _split([[2, 3]]), "test": _split([[9, 1]])}
    assert modality_inputs(splits)["text"] == (None, 10, False)
    assert modality_inputs({"train": _split([[9, 0]], words)})["text"].vocab_size == 10


def test_describe_says_what_the_model_is_built_with():
    text = describe({"train": _split([[2, 7]], ["<pad>", "<unk>", "a"])})
    assert text.splitlines()[-3:] == [
        "model inputs (taken from the data by 'dhmd train'):",
        "  text     token ids: input_dim=None, vocab_size=8",
        "  audio    input_dim=3",
    ]


def test_integer_triples_are_bert_tokens_not_features():
    tokens = np.ones((2, 4, 3), np.int64)  # (N, T, 3) ids, mask, segments
    split = MultimodalDataset({"text": tokens, "audio": tokens.astype(np.float32)},
                              {"text": np.full(2, 4), "audio": np.full(2, 4)}, np.zeros(2),
                              ["a", "b"])
    assert modality_inputs({"train": split}) == {"text": (None, None, True),
                                                 "audio": (3, None, False)}
    assert "  text     BERT token ids: bert_path=<a BERT folder>" in describe({"train": split})


def test_steps_are_the_longest_true_length_over_the_splits():
    from dhmd_graph.data.loading import modality_steps

    def split(text_lengths):
        n = len(text_lengths)
        return MultimodalDataset({"text": np.ones((n, 6), np.int64),
                                  "audio": np.zeros((n, 1, 4), np.float32)},
                                 {"text": np.array(text_lengths), "audio": np.ones(n)},
                                 np.zeros(n), [str(i) for i in range(n)])

    splits = {"train": split([2, 3]), "valid": split([5]), "test": split([1])}
    assert modality_steps(splits) == {"text": 5, "audio": 1}
