"""A memory-mapped dataset cache: convert once, then read lazily from disk.

A cache is a folder::

    manifest.json                 format, source, and per file: shape, dtype, sha256
    <split>/features.<modality>.npy   (N, T_m, d_m) float32 or (N, T_m) int64
    <split>/lengths.<modality>.npy    (N,) int64
    <split>/labels.npy                (N,) float32 scores, (N,) int64 classes or (N, C) float32
    <split>/unimodal.<modality>.npy   (N,) float32          (CH-SIMS only)
    <split>/extra.<name>.npy          (N, ...)              (per-sample extras, if any)
    <split>/strings.json              ids, raw text, vocabulary

:func:`load_cache` opens every ``.npy`` with ``mmap_mode='r'``, so a split costs no
memory until its samples are read, and many processes can share the pages. The
manifest's checksums are the sha256 of each written file (checked by
``load_cache(..., verify=True)``); its ``source`` records the path, size and sha256
of what was converted, so converting the same source again is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.errors import DatasetError

__all__ = ["CACHE_FORMAT", "MANIFEST", "load_cache", "source_digest", "write_cache"]

CACHE_FORMAT = "dhmd_graph.cache/1"
MANIFEST = "manifest.json"
_STRINGS = "strings.json"


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 8 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def source_digest(source: str | PathLike) -> dict:
    """Path, size and sha256 of a source file, or of every file in a source folder."""
    source = Path(source).resolve()
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(source.parent)}\0{sha256_file(file)}\n".encode())
    return {"path": str(source), "bytes": sum(f.stat().st_size for f in files),
            "sha256": digest.hexdigest()}


def read_manifest(cache_dir: Path) -> dict:
    """The parsed ``manifest.json`` of a cache folder."""
    path = cache_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError("not a dataset cache", file=path, expected=f"a {MANIFEST}",
                           found="no such file",
                           fix="Create the cache with `dhmd convert SOURCE CACHE_DIR`") from None
    except (OSError, ValueError) as error:
        raise DatasetError("unreadable cache manifest", file=path, expected="a JSON manifest",
                           found=f"{type(error).__name__}: {error}",
                           fix="Convert the source again with --overwrite") from error
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DatasetError("unknown cache format", file=path, field="format",
                           expected=repr(CACHE_FORMAT), found=repr(found),
                           fix="Convert the source again with --overwrite")
    return manifest


def write_cache(datasets: Mapping[str, MultimodalDataset], cache_dir: str | PathLike, *,
                source: dict | None = None, overwrite: bool = False) -> Path:
    r"""Write datasets as a memory-mapped cache, atomically.

    The files go to a temporary folder beside ``cache_dir`` that is renamed into place
    only when complete, so a failure leaves nothing half-written. Arrays are written
    one at a time straight from the datasets, without copies.

    Args:
        datasets (Mapping[str, MultimodalDataset]): The splits, e.g. from a reader.
        cache_dir (str or PathLike): The cache folder to create.
        source (dict, optional): What was converted (see :func:`source_digest`), stored
            in the manifest. (default: :obj:`None`)
        overwrite (bool, optional): Replace an existing cache at ``cache_dir``.
            (default: :obj:`False`)

    Returns:
        Path: ``cache_dir``.
    """
    cache_dir = Path(cache_dir)
    _check_replaceable(cache_dir, overwrite)
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.", dir=cache_dir.parent))
    try:
        manifest = {"format": CACHE_FORMAT, "source": source,
                    "checksum": "sha256 of each file's bytes", "splits": {}}
        for split, dataset in datasets.items():
            manifest["splits"][split] = _write_split(dataset, work, split)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _replace(work, cache_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return cache_dir


def _check_replaceable(cache_dir: Path, overwrite: bool) -> None:
    if not cache_dir.exists() or (cache_dir.is_dir() and not any(cache_dir.iterdir())):
        return
    if not (cache_dir / MANIFEST).is_file():
        raise DatasetError("refusing to replace a folder that is not a dataset cache",
                           file=cache_dir, expected=f"an empty folder or a cache with {MANIFEST}",
                           found="other files", fix="Choose a new or empty folder")
    if not overwrite:
        raise DatasetError("another cache already exists", file=cache_dir,
                           expected="no cache there",
                           found=f"a cache of {_source_path(read_manifest(cache_dir))}",
                           fix="Pass overwrite=True (--overwrite) or choose another folder")


def _replace(work: Path, cache_dir: Path) -> None:
    """Move the finished folder ``work`` to ``cache_dir``, removing what was there."""
    if not cache_dir.exists():
        os.replace(work, cache_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.old.", dir=cache_dir.parent))
    os.replace(cache_dir, old / "cache")
    try:
        os.replace(work, cache_dir)
    except OSError:
        os.replace(old / "cache", cache_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _source_path(manifest: dict) -> str:
    source = manifest.get("source")
    return source.get("path", "?") if isinstance(source, dict) else "an unknown source"


def _write_split(dataset: MultimodalDataset, work: Path, split: str) -> dict:
    folder = work / split
    folder.mkdir()
    arrays: dict[str, np.ndarray] = {"labels.npy": dataset.labels}
    for name in dataset.modalities:
        arrays[f"features.{name}.npy"] = dataset.features[name]
        arrays[f"lengths.{name}.npy"] = dataset.lengths[name]
    for name, labels in dataset.unimodal_labels.items():
        arrays[f"unimodal.{name}.npy"] = labels
    for name, extra in dataset.extras.items():
        arrays[f"extra.{name}.npy"] = extra
    files = {}
    for filename, array in arrays.items():
        path = folder / filename
        np.save(path, array, allow_pickle=False)
        files[filename] = {"shape": list(array.shape), "dtype": array.dtype.str,
                           "sha256": sha256_file(path)}
    strings = {"ids": dataset.ids, "raw_text": dataset.raw_text, "vocabulary": dataset.vocabulary}
    (folder / _STRINGS).write_text(json.dumps(strings))
    files[_STRINGS] = {"sha256": sha256_file(folder / _STRINGS)}
    labels = {"kind": dataset.label_kind, "num_classes": dataset.num_classes,
              "names": None if dataset.label_names is None else list(dataset.label_names),
              "field": dataset.label_field}
    return {"num_samples": len(dataset), "modalities": list(dataset.modalities),
            "unimodal": list(dataset.unimodal_labels), "extras": list(dataset.extras),
            "labels": labels, "files": files}


def load_cache(cache_dir: str | PathLike, *, verify: bool = False) -> dict[str, MultimodalDataset]:
    r"""Open a cache written by :func:`write_cache` or :func:`convert_to_cache`.

    Feature, length and label arrays are read-only ``np.memmap`` views of the files;
    their shapes and dtypes are checked against the manifest.

    Args:
        cache_dir (str or PathLike): The cache folder.
        verify (bool, optional): Also check every file's sha256 against the manifest
            (reads every byte once). (default: :obj:`False`)

    Returns:
        dict[str, MultimodalDataset]: One dataset per split, in the manifest's order.

    Raises:
        DatasetError: The manifest is missing or unreadable, a file is missing or
            corrupt, or a file disagrees with the manifest.
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    try:
        return {split: _open_split(cache_dir, split, entry, verify)
                for split, entry in manifest["splits"].items()}
    except (KeyError, TypeError, AttributeError) as error:
        raise DatasetError("incomplete cache manifest", file=cache_dir / MANIFEST,
                           expected="the manifest written by convert_to_cache",
                           found=f"{type(error).__name__}: {error}",
                           fix="Convert the source again with --overwrite") from error


