"""The dataset every reader produces, and the padded batch every model consumes.

A :class:`MultimodalDataset` holds one split: per modality an array of shape
``(N, T_m, d_m)`` (float features, possibly a read-only ``np.memmap``) or
``(N, T_m)`` (int64 token ids), the true lengths ``(N,)`` of every sample and
modality, the labels (a score ``(N,)``, a class index ``(N,)`` or a multi-hot row
``(N, C)``, see :mod:`~dhmd_graph.data.labels`; or none at all, for data to predict on)
and, where present, unimodal labels, ids, raw text and named per-sample extras (e.g. a
planted ``modality_reliability``).
Indexing returns one sample cropped to its true lengths; the
:func:`collate` function pads a list of samples to the longest one in the batch
and returns a :class:`MultimodalBatch` whose :meth:`~MultimodalBatch.mask`
gives the valid steps. Masks always come from lengths, never from zero frames.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from dhmd_graph.data.labels import LABEL_KINDS, MAX_CLASSES
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import SAFE_NAME, is_safe_name

__all__ = ["MultimodalBatch", "MultimodalDataset", "collate"]

_LABEL_HELP = {
    "score": "one finite score per sample, shape (N,)",
    "class": "one class index per sample, shape (N,), in [0, num_classes)",
    "multi_hot": "one row of 0/1 values per sample, shape (N, C)",
}

RELEASE_EVERY = 128
"""Samples a :class:`MultimodalDataset` reads between two
:meth:`~MultimodalDataset.release_pages` of its memory-mapped features. A page fault maps
the kernel's read-ahead window too, so in random order one sample maps about a megabyte
of a MOSEI-size cache: 1024 samples kept ~1.1 GB mapped, 128 keep ~0.2 GB, for about half
a second per 16k-sample epoch (page cache warm)."""


@dataclass
class MultimodalBatch:
    r"""A padded batch of ``B`` samples with ``M`` named modalities.

    Attributes:
        features (dict[str, Tensor]): Per modality, ``(B, T_m, d_m)`` float32 features
            or ``(B, T_m)`` int64 token ids, zero-padded after each sample's length.
        lengths (dict[str, Tensor]): Per modality, ``(B,)`` int64 true lengths (>= 1).
        labels (Tensor or None): ``(B,)`` float32 scores, ``(B,)`` int64 class indices or
            ``(B, C)`` float32 multi-hot rows, as the dataset's ``label_kind``;
            :obj:`None` for unlabelled samples (data to predict on).
        ids (list[str]): Sample ids, length ``B``.
        unimodal_labels (dict[str, Tensor]): Per modality ``(B,)`` float32 labels where
            the dataset has them (CH-SIMS), else empty.
        raw_text (list[str] or None): The utterances, when the dataset has them.
        extras (dict[str, Tensor]): The dataset's per-sample extras, each ``(B, ...)``
            (e.g. ``modality_reliability`` ``(B, M)``), else empty.
    """

    features: dict[str, Tensor]
    lengths: dict[str, Tensor]
    labels: Tensor | None
    ids: list[str]
    unimodal_labels: dict[str, Tensor] = field(default_factory=dict)
    raw_text: list[str] | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modality names, in the order of :attr:`features`."""
        return tuple(self.features)

    @property
    def labelled(self) -> bool:
        """Whether the batch has labels (:obj:`False` for data to predict on)."""
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, modality: str) -> Tensor:
        """``(B, T_m)`` bool, ``True`` at the valid (unpadded) steps of ``modality``."""
        steps = self.features[modality].shape[1]
        positions = torch.arange(steps, device=self.lengths[modality].device)
        return positions.unsqueeze(0) < self.lengths[modality].unsqueeze(1)

    def apply(self, fn: Callable[[Tensor], Tensor]) -> MultimodalBatch:
        """A copy with ``fn`` applied to every tensor."""
        return MultimodalBatch(
            features={k: fn(v) for k, v in self.features.items()},
            lengths={k: fn(v) for k, v in self.lengths.items()},
            labels=None if self.labels is None else fn(self.labels),
            ids=list(self.ids),
            unimodal_labels={k: fn(v) for k, v in self.unimodal_labels.items()},
            raw_text=None if self.raw_text is None else list(self.raw_text),
            extras={k: fn(v) for k, v in self.extras.items()},
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MultimodalBatch:
        """A copy with every tensor on ``device``."""
        return self.apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MultimodalBatch:
        """Pinned-memory copy, so ``DataLoader(pin_memory=True)`` works with this type."""
        return self.apply(Tensor.pin_memory)


class MultimodalDataset(torch.utils.data.Dataset):
    r"""One split of a multimodal sentiment dataset.

    The arrays are kept as given (a ``np.memmap`` stays on disk); each
    ``__getitem__`` copies only one sample, cropped to its true lengths, and raises a
    :class:`DatasetError` naming the sample if a feature value in it is NaN or infinite.

    Args:
        features (Mapping[str, np.ndarray]): Per modality ``(N, T_m, d_m)`` float features
            or ``(N, T_m)`` integer token ids. The mapping's order is the modality order.
        lengths (Mapping[str, np.ndarray]): Per modality ``(N,)`` true lengths in
            ``[1, T_m]``.
        labels (np.ndarray or None): ``(N,)`` scores, ``(N,)`` class indices or ``(N, C)``
            multi-hot rows, as ``label_kind`` says; :obj:`None` for unlabelled data (to
            predict on: :attr:`labelled` is :obj:`False`, and ``label_kind``,
            ``num_classes`` and ``label_names`` are :obj:`None`).
        ids (Sequence[str]): ``N`` sample ids.
        label_kind (str, optional): ``'score'`` (finite floats, stored float32),
            ``'class'`` (whole numbers in ``[0, num_classes)``, stored int64) or
            ``'multi_hot'`` (0/1 values, ``C`` columns, stored float32).
            (default: ``'score'``)
        num_classes (int, optional): :math:`C`; required for ``'class'``, taken from
            the shape for ``'multi_hot'`` (and checked when given). (default: :obj:`None`)
        label_names (Sequence[str], optional): The name of each class or label, ``C`` of
            them. (default: :obj:`None`)
        label_field (str, optional): The labels' field in the source file, for
            messages. (default: ``'labels'``)
        unimodal_labels (Mapping[str, np.ndarray], optional): Per modality ``(N,)`` labels.
            (default: :obj:`None`)
        raw_text (Sequence[str], optional): ``N`` utterances. (default: :obj:`None`)
        extras (Mapping[str, np.ndarray], optional): Named per-sample arrays ``(N, ...)``
            that models do not read but inspections may (e.g. the synthetic data's
            ``modality_reliability`` ``(N, M)``); carried into every batch.
            (default: :obj:`None`)
        vocabulary (Sequence[str], optional): For token-id text, the words by id
            (id 0 is padding, id 1 unknown). (default: :obj:`None`)
        source (str, optional): The file the split came from, for messages. (default: ``""``)
        split (str, optional): The split's name, for messages. (default: ``""``)
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        lengths: Mapping[str, np.ndarray],
        labels: np.ndarray | None,
        ids: Sequence[str],
        *,
        label_kind: str | None = "score",
        num_classes: int | None = None,
        label_names: Sequence[str] | None = None,
        label_field: str = "labels",
        unimodal_labels: Mapping[str, np.ndarray] | None = None,
        raw_text: Sequence[str] | None = None,
        extras: Mapping[str, np.ndarray] | None = None,
        vocabulary: Sequence[str] | None = None,
        source: str = "",
        split: str = "",
    ) -> None:
        self.features = dict(features)
        self.lengths = {k: np.asarray(v, dtype=np.int64) for k, v in lengths.items()}
        self.ids = [str(i) for i in ids]
        self.source = str(source)
        self.split = split
        self.label_kind = None if labels is None else label_kind
        self.label_field = label_field
        if labels is None and (num_classes is not None or label_names is not None):
            raise ValueError("MultimodalDataset: unlabelled data (labels=None) has no "
                             "num_classes or label_names; drop them.")
        self.labels, self.num_classes = (None, None) if labels is None else \
            self._checked_labels(labels, num_classes)
        self.label_names = None if label_names is None else tuple(str(n) for n in label_names)
        self.unimodal_labels = {
            k: np.asarray(v, dtype=np.float32) for k, v in (unimodal_labels or {}).items()
        }
        self.raw_text = None if raw_text is None else [str(t) for t in raw_text]
        self.extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
        self.vocabulary = None if vocabulary is None else list(vocabulary)
        self._reads = 0  # samples read so far, see release_pages
        self._check()

    def _error(self, problem: str, field: str, expected: str, found: str, fix: str) -> DatasetError:
        return DatasetError(
            problem, file=self.source or None, split=self.split or None, field=field,
            expected=expected, found=found, fix=fix,
        )

    def _checked_labels(self, labels, num_classes: int | None) -> tuple[np.ndarray, int | None]:
        """The labels in their stored dtype and the number of classes, or a
        :class:`DatasetError` naming the first bad label."""
        kind, field = self.label_kind, self.label_field
        if kind not in LABEL_KINDS:
            raise ValueError(f"MultimodalDataset.label_kind: expected one of {list(LABEL_KINDS)}, "
                             f"found {kind!r}.")
        array = np.asarray(labels)
        rank = 2 if kind == "multi_hot" else 1
        shape = "(N, C)" if rank == 2 else "(N,)"
        if array.ndim != rank or not (np.issubdtype(array.dtype, np.number)
                                      or array.dtype == bool):
            raise self._error(f"wrong {kind} labels", field, f"a {shape} numeric array",
                              f"shape {array.shape}, dtype {array.dtype}",
                              f"Give {_LABEL_HELP[kind]}")
        array = array.astype(np.float64) if array.dtype == bool else array
        finite = np.isfinite(array).all(axis=tuple(range(1, array.ndim)))  # (N,)
        if not finite.all():
            raise self._label_error("NaN or infinite label", ~finite, array, "finite labels",
                                    f"Give {_LABEL_HELP[kind]}")
        if kind == "score":
            return array.astype(np.float32, copy=False), None
        count = array.shape[1] if kind == "multi_hot" else num_classes
        if isinstance(count, int) and count > MAX_CLASSES:  # before any per-class array
            raise self._error("too many classes", field, f"at most {MAX_CLASSES} classes or "
                              "labels", f"{count}", "Check the class indices (0, 1, ...)")
        if kind == "multi_hot":
            if num_classes is not None and num_classes != array.shape[1]:
                raise self._error("multi-hot labels of another width", field,
                                  f"{num_classes} columns (num_classes)",
                                  f"{array.shape[1]} columns", "Pass the matching num_classes")
            binary = ((array == 0) | (array == 1)).all(axis=1)
            return self._or_raise(array, binary, "multi-hot label other than 0/1",
                                  "only 0 and 1 in every row", np.float32), array.shape[1]
        if num_classes is None or num_classes < 2:
            raise ValueError(f"MultimodalDataset.num_classes: class labels need the number of "
                             f"classes (an integer >= 2); found {num_classes!r}.")
        valid = (array == np.round(array)) & (array >= 0) & (array < num_classes)
        return self._or_raise(array, valid, "class index out of range",
                              f"whole numbers in [0, {num_classes - 1}]", np.int64), num_classes

    def _or_raise(self, array: np.ndarray, valid: np.ndarray, problem: str, expected: str,
                  dtype: type) -> np.ndarray:
        if not valid.all():
            raise self._label_error(problem, ~valid, array, expected,
                                    f"Give {_LABEL_HELP[self.label_kind]}")
        return array.astype(dtype, copy=False)

    def _label_error(self, problem: str, bad: np.ndarray, array: np.ndarray, expected: str,
                     fix: str) -> DatasetError:
        index = int(np.flatnonzero(bad)[0])
        name = f" ('{self.ids[index]}')" if index < len(self.ids) else ""
        value = array[index].tolist()
        return self._error(problem, self.label_field, expected,
                           f"{value} at sample {index}{name} ({int(bad.sum())} such labels)", fix)

    @property
    def labelled(self) -> bool:
        """Whether the split has labels; :obj:`False` for data to predict on, whose
        :attr:`labels`, :attr:`label_kind` and :attr:`num_classes` are :obj:`None`."""
        return self.labels is not None

    def _check(self) -> None:
        n = len(self)
        if n == 0:
            raise self._error("empty split", self.label_field, "at least one sample",
                              "0 samples", "Check that the file holds data for this split")
        if self.label_names is not None and len(self.label_names) != self.num_classes:
            expected = ("no names (scores have no classes)" if self.num_classes is None
                        else f"{self.num_classes} names (one per class or label)")
            raise self._error("label names do not match the labels", "label_names", expected,
                              f"{len(self.label_names)} names {list(self.label_names)}",
                              "Give one name per class, or none")
        unsafe = next((name for name in (*self.features, *self.unimodal_labels, *self.extras)
                       if not is_safe_name(name)), None)
        if unsafe is not None:  # names become file names in a cache (features.<name>.npy)
            raise self._error("not a modality or field name", repr(unsafe), SAFE_NAME,
                              repr(unsafe), "Rename it")
        if set(self.features) != set(self.lengths):
            raise self._error("features and lengths name different modalities", "lengths",
                              f"{sorted(self.features)}", f"{sorted(self.lengths)}",
                              "Give one lengths array per modality")
        columns: dict[str, int] = {"ids": len(self.ids)}
        columns |= {f"{k} (features)": len(v) for k, v in self.features.items()}
        columns |= {f"{k} (lengths)": len(v) for k, v in self.lengths.items()}
        columns |= {f"{k} (unimodal labels)": len(v) for k, v in self.unimodal_labels.items()}
        columns |= {f"{k} (extra)": len(v) for k, v in self.extras.items()}
        if self.raw_text is not None:
            columns["raw_text"] = len(self.raw_text)
        for name, size in columns.items():
            if size != n:
                raise self._error("fields disagree on the number of samples", name,
                                  f"{n} rows (as in the {'labels' if self.labelled else 'ids'})",
                                  f"{size} rows",
                                  "Every field of a split must have one row per sample")
        for name, array in self.features.items():
            if array.ndim not in (2, 3):
                raise self._error("wrong rank", name, "(N, T, d) features or (N, T) token ids",
                                  f"shape {tuple(array.shape)}", "Reshape or re-export the array")
            steps = array.shape[1]
            length = self.lengths[name]
            if length.min() < 1 or length.max() > steps:
                bad = int(np.flatnonzero((length < 1) | (length > steps))[0])
                raise self._error("length outside the padded sequence", f"{name}_lengths",
                                  f"1 <= length <= {steps}",
                                  f"{int(length[bad])} at sample {bad} ('{self.ids[bad]}')",
                                  "Fix the lengths or re-pad the sequences")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modality names, in order."""
        return tuple(self.features)

    @property
    def feature_dims(self) -> dict[str, int | None]:
        """Per modality the feature width ``d_m``, or ``None`` for token ids."""
        return {k: (v.shape[2] if v.ndim == 3 else None) for k, v in self.features.items()}

    def __len__(self) -> int:
        return len(self.ids) if self.labels is None else len(self.labels)

    def __getstate__(self) -> dict:
        # DataLoader workers started with spawn/forkserver receive the dataset pickled;
        # a memory-mapped array travels as its file reference, not as a copy of its data.
        state = self.__dict__.copy()
        state["features"] = {k: _MappedFile.of(v) or v for k, v in self.features.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        state["features"] = {
            k: v.open() if isinstance(v, _MappedFile) else v for k, v in state["features"].items()
        }
        self.__dict__.update(state)

    def release_pages(self) -> None:
        """Drops the pages read so far from this process's mapping of memory-mapped features.

        The pages stay in the kernel's page cache, so reading them again costs no disk
        I/O, but they no longer count in the process's resident set: without this, one
        epoch over a memory-mapped cache leaves every page it touched mapped, and the
        process's peak RSS grows to the size of the split although its own memory does
        not. Called every :data:`RELEASE_EVERY` samples by :meth:`__getitem__`; a no-op
        for in-memory arrays and where the platform has no ``madvise``.
        """
        if not hasattr(mmap, "MADV_DONTNEED"):
            return
        for array in self.features.values():
            if _MappedFile.of(array) is not None:  # a whole read-only mapping
                array.base.madvise(mmap.MADV_DONTNEED)

    def __getitem__(self, index: int) -> dict:
        self._reads += 1
        if self._reads % RELEASE_EVERY == 0:
            self.release_pages()
        sample = {
            "features": {
                k: np.array(v[index, : self.lengths[k][index]]) for k, v in self.features.items()
            },
            "label": None if self.labels is None else self.labels[index],
            "id": self.ids[index],
            "unimodal_labels": {k: v[index] for k, v in self.unimodal_labels.items()},
            "extras": {k: v[index] for k, v in self.extras.items()},
        }
        for name, values in sample["features"].items():
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                # Memory-mapped caches are read unchecked (checking every value costs a
                # pass over the file); a bad value must not reach the model as a NaN loss.
                raise self._error("NaN or infinite values", name, "finite numbers",
                                  f"a non-finite value in sample {index} ('{self.ids[index]}')",
                                  "Check the cache with `dhmd describe --verify` and convert "
                                  "the source again")
        if self.raw_text is not None:
            sample["raw_text"] = self.raw_text[index]
        return sample

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.features.items())
        return f"{type(self).__name__}(split={self.split!r}, n={len(self)}, {shapes})"


@dataclass(frozen=True)
class _MappedFile:
    """How to reopen a read-only ``np.memmap`` that spans a whole array in a file."""

    filename: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    order: str

    @classmethod
    def of(cls, array: np.ndarray) -> _MappedFile | None:
        # Only a whole mapping (its base is the mmap itself; a slice keeps the offset of
        # its parent), opened read-only.
        if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
                and array.filename and array.mode == "r"):
            return None
        order = "C" if array.flags.c_contiguous else "F"
        return cls(array.filename, array.dtype.str, array.shape, array.offset, order)

    def open(self) -> np.memmap:
        return np.memmap(self.filename, dtype=self.dtype, mode="r", shape=self.shape,
                         offset=self.offset, order=self.order)


