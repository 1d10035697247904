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
manifest's checksums are the sha256 of each written file; its ``source`` records the
path, size and sha256 of what was converted, so converting the same source again is a
no-op (after checking the existing cache); its ``label_range`` is the range the labels
were checked against.

A cache is checked on every read, cheaply: the manifest's layout, every file's shape
and dtype (features float32 ``(N, T, d)`` or int64 token ids ``(N, T)``, labels as their
kind says, extras ``(N, ...)`` numbers, the rest ``(N,)``), lengths within the padded
steps, the strings, finite scores within ``label_range`` (class indices within
``num_classes``, multi-hot rows of 0/1), and the same modalities and widths in every
split. What costs a pass
over the features (the sha256 of every file, finite features, token ids within the
vocabulary) is checked when the cache is converted and on request:
``load_cache(..., verify=True)`` or ``dhmd describe --verify``.

**Killed conversions.** A cache is written into a hidden folder ``.<cache>.<random>``
beside it, renamed into place when complete (the previous cache, with ``overwrite``, is
moved aside into ``.<cache>.old.<random>`` for that moment). The writer holds an exclusive
:func:`fcntl.flock` on each such folder while it works, and marks it with a ``.writer``
file, so a conversion killed with ``SIGKILL`` leaves an unlocked, marked folder behind:
the next conversion into the same cache folder (:func:`write_cache`, ``dhmd convert``)
removes it, after moving a previous cache found aside back into place if none has replaced
it. A folder still locked belongs to a conversion that is running, and is left alone; so
is any folder of another name, or without the marker (unless empty and a minute old).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.checks import Location, check_finite, check_labels, check_splits
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import naming_file

try:
    import fcntl
except ImportError:  # Windows: no flock, so leftovers are never judged stale
    fcntl = None

__all__ = ["CACHE_FORMAT", "MANIFEST", "load_cache", "remove_stale_work", "source_digest",
           "write_cache"]

CACHE_FORMAT = "dhmd_graph.cache/1"
MANIFEST = "manifest.json"
_STRINGS = "strings.json"
_FIX = "The cache is damaged; convert the source again with --overwrite"
_DTYPES = {"features": ("<f4", "<i8"), "lengths": ("<i8",), "labels": ("<f4", "<i8"),
           "unimodal": ("<f4",)}  # what each kind of .npy file may hold (extras: any number)
