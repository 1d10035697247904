r"""BERT as the text encoder, fine-tuned with the rest of the model (optional).

The MMSA pickles ship, beside the pre-extracted 768-d BERT features (``text``), the
token ids they were computed from (``text_bert``, ``(N, 3, T)``: ids, attention mask,
segment ids). :class:`BertTextEncoder` runs BERT on those ids inside the model, so that
BERT is trained with it, as the reference does with ``use_finetune``.

It needs the ``bert`` extra (``pip install 'dhmd_graph[bert]'``, i.e. ``transformers``)
and a BERT model in a local folder that the user names: ``config.json`` and the weights
(``model.safetensors`` or ``pytorch_model.bin``), e.g. of ``bert-base-uncased``. Nothing
is ever downloaded: the folder is read with ``local_files_only=True``, and loading sets
``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` for the process before
``transformers`` is imported. No weights ship with the library.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["BertTextEncoder"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
"""The weight files of a saved BERT model, one of which the folder must hold."""


def _import_transformers():
    # huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError as error:
        raise ImportError("BertTextEncoder needs transformers: "
                          "pip install 'dhmd_graph[bert]'") from error
    return transformers


class BertTextEncoder(nn.Module):
    r"""BERT over token ids, trained with the model or frozen,

    .. math::
        \mathbf{X}_L = \mathrm{BERT}(\text{ids}, \text{mask}, \text{segments})
        \in \mathbb{R}^{B \times T \times H},

    the last hidden state, which then enters the temporal projection as the text
    features (:math:`H = 768` for ``bert-base-uncased``, the width of the MMSA ``text``
    features).

    The tokens come as one integer tensor whose last axis holds the id, the attention
    mask and the segment id of each step: the MMSA field ``text_bert`` ``(N, 3, T)``
    transposed to ``(N, T, 3)``, so that a dataset crops and pads it along time like
    any other sequence (padding is id 0 with mask 0).

    As in the reference, with ``finetune`` BERT is trained with the rest of the model;
    without it BERT runs without gradient, its weights frozen. Either way its dropout
    follows the module's ``train()``/``eval()`` mode, as in the reference. BERT's pooler
    is dropped (the reference loads it but never uses it), so that every parameter
    receives a gradient.

    Args:
        path (str or PathLike): A local folder with ``config.json`` and the weights of a
            BERT model (``model.safetensors`` or ``pytorch_model.bin``).
        finetune (bool, optional): Train BERT with the model (the reference's
            ``use_finetune``). (default: :obj:`True`)
        pretrained (bool, optional): Load the folder's weights; :obj:`False` builds the
            architecture from ``config.json`` alone, with random weights, for a
            checkpoint to fill (the folder then needs no weights). (default: :obj:`True`)

    Raises:
        ImportError: ``transformers`` is not installed.
        ValueError: The folder does not exist or lacks ``config.json`` or (with
            ``pretrained``) the weights; the message says what to put where.

    Shapes:
        - **input:** tokens :math:`(B, T, 3)` integer (ids, attention mask, segment ids)
        - **output:** :math:`(B, T, H)`
    """

    def __init__(self, path: str | PathLike, *, finetune: bool = True,
                 pretrained: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.finetune = finetune
        _check_folder(self.path, pretrained)
        transformers = _import_transformers()
        if pretrained:
            bert = transformers.BertModel.from_pretrained(str(self.path), local_files_only=True)
        else:
            config = transformers.BertConfig.from_pretrained(str(self.path),
                                                             local_files_only=True)
            bert = transformers.BertModel(config)
        bert.pooler = None  # unused: the last hidden state is the output
        self.bert = bert.requires_grad_(finetune)

    @property
    def hidden_size(self) -> int:
        """:math:`H`, the width of the output."""
        return self.bert.config.hidden_size

    def forward(self, tokens: Tensor) -> Tensor:
        ids, mask, segments = tokens.long().unbind(dim=-1)  # (B, T) each
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            out = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        return out.last_hidden_state  # (B, T, H)

    def __repr__(self) -> str:
        config = self.bert.config
        return (f"{type(self).__name__}('{self.path}', hidden_size={config.hidden_size}, "
                f"layers={config.num_hidden_layers}, finetune={self.finetune})")


def _check_folder(path: Path, pretrained: bool) -> None:
    needed = ["config.json"] + (["model weights"] if pretrained else [])
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if pretrained and not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append("model weights (model.safetensors or pytorch_model.bin)")
    if not missing:
        return
    found = (f"only {sorted(p.name for p in path.iterdir())[:8]}" if path.is_dir()
             else "no such folder")
    raise ValueError(
        f"BertTextEncoder.path: no BERT model at '{path}'; expected a folder with "
        f"{' and '.join(needed)}, found {found} (missing {', '.join(missing)}). Put the "
        "files of a BERT model there, e.g. bert-base-uncased saved on a machine with "
        "internet access by `python -c \"from transformers import BertModel; "
        "BertModel.from_pretrained('bert-base-uncased').save_pretrained('bert-base-uncased')\"`"
        " and copied into that folder; nothing is downloaded at run time.")
