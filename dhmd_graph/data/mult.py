r"""Reader for MulT-format pickles (``iemocap_data.pkl``, ``iemocap_data_noalign.pkl``,
``mosei_senti_data.pkl``, ``mosi_data.pkl``, ...; Tsai et al., ACL 2019).

The file is a dict with the splits ``train``, ``valid`` and ``test``; each split is a
dict of arrays::

    text     (N, T_l, 300)  GloVe word vectors
    audio    (N, T_a, 74)   COVAREP; may hold -inf (set to 0 here, as MulT does)
    vision   (N, T_v, 35)   Facet
    labels   see below
    id       (N,) or (N, k)  optional; rows such as (video, start, end)

The features are zero-padded and the file stores no lengths, so every step of every
sample counts as valid (MulT itself uses all steps). Ids are the ``id`` rows joined as
``"<video>$_$<rest>"`` (the rest joined with ``'_'``), or ``"<split>_<index>"`` without
``id``.

The labels come in several layouts, told apart by shape and dtype unless ``label_kind``
says otherwise:

=====================  ===============  ===================================================
``labels``             kind             example
=====================  ===============  ===================================================
``(N, C, 2)``          ``'multi_hot'``  IEMOCAP: one ``[absent, present]`` one-hot pair per
                       ``(N, C)``       emotion (neutral, happy, sad, angry); the four
                                        binary tasks of MulT are its columns
``(N, 1, 1)``,         ``'score'``      MOSI / MOSEI sentiment in ``[-3, 3]``
``(N, 1)``, ``(N,)``
float
``(N,)``, ``(N, 1)``   ``'class'``      one class index per sample (e.g. IEMOCAP-6,
integer                                 humour, sarcasm)
``(N, C)``, ``C > 1``  ``'multi_hot'``  ``C`` 0/1 labels per sample
=====================  ===============  ===================================================
"""

from __future__ import annotations

from collections.abc import Sequence
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
    float_features,
    zero_negative_infinity,
)
from dhmd_graph.data.labels import IEMOCAP4_EMOTIONS, LABEL_KINDS, MAX_CLASSES
from dhmd_graph.data.safe_pickle import load_pickle
from dhmd_graph.errors import ConfigError, DatasetError

__all__ = ["MODALITIES", "SPLITS", "load_mult", "read_mult"]

SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
REQUIRED = (*MODALITIES, "labels")
SENTIMENT_RANGE = (-3.0, 3.0)


def load_mult(path: str | PathLike, *, label_kind: str | None = None,
              label_names: Sequence[str] | None = None,
              label_range: tuple[float, float] | None = None) -> dict[str, MultimodalDataset]:
    r"""Read a MulT-format pickle into one :class:`MultimodalDataset` per split.

    The pickle is loaded with the restricted unpickler; see :func:`read_mult`.

    Args:
        path (str or PathLike): The ``.pkl`` file.
        label_kind (str, optional): ``'score'``, ``'class'`` or ``'multi_hot'``;
            :obj:`None` tells it from the labels' layout (module docstring).
            (default: :obj:`None`)
        label_names (Sequence[str], optional): A name per class or label; it also fixes
            the number of classes of class labels, which is otherwise the largest index
            in any split plus one. :obj:`None` names IEMOCAP's four emotions for
            ``(N, 4, 2)`` labels and nothing otherwise. (default: :obj:`None`)
        label_range (tuple[float, float], optional): Inclusive range of valid scores.
            (default: ``(-3.0, 3.0)``)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'``;
        modalities ``'text'``, ``'audio'``, ``'vision'`` with float32 features.

    Raises:
        DatasetError: For a missing, truncated or unsafe file or any invalid field,
            naming the file, split, field, what was expected and what was found.
    """
    path = Path(path)
    return read_mult(load_pickle(path), path, label_kind=label_kind, label_names=label_names,
                     label_range=label_range)


def read_mult(data: object, path: str | PathLike, *, label_kind: str | None = None,
              label_names: Sequence[str] | None = None,
              label_range: tuple[float, float] | None = None) -> dict[str, MultimodalDataset]:
    r"""The splits of an already unpickled MulT-format dict (arguments as :func:`load_mult`;
    ``path`` is used in messages)."""
    if label_kind is not None and label_kind not in LABEL_KINDS:
        raise ConfigError(f"load_mult: label_kind must be one of {list(LABEL_KINDS)} or None; "
                          f"found {label_kind!r}.")
    if not isinstance(data, dict):
        raise DatasetError("not a MulT pickle", file=path,
                           expected="a dict with keys 'train', 'valid', 'test'",
                           found=f"a {type(data).__name__}",
                           fix="Pass a MulT data file such as iemocap_data.pkl")
    missing = [split for split in SPLITS if split not in data]
    if missing:
        raise DatasetError("missing split", file=path, split=missing[0],
                           expected=f"splits {list(SPLITS)}", found=f"keys {sorted(map(str, data))}",
                           fix="Pass a complete MulT pickle with all three splits")
    budget = Budget(path)  # nested lists are charged before they are expanded
    raw = {split: _fields(data[split], Location(path, split, budget)) for split in SPLITS}
    layouts = {split: _layout(raw[split]["labels"], Location(path, split), label_kind)
               for split in SPLITS}
    kinds = {kind for kind, _ in layouts.values()}
    if len(kinds) > 1:
        raise DatasetError("splits disagree on the kind of label", file=path, field="labels",
                           expected="one label layout in every split",
                           found=", ".join(f"{s}: {k}" for s, (k, _) in layouts.items()),
                           fix="Export the labels of every split alike")
    (kind,) = kinds
    labels = {split: values for split, (_, values) in layouts.items()}
    num_classes = _num_classes(kind, labels, label_names, path)
    one_hot_pairs = np.ndim(raw["train"]["labels"]) == 3
    if label_names is None and one_hot_pairs and num_classes == len(IEMOCAP4_EMOTIONS):
        label_names = IEMOCAP4_EMOTIONS  # MulT's IEMOCAP layout
    datasets = {}
    for split in SPLITS:
        where = Location(path, split)
        dataset = MultimodalDataset(
            raw[split]["features"], raw[split]["lengths"], labels[split], raw[split]["ids"],
            label_kind=kind, num_classes=num_classes, label_names=label_names,
            source=str(path), split=split)
        if kind == "score":
            check_labels(dataset.labels, label_range or SENTIMENT_RANGE, where, "labels",
                         dataset.ids)
        datasets[split] = dataset
    return datasets


