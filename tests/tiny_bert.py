"""A tiny randomly initialised BERT, saved as a user saves ``bert-base-uncased`` (hidden
size 16, 2 heads). Shared by the BERT tests; pytest finds this module through
``pythonpath = ["tests"]``. Needs ``transformers``."""

import pickle
from pathlib import Path

import numpy as np
import torch


def save_tiny_bert(folder: Path, vocab_size: int, num_hidden_layers: int = 1,
                   max_position_embeddings: int = 32) -> Path:
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=16, num_hidden_layers=num_hidden_layers,
        num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=max_position_embeddings)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def write_bert_pickle(path: Path, vocab_size: int, steps: int = 6) -> Path:
    """An aligned MMSA pickle (8 / 4 / 4 samples) whose ``text_bert`` (N, 3, T) holds float
    ids below ``vocab_size``, the attention mask and segments, beside text features."""
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 8), ("valid", 4), ("test", 4)):
        length = rng.integers(2, steps + 1, size=n)
        mask = (np.arange(steps) < length[:, None]).astype(np.float32)  # (n, T)
        ids = rng.integers(4, vocab_size, size=(n, steps)) * mask
        data[split] = {
            "id": np.array([f"{split}{i}$_$0" for i in range(n)], dtype=object),
            "text": rng.normal(size=(n, steps, 5)).astype(np.float32),
            "text_bert": np.stack([ids, mask, np.zeros_like(mask)], axis=1),
            "audio": rng.normal(size=(n, steps, 3)).astype(np.float32),
            "vision": rng.normal(size=(n, steps, 4)).astype(np.float32),
            "regression_labels": rng.uniform(-3, 3, size=n).astype(np.float32),
        }
    path.write_bytes(pickle.dumps(data))
    return path
