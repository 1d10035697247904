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

from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.cache import MANIFEST, load_cache, read_manifest, source_digest, write_cache
from dhmd_graph.data.checks import check_splits
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.data.misa import MISA_FILES, load_misa
from dhmd_graph.data.mmsa import SENTIMENT_RANGE, SIMS_RANGE, load_mmsa

__all__ = ["convert_to_cache", "describe", "load_dataset"]

_KNOWN = ("an MMSA .pkl file, a cache folder with manifest.json, "
          "or a MISA folder with train.pkl, dev.pkl and test.pkl")


def load_dataset(path: str | PathLike, *, label_range: tuple[float, float] | None = None,
                 verify: bool = False) -> dict[str, MultimodalDataset]:
    r"""Read any supported dataset into one :class:`MultimodalDataset` per split.

    Whatever the reader, the result has the splits ``train``, ``valid`` and ``test``
    with the same modalities and feature widths, or a :class:`DatasetError` says which
    split differs, before any training starts.

    Args:
        path (str or PathLike): An MMSA pickle, a cache folder or a MISA folder.
        label_range (tuple[float, float], optional): Inclusive range of valid labels for
            the pickle readers; :obj:`None` keeps each reader's default. A cache checks
            the range it was converted with. (default: :obj:`None`)
        verify (bool, optional): For a cache, also check the checksums and every value
            (see :func:`~dhmd_graph.data.load_cache`); the pickle readers always check
            every value. (default: :obj:`False`)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'``.

    Raises:
        DatasetError: The path does not exist, is of no known kind, or holds bad data.
    """
    path = Path(path)
    options = {} if label_range is None else {"label_range": label_range}
    if path.is_dir() and (path / MANIFEST).is_file():
        datasets = load_cache(path, verify=verify)
    elif path.is_dir() and all((path / name).is_file() for name in MISA_FILES.values()):
        datasets = load_misa(path, **options)
    elif path.is_file() and path.suffix == ".pkl":
        datasets = load_mmsa(path, **options)
    else:
        raise DatasetError("unrecognised dataset path", file=path, expected=_KNOWN,
                           found=_describe(path),
                           fix="Point to one of these (a .csd file is read with read_csd)")
    check_splits(datasets, path)
    return datasets


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

    The source is read once and validated by its reader, then written array by array
    with the label range it was checked against. Unless ``overwrite`` is set, a cache of
    the same source (same sha256) already at ``cache_dir`` is kept, after checking its
    checksums and values (``load_cache(..., verify=True)``), and the source is not read.

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
        DatasetError: The source holds bad data, the existing cache of this source is
            damaged, or ``cache_dir`` holds something else and ``overwrite`` is :obj:`False`.
    """
    cache_dir = Path(cache_dir)
    digest = source_digest(pickle_path) if Path(pickle_path).exists() else None
    if digest is not None and not overwrite and (cache_dir / MANIFEST).is_file():
        existing = read_manifest(cache_dir).get("source") or {}
        if isinstance(existing, dict) and existing.get("sha256") == digest["sha256"]:
            load_dataset(cache_dir, verify=True)
            return cache_dir
    datasets = load_dataset(pickle_path, label_range=label_range)
    if label_range is None:  # the reader's default, recorded for every later read
        label_range = SIMS_RANGE if datasets["train"].unimodal_labels else SENTIMENT_RANGE
    return write_cache(datasets, cache_dir, source=digest, overwrite=overwrite,
                       label_range=label_range)


def describe(datasets: dict[str, MultimodalDataset], *, width: int = 40) -> str:
    r"""A text summary of each split: sizes, shapes, length ranges and labels.

    The label histogram counts the labels rounded to the nearest integer (the 7
    sentiment classes of MOSI/MOSEI), or to steps of 0.2 when all labels lie in
    [-1, 1] (the grid of CH-SIMS).

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
    return "\n".join(lines)