_LABEL_ARRAYS = {"score": ("<f4", 1), "class": ("<i8", 1), "multi_hot": ("<f4", 2)}
"""Per label kind, the dtype and rank of ``labels.npy``."""
_SCORES = {"kind": "score", "num_classes": None, "names": None, "field": "labels"}
_WRITER = ".writer"
"""A marker in a work folder: a writer locked it. An unlocked folder without one is
removed only when empty and older than :data:`_YOUNG` seconds (a writer killed before it
wrote the marker); a younger one may be a writer's that it has not yet locked."""
_YOUNG = 60.0
_WORK_NAME = re.compile(r"(old\.)?[a-z0-9_]{8}")  # after ".<cache>.": tempfile.mkdtemp's names


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
                source: dict | None = None, overwrite: bool = False,
                label_range: tuple[float, float] | None = None) -> Path:
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
        label_range (tuple[float, float], optional): The inclusive range of the labels,
            checked now and whenever the cache is read; :obj:`None` checks only that
            they are finite. (default: :obj:`None`)

    Returns:
        Path: ``cache_dir``.

    Raises:
        DatasetError: ``cache_dir`` holds something else, or labels are out of range.
        OSError: The disk is full or the folder cannot be written (nothing is left).
    """
    cache_dir = Path(cache_dir)
    _check_replaceable(cache_dir, overwrite)
    check_splits(dict(datasets), cache_dir, required=())
    for split, dataset in datasets.items():
        if not dataset.labelled:
            raise DatasetError("unlabelled data cannot be cached", file=dataset.source or None,
                               split=split, expected="labelled splits (a cache is for "
                               "training)", found="no labels",
                               fix="Predict on the folder itself, without converting it")
        _check_labels(dataset, label_range, Location(dataset.source or cache_dir, split))
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_work(cache_dir)
    with _work_folder(cache_dir, "") as work:
        manifest = {"format": CACHE_FORMAT, "source": source,
                    "checksum": "sha256 of each file's bytes",
                    "label_range": None if label_range is None else list(label_range),
                    "splits": {}}
        for split, dataset in datasets.items():
            manifest["splits"][split] = _write_split(dataset, work, split)
        with naming_file(work / MANIFEST):
            (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _replace(work, cache_dir)
        (cache_dir / _WRITER).unlink(missing_ok=True)  # the marker came along
    return cache_dir


@contextmanager
def _work_folder(cache_dir: Path, kind: str) -> Iterator[Path]:
    """A new hidden folder ``.<cache>.<kind><random>`` beside ``cache_dir``, locked (with a
    :data:`_WRITER` marker) while in the block and removed at its end if still there."""
    work = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.{kind}", dir=cache_dir.parent))
    handle = None
    try:
        if fcntl is not None:
            handle = os.open(work, os.O_RDONLY)
            fcntl.flock(handle, fcntl.LOCK_EX)
        (work / _WRITER).write_text(f"{os.getpid()}\n")
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)  # renamed into place: nothing is there
        if handle is not None:
            os.close(handle)  # releases the lock


def remove_stale_work(cache_dir: str | PathLike) -> list[Path]:
    """Remove the hidden work folders that killed conversions into ``cache_dir`` left
    beside it (see the module docstring); a previous cache moved aside is put back first
    when nothing took its place.

    Returns:
        list[Path]: The folders removed.
    """
    cache_dir = Path(cache_dir)
    if fcntl is None or not cache_dir.parent.is_dir():
        return []
    removed = []
    for work in sorted(cache_dir.parent.glob(f".{glob.escape(cache_dir.name)}.*")):
        if work.is_symlink() or not work.is_dir() or not _WORK_NAME.fullmatch(
                work.name.removeprefix(f".{cache_dir.name}.")):
            continue
        try:
            handle = os.open(work, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a conversion that is running
            os.close(handle)
            continue
        try:
            if (work / _WRITER).exists() or (not any(work.iterdir())
                                             and time.time() - work.stat().st_mtime > _YOUNG):
                if (work / "cache").is_dir() and not cache_dir.exists():
                    os.replace(work / "cache", cache_dir)  # killed between the two renames
                shutil.rmtree(work, ignore_errors=True)
                removed.append(work)
        finally:
            os.close(handle)
    return removed



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
    with _work_folder(cache_dir, "old.") as old:
        os.replace(cache_dir, old / "cache")
        try:
            os.replace(work, cache_dir)
        except OSError:
            os.replace(old / "cache", cache_dir)
            raise


def _source_path(manifest: dict) -> str:
    source = manifest.get("source")
    return source.get("path", "?") if isinstance(source, dict) else "an unknown source"


def _write_split(dataset: MultimodalDataset, work: Path, split: str) -> dict:
    folder = work / split
    folder.mkdir()
    arrays: dict[str, np.ndarray] = {"labels.npy": dataset.labels}
    for name in dataset.modalities:  # float32 features or int64 token ids (no copy if so)
        features = dataset.features[name]
        kind = np.int64 if np.issubdtype(features.dtype, np.integer) else np.float32
        arrays[f"features.{name}.npy"] = np.asarray(features, dtype=kind)
        arrays[f"lengths.{name}.npy"] = dataset.lengths[name]
    for name, labels in dataset.unimodal_labels.items():
        arrays[f"unimodal.{name}.npy"] = labels
    for name, extra in dataset.extras.items():
        arrays[f"extra.{name}.npy"] = extra
    files = {}
    for filename, array in arrays.items():
        path = folder / filename
        with naming_file(path):
            np.save(path, array, allow_pickle=False)
        files[filename] = {"shape": list(array.shape), "dtype": array.dtype.str,
                           "sha256": sha256_file(path)}
    strings = {"ids": dataset.ids, "raw_text": dataset.raw_text, "vocabulary": dataset.vocabulary}
    with naming_file(folder / _STRINGS):
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

    Feature, length and label arrays are read-only ``np.memmap`` views of the files.
    Every read checks the cheap things (see the module docstring); ``verify`` also the
    checksums and every feature value.

    Args:
        cache_dir (str or PathLike): The cache folder.
        verify (bool, optional): Also check every file's sha256 against the manifest,
            that features are finite and token ids within the vocabulary (reads every
            byte once). (default: :obj:`False`)

    Returns:
        dict[str, MultimodalDataset]: One dataset per split, in the manifest's order.

    Raises:
        DatasetError: The manifest is missing or unreadable, a file is missing or
            corrupt, or a file disagrees with the manifest, naming the file.
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    label_range = manifest.get("label_range")
    try:
        splits = manifest["splits"]
        if not isinstance(splits, dict) or not (
                label_range is None or (isinstance(label_range, list) and len(label_range) == 2
                                        and all(isinstance(v, (int, float)) for v in label_range))):
            raise TypeError("'splits' must be a mapping and 'label_range' two numbers or null")
        for split, entry in splits.items():
            _check_entry(split, entry)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise DatasetError("incomplete cache manifest", file=cache_dir / MANIFEST,
                           expected="the manifest written by convert_to_cache",
                           found=f"{type(error).__name__}: {error}",
                           fix="Convert the source again with --overwrite") from error
    datasets = {split: _open_split(cache_dir, split, entry, verify, label_range)
                for split, entry in splits.items()}
    check_splits(datasets, cache_dir, required=())
    return datasets


def _check_entry(split: str, entry: dict) -> None:
    """The manifest entry of a split names exactly the files of its modalities."""
    if not isinstance(split, str) or not split or split.startswith(".") or "/" in split \
            or "\\" in split:
        raise ValueError(f"bad split name {split!r}")
    modalities, unimodal = entry["modalities"], entry["unimodal"]
    if not (isinstance(modalities, list) and isinstance(unimodal, list)
            and all(isinstance(name, str) and name and "/" not in name
                    for name in modalities + unimodal)):
        raise TypeError(f"split {split!r}: 'modalities' and 'unimodal' must be lists of names")
    extras = entry.get("extras", [])  # absent in caches written before extras
    if not (isinstance(extras, list) and all(isinstance(name, str) and name and "/" not in name
                                             for name in extras)):
        raise TypeError(f"split {split!r}: 'extras' must be a list of names")
    _check_label_entry(split, entry.get("labels", _SCORES))
    expected = {"labels.npy", _STRINGS, *(f"{kind}.{name}.npy" for name in modalities
                                          for kind in ("features", "lengths")),
                *(f"unimodal.{name}.npy" for name in unimodal),
                *(f"extra.{name}.npy" for name in extras)}
    files = entry["files"]
    if not isinstance(files, dict) or set(files) != expected:
        raise ValueError(f"split {split!r}: expected the files {sorted(expected)}, found "
                         f"{sorted(files) if isinstance(files, dict) else files!r}")
    for filename, record in files.items():
        if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
            raise TypeError(f"{split}/{filename}: expected a record with a sha256")


def _check_label_entry(split: str, labels: object) -> None:
    """The manifest's ``labels`` entry of a split: the kind and its class count and names."""
    if not (isinstance(labels, dict) and labels.get("kind") in _LABEL_ARRAYS
            and isinstance(labels.get("field", "labels"), str)):
        raise TypeError(f"split {split!r}: 'labels' must be a mapping with a 'kind' among "
                        f"{list(_LABEL_ARRAYS)} and a 'field' name")
    classes, names = labels.get("num_classes"), labels.get("names")
    if not ((classes is None) == (labels["kind"] == "score")
            and (classes is None
                 or (type(classes) is int and classes >= (2 if labels["kind"] == "class" else 1)))
            and (names is None or (isinstance(names, list)
                                   and all(isinstance(name, str) for name in names)))):
        raise TypeError(f"split {split!r}: 'labels' must give 'num_classes' (an integer, for "
                        "class and multi-hot labels only) and 'names' (a list of strings or null)")