def _fields(raw: object, where: Location) -> dict:
    """Features, full lengths, raw labels and ids of one split."""
    if not isinstance(raw, dict):
        raise where.error("split is not a dict", "-", "a dict of arrays",
                          f"a {type(raw).__name__}", "Export each split as a dict of arrays")
    for key in REQUIRED:
        if key not in raw:
            raise where.error("missing field", key, f"fields {list(REQUIRED)} (and 'id')",
                              f"fields {sorted(map(str, raw))}",
                              "Export the split with the MulT field names")
    features = {}
    for name in MODALITIES:
        array = float_features(raw[name], where, name)  # (N, T_m, d_m)
        if name == "audio":
            array = zero_negative_infinity(array)
        check_finite(array, where, name)
        features[name] = array
    count = len(features["text"])
    ids = _ids(raw.get("id"), count, where)
    return {"features": features, "ids": ids, "labels": as_array(raw["labels"], where, "labels"),
            "lengths": {name: np.full(count, array.shape[1]) for name, array in features.items()}}


def _ids(value: object, count: int, where: Location) -> list[str]:
    if value is None:
        return [f"{where.split}_{i}" for i in range(count)]
    rows = np.asarray(value, dtype=object)
    if rows.ndim == 1:
        return [_text(item) for item in rows]
    if rows.ndim == 2 and rows.shape[1] >= 1:
        return [_text(row[0]) + ("$_$" + "_".join(_text(v) for v in row[1:]) if len(row) > 1
                                 else "") for row in rows]
    raise where.error("wrong ids", "id", "(N,) ids or (N, k) rows such as (video, start, end)",
                      f"shape {rows.shape}", "Export one id per sample")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_LAYOUTS = ("(N, C, 2) one-hot pairs, (N, 1, 1), (N, 1) or (N,) scores or class indices, "
            "or (N, C) 0/1 labels, with C >= 1")


def _layout(labels: np.ndarray, where: Location, kind: str | None) -> tuple[str, np.ndarray]:
    """The label kind and the labels in the dataset's layout (see the module docstring);
    any other shape, or an empty class axis, is refused."""
    shape = labels.shape
    if not (labels.ndim == 1 or (labels.ndim == 2 and shape[1] >= 1)
            or (labels.ndim == 3 and shape[1] >= 1 and (shape[2] == 2 or shape[1:] == (1, 1)))):
        raise where.error("labels of an unknown layout", "labels", _LAYOUTS,
                          f"shape {shape}", "Export the labels in one of these layouts")
    if labels.ndim == 3 and shape[2] == 2:  # (N, C, 2) one-hot per label
        one_hot = ((labels == 0) | (labels == 1)).all(axis=(1, 2)) & (labels.sum(axis=2) == 1).all(1)
        if not one_hot.all():
            index = int(np.flatnonzero(~one_hot)[0])
            raise where.error("labels are not one-hot per label", "labels",
                              "(N, C, 2) rows of [1, 0] (absent) or [0, 1] (present)",
                              f"{labels[index].tolist()} at sample {index}",
                              "Export one [absent, present] one-hot pair per label")
        return kind or "multi_hot", labels.argmax(axis=2)  # (N, C)
    squeezed = labels.reshape(len(labels), -1) if labels.ndim > 1 else labels  # (N,) or (N, C)
    if squeezed.ndim == 2 and squeezed.shape[1] == 1:
        squeezed = squeezed[:, 0]  # (N, 1, 1) or (N, 1) -> (N,)
    if kind is None:
        if squeezed.ndim == 2:
            kind = "multi_hot"
        elif np.issubdtype(squeezed.dtype, np.integer):
            kind = "class"
        else:
            kind = "score"
    return kind, squeezed


def _num_classes(kind: str, labels: dict[str, np.ndarray], label_names: Sequence[str] | None,
                 path: str | PathLike) -> int | None:
    """The number of classes (multi-hot labels), bounded by :data:`MAX_CLASSES` before any
    per-class array exists."""
    if kind == "multi_hot":
        return labels["train"].shape[1] if labels["train"].ndim == 2 else None
    if kind == "score":
        return None
    if label_names is not None:
        return len(label_names)
    largest, split = max(
        ((float(values[np.isfinite(values)].max()), split) for split, values in labels.items()
         if np.issubdtype(values.dtype, np.number) and np.isfinite(values).any()),
        default=(0.0, None))
    if largest >= MAX_CLASSES:
        raise DatasetError("class index too large", file=path, split=split, field="labels",
                           expected=f"class indices 0, 1, ... below {MAX_CLASSES}",
                           found=f"{largest:.0f}", fix="Number the classes from 0")
    return max(2, int(largest) + 1)
