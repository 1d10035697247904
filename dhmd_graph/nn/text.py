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

**An untrusted folder.** The folder is read by this module, not handed to
``from_pretrained``: ``config.json`` through the guarded JSON reader of
:mod:`dhmd_graph.files` (a regular file, at most 1 MiB, nested at most 8 deep), its sizes
checked (positive integers within :data:`BERT_SIZE_LIMITS`, at most
:data:`MAX_BERT_PARAMETERS` parameters, the hidden size a multiple of the heads) and its
other known keys' types checked before any model is built; the weights with
``safetensors`` (the header's length, JSON and offsets checked first) or
``torch.load(weights_only=True)``, which never runs code. Every failure of those readers,
and weights whose names or shapes are not those of ``config.json``'s model, is one
:class:`~dhmd_graph.errors.DatasetError` naming the file and what to put there. A file
that a symbolic link leads out of the folder (the Hugging Face cache's layout) is read
with an :class:`~dhmd_graph.files.OutsideFolderWarning`.
"""

from __future__ import annotations

import math
import os
import pickle
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dhmd_graph.errors import DatasetError
from dhmd_graph.files import (
    Key,
    check_object,
    check_user_file,
    decode_text,
    is_safe_name,
    open_user_file,
    parse_json,
    read_user_json,
)

__all__ = ["BERT_SIZE_LIMITS", "MAX_BERT_PARAMETERS", "BertTextEncoder"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
"""The weight files of a saved BERT model, one of which the folder must hold (the first
present is read)."""

BERT_SIZE_LIMITS = {"vocab_size": 1_000_000, "hidden_size": 8192, "num_hidden_layers": 128,
                    "num_attention_heads": 128, "intermediate_size": 65_536,
                    "max_position_embeddings": 65_536, "type_vocab_size": 1024}
"""The largest value each size in a BERT ``config.json`` may have (bert-large: 30,522,
1024, 24, 16, 4096, 512 and 2)."""
MAX_BERT_PARAMETERS = 1_000_000_000
"""The most parameters a BERT ``config.json`` may ask for (4 GB of float32; bert-large has
335 million), checked before the model is built."""

_PROBABILITY = "a probability in [0, 1)"
_CONFIG_KEYS = {
    **{key: Key(int, f"a positive integer, at most {limit:,}")
       for key, limit in BERT_SIZE_LIMITS.items()},
    "hidden_dropout_prob": Key(float, _PROBABILITY),
    "attention_probs_dropout_prob": Key(float, _PROBABILITY),
    "layer_norm_eps": Key(float, "a small positive number such as 1e-12"),
    "initializer_range": Key(float, "a non-negative number such as 0.02"),
    "hidden_act": Key(str, "an activation name such as 'gelu'"),
    "model_type": Key(str, "'bert'"),
    "pad_token_id": Key((int, type(None)), "a token id below vocab_size, or null"),
    "position_embedding_type": Key(str, "'absolute'"),
}
"""The keys of a BERT ``config.json`` checked here; the others go to ``BertConfig`` as
they are (a format ``transformers`` owns)."""
_MAX_HEADER = 100 << 20  # bytes of a safetensors header (bert-large's: about 20 kB)
_FIX = ("Put the files of a BERT model there, e.g. bert-base-uncased saved on a machine with "
        "internet access by `python -c \"from transformers import BertModel; "
        "BertModel.from_pretrained('bert-base-uncased').save_pretrained('bert-base-uncased')\"`"
        " and copied into that folder; nothing is downloaded at run time")


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
        config_file = self.path / "config.json"
        config = _bert_config(transformers, config_file)
        try:  # no pooler: unused, the last hidden state is the output
            bert = transformers.BertModel(config, add_pooling_layer=False)
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise DatasetError("cannot build BERT from its config", file=config_file,
                               expected="the config.json of a BERT model",
                               found=f"{type(error).__name__}: {error}", fix=_FIX) from None
        if pretrained:
            weights, state = _read_weights(self.path)
            _load_weights(bert, state, weights)
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


def _bert_config(transformers, path: Path):
    """``transformers.BertConfig`` of a checked ``config.json`` (see the module docstring)."""
    data = check_object(read_user_json(path, max_bytes=1 << 20, max_depth=8, root=path.parent,
                                       what="a BERT config.json"),
                        _CONFIG_KEYS, path, fix=_FIX, others=True)

    def fail(key: str, expected: str) -> DatasetError:
        return DatasetError("a BERT config.json value out of range", file=path, field=key,
                            expected=expected, found=repr(data.get(key)), fix=_FIX)

    for key, limit in BERT_SIZE_LIMITS.items():
        if key in data and not 1 <= data[key] <= limit:
            raise fail(key, _CONFIG_KEYS[key].expected)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if key in data and not 0 <= data[key] < 1:
            raise fail(key, _PROBABILITY)
    if not (0 < data.get("layer_norm_eps", 1e-12) < 1 and 0 <= data.get("initializer_range", 0)
            and math.isfinite(data.get("initializer_range", 0))):
        raise fail("layer_norm_eps" if not 0 < data.get("layer_norm_eps", 1e-12) < 1
                   else "initializer_range", "a small positive number")
    if data.get("model_type", "bert") != "bert":
        raise fail("model_type", "'bert' (a BertModel's config)")
    from transformers.activations import ACT2FN

    if data.get("hidden_act", "gelu") not in ACT2FN:
        raise fail("hidden_act", f"one of {sorted(ACT2FN)[:8]}...")
    try:
        config = transformers.BertConfig.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise DatasetError("cannot read a BERT config", file=path,
                           expected="the config.json of a BERT model",
                           found=f"{type(error).__name__}: {error}", fix=_FIX) from None
    if config.hidden_size % config.num_attention_heads:
        raise fail("num_attention_heads", f"a divisor of hidden_size {config.hidden_size}")
    if config.pad_token_id is not None and not 0 <= config.pad_token_id < config.vocab_size:
        raise fail("pad_token_id", f"a token id in [0, {config.vocab_size})")
    h, layers = config.hidden_size, config.num_hidden_layers
    count = ((config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * h
             + layers * (4 * h * h + 2 * h * config.intermediate_size))
    if count > MAX_BERT_PARAMETERS:
        raise DatasetError("a BERT config.json asks for too large a model", file=path,
                           expected=f"at most {MAX_BERT_PARAMETERS:,} parameters",
                           found=f"about {count:,}", fix=_FIX)
    return config


def _read_weights(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The first of :data:`WEIGHT_FILES` in ``folder`` and the tensors it holds (an index
    file: the tensors of all its shards)."""
    path = next(folder / name for name in WEIGHT_FILES if (folder / name).exists())
    if not path.name.endswith(".index.json"):
        return path, _read_weight_file(path, folder)
    index = check_object(read_user_json(path, root=folder, what="a weights index"),
                         {"weight_map": Key(dict, "an object {tensor name: shard file}",
                                            required=True),
                          "metadata": Key(dict, "an object")}, path, fix=_FIX)
    shards = sorted(set(index["weight_map"].values()), key=str)
    state: dict[str, Any] = {}
    for shard in shards:
        if not is_safe_name(shard) or not shard.endswith((".safetensors", ".bin")):
            raise DatasetError("not a shard file name", file=path, field="weight_map",
                               expected="file names in the folder ending .safetensors or .bin",
                               found=repr(shard), fix=_FIX)
        state |= _read_weight_file(folder / shard, folder)
    return path, state


def _read_weight_file(path: Path, folder: Path) -> dict[str, Any]:
    """The tensors of one ``.safetensors`` or ``torch.save`` file, read without running
    code; any failure of the reader is one :class:`DatasetError` naming the file."""
    safetensors = path.suffix == ".safetensors"
    if safetensors:
        _check_safetensors_header(path, folder)
    else:
        check_user_file(path, root=folder, what="a torch.save state dict")
    try:
        if safetensors:
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError as error:  # weights_only refused an object that runs code
        raise DatasetError("refused BERT weights that are not plain tensors", file=path,
                           expected="a state dict of tensors (torch.save of model.state_dict())",
                           found=next((line.strip() for line in str(error).splitlines()
                                       if "GLOBAL" in line), "objects other than tensors"),
                           fix="Such a file can run code when loaded; save the model with "
                           "save_pretrained (model.safetensors) instead") from None
    except Exception as error:  # noqa: BLE001 - every failure of a file reader is bad input
        raise DatasetError("cannot read BERT weights", file=path,
                           expected="model.safetensors or pytorch_model.bin as save_pretrained "
                           "writes them", found=f"{type(error).__name__}: "
                           f"{str(error).splitlines()[0][:200] if str(error) else ''}",
                           fix=_FIX) from None
    if not (isinstance(state, dict) and all(isinstance(key, str) and isinstance(value, Tensor)
                                            for key, value in state.items())):
        raise DatasetError("cannot read BERT weights", file=path,
                           expected="a mapping of tensor names to tensors",
                           found=f"a {type(state).__name__}", fix=_FIX)
    return state


def _check_safetensors_header(path: Path, folder: Path) -> None:
    """Check a safetensors file's header (its 8-byte length, JSON and tensor offsets)
    before the library reads it, so that a header bomb costs nothing."""
    with open_user_file(path, root=folder, what="a safetensors file") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= length <= min(size - 8, _MAX_HEADER):
            raise DatasetError("not a safetensors file", file=path,
                               expected=f"an 8-byte header length of at most "
                               f"{min(size - 8, _MAX_HEADER):,} bytes",
                               found=f"{length:,}" if length >= 0 else "a truncated file",
                               fix=_FIX)
        header = parse_json(decode_text(file.read(length), path), path, max_depth=4,
                            what="a safetensors header")
    data = size - 8 - length
    if not isinstance(header, dict):
        raise DatasetError("not a safetensors file", file=path, expected="a JSON object header",
                           found=type(header).__name__, fix=_FIX)
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= data):
            raise DatasetError("a safetensors tensor outside the file", file=path, field=name,
                               expected=f"data_offsets within the {data:,} data bytes",
                               found=repr(offsets)[:80], fix=_FIX)


def _load_weights(bert: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Copy ``state`` into ``bert``: names as ``save_pretrained`` writes them (a ``bert.``
    prefix and the old ``gamma``/``beta`` names accepted, other heads ignored), every
    tensor of the model present with its shape."""
    expected = bert.state_dict()
    renamed = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
            if key.endswith(old) and key not in expected:
                key = key.removesuffix(old) + new
        if key in expected:
            renamed[key] = value
    for key, tensor in expected.items():
        found = renamed.get(key)
        if found is None or found.shape != tensor.shape:
            raise DatasetError(
                "BERT weights that do not fit config.json", file=path, field=key,
                expected=f"shape {list(tensor.shape)} (from config.json)",
                found="no such tensor" if found is None else f"shape {list(found.shape)}",
                fix="Put the weights and config.json of the same saved model in the folder")
    with torch.no_grad():
        bert.load_state_dict(renamed, strict=True)


def _check_folder(path: Path, pretrained: bool) -> None:
    needed = ["config.json"] + (["model weights"] if pretrained else [])
    # .exists(): what is there but not a regular file is named by the guarded reader
    missing = [] if (path / "config.json").exists() else ["config.json"]
    if pretrained and not any((path / name).exists() for name in WEIGHT_FILES):
        missing.append("model weights (model.safetensors or pytorch_model.bin)")
    if not missing:
        return
    found = (f"only {sorted(p.name for p in path.iterdir())[:8]}" if path.is_dir()
             else "no such folder")
    raise ValueError(
        f"BertTextEncoder.path: no BERT model at '{path}'; expected a folder with "
        f"{' and '.join(needed)}, found {found} (missing {', '.join(missing)}). {_FIX}.")