def _open_split(cache_dir: Path, split: str, entry: dict, verify: bool,
                label_range: list | None) -> MultimodalDataset:
    files = entry["files"]
    if verify:
        for filename, expected in files.items():
            _verify(cache_dir / split / filename, expected["sha256"], split)
    arrays = {name: _open_array(cache_dir / split / name, files[name], split)
              for name in files if name.endswith(".npy")}
    strings = _read_strings(cache_dir / split / _STRINGS, split)
    modalities = entry["modalities"]
    labels = entry.get("labels", _SCORES)  # caches written before label kinds hold scores
    dtype, rank = _LABEL_ARRAYS[labels["kind"]]
    if (arrays["labels.npy"].dtype.str, arrays["labels.npy"].ndim) != (dtype, rank):
        raise DatasetError("labels of another kind than the manifest says",
                           file=cache_dir / split / "labels.npy", split=split,
                           expected=f"{labels['kind']} labels: {dtype} of rank {rank}",
                           found=f"shape {list(arrays['labels.npy'].shape)}, dtype "
                           f"{arrays['labels.npy'].dtype}", fix=_FIX)
    dataset = MultimodalDataset(
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
    folder = cache_dir / split
    _check_labels(dataset, label_range, Location(folder / "labels.npy", split))
    if verify:
        for name, array in dataset.features.items():
            where = Location(folder / f"features.{name}.npy", split)
            if array.ndim == 3:
                check_finite(array, where, name, dataset.ids)
            elif dataset.vocabulary is not None:
                _check_token_ids(array, len(dataset.vocabulary), where, name)
    return dataset


def _check_labels(dataset: MultimodalDataset, label_range, where: Location) -> None:
    """Finite scores (labels and unimodal labels) within ``label_range`` when one is given;
    class and multi-hot labels are checked by :class:`MultimodalDataset` itself."""
    low, high = label_range if label_range is not None else (-np.inf, np.inf)
    scores = {dataset.label_field: dataset.labels} if dataset.label_kind == "score" else {}
    fields = scores | {
        f"unimodal.{name}": labels for name, labels in dataset.unimodal_labels.items()}
    for field, labels in fields.items():
        check_labels(labels, (low, high), where, field, dataset.ids)


def _check_token_ids(array: np.ndarray, vocabulary: int, where: Location, field: str) -> None:
    for start in range(0, len(array), 1024):
        block = array[start : start + 1024]
        if block.size and (block.min() < 0 or block.max() >= vocabulary):
            raise where.error("token id outside the vocabulary", field,
                              f"ids in [0, {vocabulary})",
                              f"ids {block.min()}..{block.max()} in samples {start}.."
                              f"{start + len(block) - 1}", _FIX)


def _open_array(path: Path, expected: dict, split: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError("cannot open a cache file", file=path, split=split,
                           expected="a readable .npy file", found=f"{type(error).__name__}: {error}",
                           fix=_FIX) from error
    found = {"shape": list(array.shape), "dtype": array.dtype.str}
    if found != {"shape": expected.get("shape"), "dtype": expected.get("dtype")}:
        raise DatasetError("cache file disagrees with the manifest", file=path, split=split,
                           expected=f"shape {expected.get('shape')}, dtype {expected.get('dtype')}",
                           found=f"shape {found['shape']}, dtype {found['dtype']}", fix=_FIX)
    kind = path.name.split(".")[0]
    if kind == "extra":  # per-sample numbers of any shape (N, ...)
        ok = array.ndim >= 1 and array.dtype.kind in "biuf"
    else:
        ranks = {"features": (3, 2), "labels": (1, 2)}.get(kind, (1,))
        ok = array.dtype.str in _DTYPES[kind] and array.ndim in ranks and not (
            kind == "features" and (array.ndim == 3) != (array.dtype.str == "<f4"))
    if not ok:
        raise DatasetError("wrong kind of array in the cache", file=path, split=split,
                           expected=_EXPECTED_ARRAY.get(kind, "a (N,) float32 array"),
                           found=f"shape {found['shape']}, dtype {array.dtype}", fix=_FIX)
    return array


_EXPECTED_ARRAY = {
    "features": "float32 (N, T, d) features or int64 (N, T) token ids",
    "lengths": "a (N,) int64 array",
    "labels": "(N,) float32 scores, (N,) int64 class indices or (N, C) float32 multi-hot rows",
    "extra": "a (N, ...) array of numbers",
}


def _read_strings(path: Path, split: str) -> dict:
    try:
        strings = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise DatasetError("cannot read a cache file", file=path, split=split,
                           expected="a JSON file of ids and texts",
                           found=f"{type(error).__name__}: {error}", fix=_FIX) from error

    def texts(value, optional: bool) -> bool:
        return (value is None and optional) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value))

    if not (isinstance(strings, dict) and texts(strings.get("ids"), False)
            and texts(strings.get("raw_text"), True) and texts(strings.get("vocabulary"), True)):
        raise DatasetError("cannot read a cache file", file=path, split=split,
                           expected="'ids' a list of strings; 'raw_text' and 'vocabulary' "
                           "lists of strings or null",
                           found=f"{type(strings).__name__} with keys "
                           f"{sorted(strings) if isinstance(strings, dict) else '-'}", fix=_FIX)
    return strings


def _verify(path: Path, expected: str, split: str) -> None:
    found = sha256_file(path) if path.is_file() else "no such file"
    if found != expected:
        raise DatasetError("cache file checksum mismatch", file=path, split=split,
                           expected=f"sha256 {expected}", found=found, fix=_FIX)