def _open_split(cache_dir: Path, split: str, entry: dict, verify: bool) -> MultimodalDataset:
    files = entry["files"]
    if verify:
        for filename, expected in files.items():
            _verify(cache_dir / split / filename, expected["sha256"], split)
    arrays = {name: _open_array(cache_dir / split / name, files[name], split)
              for name in files if name.endswith(".npy")}
    strings = _read_strings(cache_dir / split / _STRINGS, split)
    modalities = entry["modalities"]
    labels = entry.get("labels", {})  # caches written before label kinds hold scores
    return MultimodalDataset(
        {name: arrays[f"features.{name}.npy"] for name in modalities},
        {name: arrays[f"lengths.{name}.npy"] for name in modalities},
        arrays["labels.npy"],
        strings["ids"],
        label_kind=labels.get("kind", "score"),
        num_classes=labels.get("num_classes"),
        label_names=labels.get("names"),
        label_field=labels.get("field", "labels"),
        unimodal_labels={name: arrays[f"unimodal.{name}.npy"] for name in entry["unimodal"]},
        extras={name: arrays[f"extra.{name}.npy"] for name in entry.get("extras", [])},
        raw_text=strings["raw_text"],
        vocabulary=strings["vocabulary"],
        source=str(cache_dir),
        split=split,
    )


def _open_array(path: Path, expected: dict, split: str) -> np.ndarray:
    fix = "The cache is damaged; convert the source again with --overwrite"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError("cannot open a cache file", file=path, split=split,
                           expected="a readable .npy file", found=f"{type(error).__name__}: {error}",
                           fix=fix) from error
    found = {"shape": list(array.shape), "dtype": array.dtype.str}
    if found != {"shape": expected["shape"], "dtype": expected["dtype"]}:
        raise DatasetError("cache file disagrees with the manifest", file=path, split=split,
                           expected=f"shape {expected['shape']}, dtype {expected['dtype']}",
                           found=f"shape {found['shape']}, dtype {found['dtype']}", fix=fix)
    return array


def _read_strings(path: Path, split: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError("cannot read a cache file", file=path, split=split,
                           expected="a JSON file of ids and texts",
                           found=f"{type(error).__name__}: {error}",
                           fix="The cache is damaged; convert the source again with --overwrite"
                           ) from error


def _verify(path: Path, expected: str, split: str) -> None:
    found = sha256_file(path) if path.is_file() else "no such file"
    if found != expected:
        raise DatasetError("cache file checksum mismatch", file=path, split=split,
                           expected=f"sha256 {expected}", found=found,
                           fix="The cache is damaged; convert the source again with --overwrite")