def collate(samples: Sequence[dict]) -> MultimodalBatch:
    """Pad samples from :meth:`MultimodalDataset.__getitem__` into a :class:`MultimodalBatch`.

    Each modality is padded with zeros to the longest sample in the batch. Unlabelled
    samples (``label`` :obj:`None`) give a batch with ``labels=None``; a batch may not mix
    labelled and unlabelled samples.
    """
    modalities = list(samples[0]["features"])
    features: dict[str, Tensor] = {}
    lengths: dict[str, Tensor] = {}
    for name in modalities:
        arrays = [s["features"][name] for s in samples]
        size = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        first = arrays[0]
        dtype = torch.long if np.issubdtype(first.dtype, np.integer) else torch.float32
        padded = torch.zeros((len(arrays), int(size.max()), *first.shape[1:]), dtype=dtype)
        for row, array in enumerate(arrays):
            padded[row, : len(array)] = torch.from_numpy(np.asarray(array)).to(dtype)
        features[name], lengths[name] = padded, size
    unimodal = {
        k: torch.tensor([s["unimodal_labels"][k] for s in samples], dtype=torch.float32)
        for k in samples[0]["unimodal_labels"]
    }
    raw_text = [s["raw_text"] for s in samples] if "raw_text" in samples[0] else None
    extras = {k: torch.as_tensor(np.stack([s["extras"][k] for s in samples]))
              for k in samples[0].get("extras", {})}
    unlabelled = [s["label"] is None for s in samples]
    if any(unlabelled) and not all(unlabelled):
        raise ValueError("collate: a batch mixes labelled and unlabelled samples; "
                         f"sample {unlabelled.index(not unlabelled[0])} differs from the first. "
                         "Batch one dataset at a time.")
    labels = None
    if not unlabelled[0]:
        labels = torch.from_numpy(np.stack([np.asarray(s["label"]) for s in samples]))  # (B, *L)
        labels = labels.long() if not labels.is_floating_point() else labels.float()
    return MultimodalBatch(
        features=features,
        lengths=lengths,
        labels=labels,
        ids=[s["id"] for s in samples],
        unimodal_labels=unimodal,
        raw_text=raw_text,
        extras=extras,
    )
