"""A tiny randomly initialised BERT, saved as a user saves ``bert-base-uncased`` (hidden
size 16, 2 heads). Shared by the BERT tests; pytest finds this module through
``pythonpath = ["tests"]``. Needs ``transformers``."""

from pathlib import Path

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
