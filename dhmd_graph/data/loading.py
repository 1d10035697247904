"""One entry point for every dataset on disk, and conversion to the cache.

:func:`load_dataset` picks the reader from what the path is:

=====================================================  ==========================
path                                                   reader
=====================================================  ==========================
a folder with ``manifest.json``                        :func:`load_cache`
a folder with ``train.pkl``, ``dev.pkl``, ``test.pkl``  :func:`load_misa`
a ``.pkl`` file                                        :func:`load_mmsa`
a folder with ``labels.csv`` and ``<modality>.npy``     :func:`load_arrays`
a ``.json`` alignment recipe of ``.csd`` files          :func:`load_alignment`
=====================================================  ==========================
"""

from __future__ import annotations

import hashlib
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.align import alignment_files, load_alignment
from dhmd_graph.data.arrays import LABELS_FILE, load_arrays
from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.cache import (
    MANIFEST,
    load_cache,
    read_manifest,
    sha256_file,
    source_digest,
    write_cache,
)
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.data.misa import MISA_FILES, load_misa
from dhmd_graph.data.mmsa import load_mmsa

__all__ = ["convert_to_cache", "describe", "load_dataset"]

_KNOWN = ("an MMSA .pkl file, a cache folder with manifest.json, "
          "a MISA folder with train.pkl, dev.pkl and test.pkl, "
          "a plain-arrays folder with labels.csv and <modality>.npy files, "
          "or a .json alignment recipe of .csd files")


def load_dataset(path: str | PathLike, *, label_range: tuple[float, float] | None = None
                 ) -> dict[str, MultimodalDataset]:
    r"""Read any supported dataset into one :class:`MultimodalDataset` per split.

    Args:
        path (str or PathLike): An MMSA pickle, a cache folder, a MISA folder, a
            plain-arrays folder (see :mod:`dhmd_graph.data.arrays`) or an alignment
            recipe (see :mod:`dhmd_graph.data.align`).
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
        if (path / LABELS_FILE).is_file():
            return load_arrays(path, **options)
    elif path.is_file() and path.suffix == ".pkl":
        return load_mmsa(path, **options)
    elif path.is_file() and path.suffix == ".json":
        return load_alignment(path, **options)
    raise DatasetError("unrecognised dataset path", file=path, expected=_KNOWN,
                       found=_describe(path),
                       fix="Point to one of these (.csd files are aligned through a recipe, "
                       "see dhmd_graph.data.align)")


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
    digest = _source_digest(Path(pickle_path)) if Path(pickle_path).exists() else None
    if digest is not None and not overwrite and (cache_dir / MANIFEST).is_file():
        existing = read_manifest(cache_dir).get("source") or {}
        if existing.get("sha256") == digest["sha256"]:
            return cache_dir
    datasets = load_dataset(pickle_path, label_range=label_range)
    return write_cache(datasets, cache_dir, source=digest, overwrite=overwrite)


def _source_digest(source: Path) -> dict:
    """:func:`source_digest`; for a recipe, over the recipe and the files it names."""
    digest = source_digest(source)
    if not (source.is_file() and source.suffix == ".json"):
        return digest
    files = alignment_files(source)
    if not all(file.is_file() for file in files):
        return digest  # the reader names the missing file
    combined = hashlib.sha256(digest["sha256"].encode())
    for file in files:
        combined.update(f"{file.resolve()}\0{sha256_file(file)}\n".encode())
    return {"path": digest["path"], "bytes": digest["bytes"] + sum(f.stat().st_size for f in files),
            "sha256": combined.hexdigest(), "files": [str(f) for f in files]}


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
