"""One entry point for every dataset on disk, and conversion to the cache.

:func:`load_dataset` picks the reader from what the path is:

=====================================================  ===================
path                                                   reader
=====================================================  ===================
a folder with ``manifest.json``                        :func:`load_cache`
a folder with ``train.pkl``, ``dev.pkl``, ``test.pkl``  :func:`load_misa`
a ``.pkl`` file                                        :func:`load_mmsa`
=====================================================  ===================
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.cache import MANIFEST, load_cache, read_manifest, source_digest, write_cache
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.data.misa import MISA_FILES, load_misa
from dhmd_graph.data.mmsa import load_mmsa

__all__ = ["ModalityInput", "convert_to_cache", "describe", "load_dataset", "modality_inputs"]

_KNOWN = ("an MMSA .pkl file, a cache folder with manifest.json, "
          "or a MISA folder with train.pkl, dev.pkl and test.pkl")


def load_dataset(path: str | PathLike, *, label_range: tuple[float, float] | None = None
                 ) -> dict[str, MultimodalDataset]:
    r"""Read any supported dataset into one :class:`MultimodalDataset` per split.

    Args:
        path (str or PathLike): An MMSA pickle, a cache folder or a MISA folder.
        label_range (tuple[float, float], optional): Inclusive range of valid labels for
            the pickle readers; :obj:`None` keeps each reader's default. A cache was
            checked when it was converted. (default: :obj:`None`)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'``.

    Raises:
        DatasetError: The path does not exist, is of no known kind, or holds bad data.
    """
    path = Path(path)
    options = {} if label_range is None else {"label_range": label_range}
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return load_cache(path)
        if all((path / name).is_file() for name in MISA_FILES.values()):
            return load_misa(path, **options)
    elif path.is_file() and path.suffix == ".pkl":
        return load_mmsa(path, **options)
    raise DatasetError("unrecognised dataset path", file=path, expected=_KNOWN,
                       found=_describe(path),
                       fix="Point to one of these (a .csd file is read with read_csd)")


def _describe(path: Path) -> str:
    if not path.exists():
        return "nothing at this path"
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        return f"a folder with {names[:8]}" + (" ..." if len(names) > 8 else "")
    return f"a '{path.suffix}' file"


def convert_to_cache(pickle_path: str | PathLike, cache_dir: str | PathLike, *,
                     overwrite: bool = False, label_range: tuple[float, float] | None = None
                     ) -> Path:
    r"""Convert a dataset once into a memory-mapped cache (see :mod:`dhmd_graph.data.cache`).

    The source is read once and validated by its reader, then written array by array.
    Unless ``overwrite`` is set, a cache of the same source (same sha256) already at
    ``cache_dir`` is kept as it is and nothing is read.

    Args:
        pickle_path (str or PathLike): An MMSA pickle, or a MISA folder of pickles.
        cache_dir (str or PathLike): The cache folder to create.
        overwrite (bool, optional): Replace a cache of another source at ``cache_dir``.
            (default: :obj:`False`)
        label_range (tuple[float, float], optional): Passed to the reader.
            (default: :obj:`None`)

    Returns:
        Path: ``cache_dir``.

    Raises:
        DatasetError: The source holds bad data, or ``cache_dir`` holds something else
            and ``overwrite`` is :obj:`False`.
    """
    cache_dir = Path(cache_dir)
    digest = source_digest(pickle_path) if Path(pickle_path).exists() else None
    if digest is not None and not overwrite and (cache_dir / MANIFEST).is_file():
        existing = read_manifest(cache_dir).get("source") or {}
        if existing.get("sha256") == digest["sha256"]:
            return cache_dir
    datasets = load_dataset(pickle_path, label_range=label_range)
    return write_cache(datasets, cache_dir, source=digest, overwrite=overwrite)


class ModalityInput(NamedTuple):
    r"""What a model needs to know of one modality's input.

    Attributes:
        input_dim (int or None): The feature width :math:`d_m` of ``(N, T, d_m)`` float
            features; :obj:`None` for ``(N, T)`` token ids.
        vocab_size (int or None): For token ids, the number of ids an embedding must
            hold: the vocabulary's size, and at least the largest id in any split + 1;
            :obj:`None` for float features.
    """

    input_dim: int | None
    vocab_size: int | None


def modality_inputs(datasets: Mapping[str, MultimodalDataset]) -> dict[str, ModalityInput]:
    r"""Per modality, the input width or vocabulary size the data needs, over all splits.

    Args:
        datasets (Mapping[str, MultimodalDataset]): The splits, e.g. from
            :func:`load_dataset`.
    """
    first = next(iter(datasets.values()))
    inputs = {}
    for name, array in first.features.items():
        if array.ndim == 3:
            inputs[name] = ModalityInput(int(array.shape[2]), None)
            continue
        largest = max(int(split.features[name].max()) for split in datasets.values())
        known = max((len(split.vocabulary) for split in datasets.values()
                     if split.vocabulary is not None), default=0)
        inputs[name] = ModalityInput(None, max(largest + 1, known, 2))
    return inputs


def describe(datasets: dict[str, MultimodalDataset], *, width: int = 40) -> str:
    r"""A text summary of each split: sizes, shapes, length ranges and labels.

    The label histogram counts the labels rounded to the nearest integer (the 7
    sentiment classes of MOSI/MOSEI), or to steps of 0.2 when all labels lie in
    [-1, 1] (the grid of CH-SIMS). The last lines give :func:`modality_inputs`: the
    input of each modality that ``dhmd train`` builds the model with.

    Args:
        datasets (dict[str, MultimodalDataset]): The splits, e.g. from :func:`load_dataset`.
        width (int, optional): Characters of the longest histogram bar. (default: :obj:`40`)
    """
    lines = []
    for split, dataset in datasets.items():
        lines.append(f"{split}: {len(dataset)} samples")
        for name, array in dataset.features.items():
            length = dataset.lengths[name]
            kind = str(array.dtype)
            if array.ndim == 2 and dataset.vocabulary is not None:
                kind = f"token ids over {len(dataset.vocabulary)} words"
            lines.append(f"  {name:<8} shape {tuple(array.shape)} {kind}, length "
                         f"{length.min()}..{length.max()} (mean {length.mean():.1f})")
        labels = dataset.labels
        lines.append(f"  labels   mean {labels.mean():.3f}, std {labels.std():.3f}, "
                     f"range [{labels.min():.2f}, {labels.max():.2f}]")
        step = 1.0 if np.abs(labels).max() > 1 else 0.2
        grid = np.round(labels / step) * step + 0.0  # + 0.0 turns -0 into 0
        values, counts = np.unique(grid, return_counts=True)
        for value, count in zip(values, counts, strict=True):
            bar = "#" * max(1, round(width * count / counts.max()))
            lines.append(f"  {value:>+6.1f} | {bar} {count}")
    lines.append("model inputs (taken from the data by 'dhmd train'):")
    for name, (input_dim, vocab_size) in modality_inputs(datasets).items():
        built = (f"input_dim={input_dim}" if input_dim is not None
                 else f"token ids: input_dim=None, vocab_size={vocab_size}")
        lines.append(f"  {name:<8} {built}")
    return "\n".join(lines)
