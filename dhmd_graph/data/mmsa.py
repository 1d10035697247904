"""Reader for the MMSA pickles (``aligned_50.pkl``, ``unaligned_50.pkl``, ``unaligned_39.pkl``).

The file is a dict with the splits ``train``, ``valid`` and ``test``; each split is
a dict of arrays::

    id                  (N,)          "video$_$clip"
    raw_text            (N,)          utterances                     (optional)
    text                (N, T_l, 768) BERT features
    text_bert           (N, 3, T_l)   token ids, attention mask, segment ids (optional)
    audio               (N, T_a, d_a) may hold -inf (set to 0 here)
    vision              (N, T_v, d_v)
    audio_lengths       (N,)          unaligned files only
    vision_lengths      (N,)          unaligned files only
    regression_labels   (N,)
    classification_labels (N,)        0 negative, 1 neutral, 2 positive (optional)
    regression_labels_T/_A/_V (N,)    CH-SIMS unimodal labels        (optional)
    modality_reliability (N, 3)       synthetic files: 1 reliable, 0 corrupted, per
                                      (text, audio, vision)          (optional)

With ``text="bert"`` the ``text`` modality is ``text_bert`` instead, transposed to
``(N, T_l, 3)`` int64 tokens (ids, attention mask, segment ids per step) for a model
whose text goes through BERT (``ModalityConfig.bert_path``); ``text`` itself is then not
needed.

Shapes come from the arrays, never from a configuration. Features are cast to
float32 field by field (the original is released as soon as it is cast), so
reading needs little more than the unpickled file itself.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.checks import (
    Budget,
    Location,
    as_array,
    check_finite,
    check_labels,
    check_splits,
    float_features,
    zero_negative_infinity,
)
from dhmd_graph.data.labels import SENTIMENT3_CLASSES
from dhmd_graph.data.safe_pickle import load_pickle
from dhmd_graph.errors import ConfigError, DatasetError

__all__ = ["MODALITIES", "RELIABILITY", "SPLITS", "load_mmsa", "read_mmsa"]

SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
REQUIRED = ("id", "text", "audio", "vision")
LABELS = ("regression", "classification")
TEXT_INPUTS = ("features", "bert")
"""What ``load_mmsa(..., text=...)`` reads as the ``text`` modality: the BERT features
``text`` or the BERT tokens ``text_bert``."""
UNIMODAL_LABELS = {"regression_labels_T": "text", "regression_labels_A": "audio",
                   "regression_labels_V": "vision"}
RELIABILITY = "modality_reliability"
"""The optional ``(N, 3)`` per-sample reliability field of the synthetic files, kept in
``dataset.extras`` under the same name (columns in :data:`MODALITIES` order)."""
SENTIMENT_RANGE = (-3.0, 3.0)  # CMU-MOSI / CMU-MOSEI
SIMS_RANGE = (-1.0, 1.0)  # CH-SIMS, recognised by its unimodal labels


def load_mmsa(path: str | PathLike, *, label_range: tuple[float, float] | None = None,
              labels: str = "regression", text: str = "features"
              ) -> dict[str, MultimodalDataset]:
    r"""Read an MMSA pickle into one :class:`MultimodalDataset` per split.

    The pickle is loaded with the restricted unpickler and every split is validated:
    required keys, ranks, sample counts, lengths, finite features and labels in range.

    Args:
        path (str or PathLike): The ``.pkl`` file.
        label_range (tuple[float, float], optional): Inclusive range of valid regression
            labels; :obj:`None` picks ``(-1, 1)`` when the CH-SIMS unimodal labels
            ``regression_labels_T/_A/_V`` are present and ``(-3, 3)`` otherwise.
            (default: :obj:`None`)
        labels (str, optional): Which labels to read: ``'regression'``
            (``regression_labels``, scores) or ``'classification'``
            (``classification_labels``, MMSA's 3-class sentiment: class indices 0
            negative, 1 neutral, 2 positive, named as in
            :data:`~dhmd_graph.data.labels.SENTIMENT3_CLASSES`; the unimodal labels
            are then not read). (default: ``'regression'``)
        text (str, optional): The ``text`` modality: ``'features'`` (the float
            features ``text``) or ``'bert'`` (the tokens ``text_bert`` as ``(N, T_l, 3)``
            int64, for a model with a BERT text encoder). (default: ``'features'``)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'``; modalities
        ``'text'``, ``'audio'``, ``'vision'`` with float32 ``(N, T_m, d_m)`` features
        (text: ``(N, T_l, 3)`` int64 tokens with ``text='bert'``).

    Raises:
        DatasetError: For a missing, truncated or unsafe file or any invalid field,
            naming the file, split, field, what was expected and what was found.

    A ``modality_reliability`` field (synthetic files) is kept as
    ``dataset.extras['modality_reliability']``, ``(N, 3)`` float32 in ``[0, 1]``.
    """
    _check_option(labels, text)  # before reading a file of several GB
    path = Path(path)
    return read_mmsa(load_pickle(path), path, label_range=label_range, labels=labels,
                     text=text)


def read_mmsa(data: object, path: str | PathLike, *,
              label_range: tuple[float, float] | None = None, labels: str = "regression",
              text: str = "features") -> dict[str, MultimodalDataset]:
    r"""The splits of an already unpickled MMSA dict (arguments as :func:`load_mmsa`;
    ``path`` is used in messages). Splits are popped from ``data`` as they are read."""
    _check_option(labels, text)
    if not isinstance(data, dict):
        raise DatasetError("not an MMSA pickle", file=path,
                           expected="a dict with keys 'train', 'valid', 'test'",
                           found=f"a {type(data).__name__}",
                           fix="Pass the aligned_50.pkl / unaligned_50.pkl file from MMSA")
    missing = [split for split in SPLITS if split not in data]
    if missing:
        raise DatasetError("missing split", file=path, split=missing[0],
                           expected=f"splits {list(SPLITS)}", found=f"keys {sorted(map(str, data))}",
                           fix="Pass a complete MMSA pickle with all three splits")
    # Pop each split so its raw arrays are released as soon as it is read.
    budget = Budget(path)
    datasets = {split: _read_split(data.pop(split), Location(path, split, budget), label_range,
                                   labels, text)
                for split in SPLITS}
    check_splits(datasets, path)
    return datasets


def _check_option(labels: str, text: str) -> None:
    if labels not in LABELS:
        raise ConfigError(f"load_mmsa: labels must be one of {list(LABELS)}; found {labels!r}.")
    if text not in TEXT_INPUTS:
        raise ConfigError(f"load_mmsa: text must be one of {list(TEXT_INPUTS)}; found {text!r}.")


def _read_split(raw, where: Location, label_range: tuple[float, float] | None, labels: str,
                text: str) -> MultimodalDataset:
    if not isinstance(raw, dict):
        raise where.error("split is not a dict", "-", "a dict of arrays",
                          f"a {type(raw).__name__}", "Export each split as a dict of arrays")
    # Pop fields from a private copy (splits may share objects): each raw array is then
    # released as soon as it is converted, unless another split still holds it.
    raw = dict(raw)
    required = (*REQUIRED, f"{labels}_labels")
    if text == "bert":
        required = tuple("text_bert" if key == "text" else key for key in required)
    for key in required:
        if key not in raw:
            raise where.error("missing field", key, f"fields {list(required)}",
                              f"fields {sorted(map(str, raw))}",
                              "Export the split with the MMSA field names")
    ids = _strings(raw.pop("id"), where, "id")

    features: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    if text == "bert":
        raw.pop("text", None)
        features["text"] = _bert_tokens(raw.pop("text_bert"), where, ids)  # (N, T_l, 3)
        lengths["text"] = features["text"][..., 1].sum(axis=1)  # attention mask
    for name in MODALITIES:
        if name in features:
            continue
        array = float_features(raw.pop(name), where, name)  # (N, T_m, d_m)
        if name == "audio":
            array = zero_negative_infinity(array)
        check_finite(array, where, name, ids)
        features[name] = array

    lengths |= {name: _lengths(raw, name, features[name], where) for name in MODALITIES
                if name not in lengths}
    raw_text = raw.pop("raw_text", None)
    if raw_text is not None:
        raw_text = _strings(raw_text, where, "raw_text")
    field = f"{labels}_labels"
    if labels == "classification":
        return MultimodalDataset(
            features, lengths, _vector(raw.pop(field), where, field), ids, label_kind="class",
            num_classes=len(SENTIMENT3_CLASSES), label_names=SENTIMENT3_CLASSES,
            label_field=field, raw_text=raw_text, source=str(where.file), split=where.split)
    scores = _vector(raw.pop(field), where, field)
    unimodal = {name: _vector(raw.pop(key), where, key)
                for key, name in UNIMODAL_LABELS.items() if key in raw}
    extras = {RELIABILITY: _reliability(raw.pop(RELIABILITY), where)} if RELIABILITY in raw else {}
    dataset = MultimodalDataset(features, lengths, scores, ids, label_field=field,
                                unimodal_labels=unimodal, raw_text=raw_text, extras=extras,
                                source=str(where.file), split=where.split)
    if label_range is None:
        label_range = SIMS_RANGE if unimodal else SENTIMENT_RANGE
    check_labels(dataset.labels, label_range, where, "regression_labels", dataset.ids)
    for key, name in UNIMODAL_LABELS.items():
        if name in unimodal:
            check_labels(dataset.unimodal_labels[name], label_range, where, key, dataset.ids)
    return dataset


def _lengths(raw: dict, name: str, features: np.ndarray, where: Location) -> np.ndarray:
    """``(N,)`` true lengths: ``<name>_lengths``, the BERT attention mask, or full length."""
    count, steps = features.shape[:2]
    if name == "text" and "text_bert" in raw:
        tokens = as_array(raw.pop("text_bert"), where, "text_bert")
        if tokens.shape != (count, 3, steps) or tokens.dtype.kind not in "fiu":
            raise where.error("text_bert does not match text", "text_bert",
                              f"shape (N, 3, T_l) = {(count, 3, steps)}",
                              f"shape {tokens.shape}, dtype {tokens.dtype}",
                              "Export text_bert as (token ids, attention mask, segment ids)")
        return tokens[:, 1].sum(axis=1).astype(np.int64)  # attention-mask row
    key = f"{name}_lengths"
    if key not in raw:
        return np.full(count, steps, dtype=np.int64)
    lengths = as_array(raw.pop(key), where, key)
    if lengths.ndim != 1 or lengths.dtype.kind not in "fiu":
        raise where.error("wrong lengths", key, "a (N,) integer array",
                          f"shape {lengths.shape}, dtype {lengths.dtype}",
                          "Export one length per sample")
    if not np.array_equal(lengths, np.round(lengths)):
        raise where.error("lengths are not whole numbers", key, "integer lengths",
                          f"values such as {lengths[lengths != np.round(lengths)][0]}",
                          "Export lengths as integers")
    return lengths.astype(np.int64)


def _bert_tokens(value, where: Location, ids: np.ndarray) -> np.ndarray:
    """``text_bert`` ``(N, 3, T)`` as ``(N, T, 3)`` int64 tokens: whole, non-negative ids,
    a 0/1 attention mask with at least one step, whole segment ids."""
    tokens = as_array(value, where, "text_bert")
    if tokens.ndim != 3 or tokens.shape[1] != 3 or tokens.shape[0] != len(ids) \
            or tokens.dtype.kind not in "fiu":
        raise where.error("wrong BERT tokens", "text_bert",
                          f"a numeric array of shape (N, 3, T_l) with N={len(ids)}",
                          f"shape {tokens.shape}, dtype {tokens.dtype}",
                          "Export text_bert as (token ids, attention mask, segment ids)")
    mask = tokens[:, 1]
    bad = ~np.isfinite(tokens).all(axis=(1, 2)) | (tokens != np.round(tokens)).any(axis=(1, 2)) \
        | (tokens < 0).any(axis=(1, 2)) | ~np.isin(mask, (0, 1)).all(axis=1) \
        | (mask.sum(axis=1) < 1)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise where.error("bad BERT tokens", "text_bert",
                          "whole non-negative ids and segment ids and a 0/1 attention mask "
                          "with at least one step", f"sample {index} ('{ids[index]}')",
                          "Export text_bert from a BERT tokenizer")
    return np.ascontiguousarray(tokens.transpose(0, 2, 1)).astype(np.int64)


def _strings(value, where: Location, field: str) -> np.ndarray:
    """A ``(N,)`` array of ids or texts: strings or numbers, one per sample."""
    array = as_array(value, where, field)
    if array.ndim != 1 or (array.dtype == object and not all(
            isinstance(item, (str, bytes, int, float)) for item in array)):
        raise where.error("wrong strings", field, "a (N,) array of strings, one per sample",
                          f"shape {array.shape}, dtype {array.dtype}",
                          "Export one string per sample")
    return array


def _vector(value, where: Location, field: str) -> np.ndarray:
    """A ``(N,)`` numeric label array."""
    array = as_array(value, where, field)
    if array.ndim != 1 or array.dtype.kind not in "fiu":
        raise where.error("wrong labels", field, "a (N,) numeric array",
                          f"shape {array.shape}, dtype {array.dtype}",
                          "Export one label per sample")
    return array.astype(np.float32)


def _reliability(value, where: Location) -> np.ndarray:
    """The ``(N, 3)`` float32 per-sample reliability of (text, audio, vision) in [0, 1]."""
    array = as_array(value, where, RELIABILITY)
    if array.ndim != 2 or array.shape[1] != len(MODALITIES) \
            or not np.issubdtype(array.dtype, np.number):
        raise where.error("wrong reliability", RELIABILITY,
                          f"a (N, {len(MODALITIES)}) float array over {list(MODALITIES)}",
                          f"shape {array.shape}, dtype {array.dtype}",
                          "Export one reliability per sample and modality, or drop the field")
    array = array.astype(np.float32)
    if not (np.isfinite(array).all() and (array >= 0).all() and (array <= 1).all()):
        bad = array[~(np.isfinite(array) & (array >= 0) & (array <= 1))][0]
        raise where.error("reliability outside [0, 1]", RELIABILITY, "values in [0, 1]",
                          f"{bad}", "Export 1 for reliable and 0 for corrupted modalities")
    return array
