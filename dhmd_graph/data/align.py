r"""Computational sequences (``.csd``) to labelled segments, one dataset per split.

The CMU-MultimodalSDK ships each modality of CMU-MOSI / CMU-MOSEI as a computational
sequence whose entries are whole videos: rows of features, each with a time interval
(a word, an audio frame, a video frame). The labels are a computational sequence too:
its entries are the same videos and its rows are the labelled segments (utterances),
one label vector and one interval per row. :func:`align_csd` cuts every feature
sequence to every labelled segment and returns one :class:`MultimodalDataset` per
split of a video-level fold list; segment ``k`` of video ``v`` (row ``k`` of the labels
entry ``v``) becomes the sample ``'v[k]'``, the SDK's name for it.

**The rule of the SDK.** A feature row with interval :math:`[s, e]` belongs to an
interval :math:`[S, E]` when they share more than :math:`\epsilon` seconds,

.. math::
    \min(e, E) - \max(s, S) > \epsilon,\qquad \epsilon = 10^{-5}\,\text{s},

as in ``mmdataset.align`` of the SDK. A row that straddles a boundary belongs to both
sides; a row of zero length belongs to nothing. Each labelled segment is judged on its own:
labelled segments may overlap (the real ``CMU_MOSI_Opinion_Labels.csd`` has 93 overlapping
consecutive pairs, by up to 7 s), and a row in the overlap of two segments belongs to both,
as in the SDK.

**Sequences or words.** Without a ``reference`` each modality keeps its own rows,
in time order: the unaligned layout. With ``reference='text'`` (a word-level
sequence) every labelled segment becomes the sequence of the reference's rows that
belong to it, and every other modality is collapsed onto each of those rows by a
``reduction`` of the rows that belong to the reference row's interval: the mean by
default, as the SDK's standard processing (``align(..., collapse_functions=[avg])``)
does, the word-aligned layout. As in the SDK, a reference row of zero length is
skipped, and a reference row that some other modality does not cover at all is left
out of every modality (the SDK's ``unify``). Reference rows may overlap, too: each is
collapsed from the rows of its own interval, and the steps of a segment are in the order
of their start times (then of their rows in the file). The one overlap refused is
ambiguous: two reference rows with the *same* interval (both ends within
:math:`\epsilon`) would be two steps of one moment, with the same collapsed rows of every
other modality and no time order between them (e.g. a sequence already aligned to
overlapping segments and joined back, where a word of the overlap is in both segments).

**Folds.** The standard CMU-MOSI and CMU-MOSEI train/valid/test video folds are built
in (``folds='mosi'``, ``folds='mosei'``; the lists of the SDK's ``standard_folds``, with
their source in ``dhmd_graph/data/folds/``). Custom folds are a mapping or a JSON file
``{"train": [video ids], "valid": [...], "test": [...]}`` (an optional ``"source"`` key is
ignored). Labelled videos of no fold are left out, with a warning.

**Checks** (each a :class:`DatasetError` naming the file, the entry and the row):
non-numeric features (e.g. the raw words sequence), non-finite intervals, an interval
that ends before it starts, two reference rows of the same interval, an empty labelled
segment, a labelled video missing from a feature sequence, a segment with no rows of
some modality (``missing='drop'`` leaves such segments out instead, with a warning, as
the SDK does), folds that share a video, and a split with none of its videos in the
labels. ``-inf`` features (COVAREP writes them) become 0 as in the MMSA files; ``+inf``
is an error, and so is NaN unless ``nan='zero'`` (real feature files such as FACET's
carry some NaN), which reads NaN features as 0. NaN in the labels is always an error.

**Labels.** The labels' columns are kept: ``label_column`` picks one (0, the
sentiment, by default; CMU-MOSEI's seven columns are sentiment, happiness, sadness,
anger, surprise, disgust, fear) or is a function of the ``(N, C)`` matrix of all
columns that returns the labels; ``label_column='mosei_emotions'`` turns those seven
columns into CMU-MOSEI's six-emotion multi-hot labels (present when the intensity is
> 0, :func:`~dhmd_graph.data.labels.mosei_emotion_presence`).

**Recipes.** :func:`load_alignment` reads the same arguments from a JSON recipe, so that
``load_dataset``, ``dhmd describe`` and ``dhmd convert`` accept a recipe as a dataset::

    {"labels": "CMU_MOSI_Opinion_Labels.csd",
     "features": {"text": "CMU_MOSI_TimestampedWordVectors.csd",
                  "audio": "CMU_MOSI_COVAREP.csd", "vision": "CMU_MOSI_Visual_Facet_41.csd"},
     "folds": "mosi", "reference": "text"}

Relative paths are relative to the recipe's folder. Optional keys: ``reference``,
``reduction``, ``max_steps``, ``label_column``, ``label_range``, ``missing``, ``nan``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.checks import Location, check_labels
from dhmd_graph.data.csd import ComputationalSequence, CSDReader
from dhmd_graph.data.labels import MOSEI_EMOTIONS, mosei_emotion_presence
from dhmd_graph.errors import DatasetError
from dhmd_graph.files import (
    SAFE_NAME,
    Key,
    check_object,
    check_user_file,
    is_safe_name,
    read_user_json,
)

__all__ = [
    "BUILTIN_FOLDS",
    "EPSILON",
    "NAN_OPTIONS",
    "REDUCTIONS",
    "align_csd",
    "alignment_files",
    "load_alignment",
    "load_folds",
    "recipe_label_range",
]

EPSILON = 1e-5
"""Seconds two intervals must share for a row to belong to an interval (the SDK's
``epsilon``); also how close two reference rows' ends must be to count as the same."""

SPLITS = ("train", "valid", "test")
BUILTIN_FOLDS = {"mosi": "cmu_mosi.json", "mosei": "cmu_mosei.json"}
"""The built-in folds by name: files in ``dhmd_graph/data/folds/``."""

REDUCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda rows: rows.mean(axis=0),
    "max": lambda rows: rows.max(axis=0),
    "min": lambda rows: rows.min(axis=0),
    "sum": lambda rows: rows.sum(axis=0),
}
"""Reductions of the ``(k, n)`` rows under one reference interval to one ``(n,)`` row."""

SENTIMENT_RANGE = (-3.0, 3.0)
_MISSING = ("error", "drop")
NAN_OPTIONS = ("error", "zero")
"""``align_csd(nan=...)``: NaN features are an error, or read as 0."""
_SEGMENT_ID = re.compile(r"^(.*)\[(\d+)\]$")

Source = str | PathLike | ComputationalSequence


def load_folds(folds: str | PathLike | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    r"""The train/valid/test video ids of built-in, file or custom folds.

    Args:
        folds (str, PathLike or Mapping): ``'mosi'`` or ``'mosei'`` (the SDK's standard
            folds), a JSON file ``{"train": [...], "valid": [...], "test": [...]}`` (an
            optional ``"source"`` key is ignored), or such a mapping.

    Returns:
        dict[str, list[str]]: Keys ``'train'``, ``'valid'``, ``'test'``.

    Raises:
        DatasetError: The file is missing or not such JSON, a split is missing or not a
            list of strings, or two splits share a video.
    """
    if isinstance(folds, Mapping):
        return _check_folds(folds, "the folds mapping")
    if isinstance(folds, str) and folds in BUILTIN_FOLDS:
        text = (resources.files("dhmd_graph.data") / "folds" / BUILTIN_FOLDS[folds]).read_text()
        return _check_folds(json.loads(text), f"the built-in '{folds}' folds")
    path = Path(folds)
    try:
        data = read_user_json(path, what="a folds JSON file")
    except OSError as error:
        raise DatasetError("cannot read the folds", file=path,
                           expected=f"one of {sorted(BUILTIN_FOLDS)} or a JSON file "
                           '{"train": [...], "valid": [...], "test": [...]}',
                           found=f"{type(error).__name__}: {error}",
                           fix="Name built-in folds or point to a folds JSON file") from error
    return _check_folds(data, path)


def _check_folds(data: Any, where: str | Path) -> dict[str, list[str]]:
    def fail(problem: str, field: str | None, found: str) -> DatasetError:
        return DatasetError(problem, file=where, field=field,
                            expected='{"train": [video ids], "valid": [...], "test": [...]}',
                            found=found, fix="Give each split a list of video ids")

    if not isinstance(data, Mapping):
        raise fail("folds are not a mapping", None, f"a {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - {*SPLITS, "source"})
    if unknown:
        raise fail("unknown folds key", unknown[0], f"keys {sorted(map(str, data))}")
    folds: dict[str, list[str]] = {}
    for split in SPLITS:
        videos = data.get(split)
        if not isinstance(videos, Sequence) or isinstance(videos, str) or not all(
                isinstance(video, str) for video in videos):
            raise fail("missing or malformed fold", split, f"{type(videos).__name__}")
        folds[split] = list(videos)
    seen: dict[str, str] = {}
    for split, videos in folds.items():
        for video in videos:
            if seen.setdefault(video, split) != split:
                raise fail("a video is in two folds", split,
                           f"'{video}' in both '{seen[video]}' and '{split}'")
    return folds


@dataclass
class _Rows:
    """One video's rows of one sequence, sorted by start time."""

    features: np.ndarray  # (m, n) float32
    intervals: np.ndarray  # (m, 2) float64 seconds
    order: np.ndarray  # (m,) the row number of each row in the file
    reach: np.ndarray  # (m,) running maximum of the ends, for the search in `within`

    def within(self, start: float, end: float) -> np.ndarray:
        """Indices of the rows that share more than EPSILON seconds with [start, end]."""
        first = int(np.searchsorted(self.reach, start + EPSILON, side="right"))
        last = int(np.searchsorted(self.intervals[:, 0], end - EPSILON, side="left"))
        candidates = np.arange(first, max(first, last))
        shared = (np.minimum(self.intervals[candidates, 1], end)
                  - np.maximum(self.intervals[candidates, 0], start))
        return candidates[shared > EPSILON]


class _Sequence:
    """A feature or label sequence read video by video, from a file or from memory.

    In a feature sequence, entries named ``video[k]`` (a sequence the SDK has already
    aligned) are joined back into their video, as the SDK does before it aligns again,
    ``-inf`` features become 0 and, with ``nan='zero'``, so do NaN features; a label
    sequence is read as it is.
    """

    def __init__(self, source: Source, stack: ExitStack, *, labels: bool,
                 nan: str = "error") -> None:
        self.nan = nan
        if isinstance(source, ComputationalSequence):
            self.where = f"<sequence {source.name}>"
            entries, self._read = list(source.entries), source.entries.__getitem__
        else:
            reader = stack.enter_context(CSDReader(source))
            self.where = str(reader.path)
            entries, self._read = reader.entry_ids, reader.entry
        self.labels = labels
        self.entries: dict[str, list[str]] = {}
        for key in sorted(entries, key=_entry_order):
            match = None if labels else _SEGMENT_ID.match(key)
            self.entries.setdefault(match.group(1) if match else key, []).append(key)
        self.width: int | None = None

    def rows(self, video: str, *, reference: bool = False) -> _Rows:
        """The video's rows, checked and sorted by start time; the rows of the
        ``reference`` modality may not repeat an interval (see the module docstring)."""
        parts = [self._read(key) for key in self.entries[video]]
        features = np.concatenate([part.features for part in parts])
        intervals = np.concatenate([part.intervals for part in parts]).astype(np.float64)
        if not np.issubdtype(features.dtype, np.number):
            raise self.error("features are not numeric", video, "numeric feature rows",
                             f"dtype {features.dtype}",
                             "Pass a sequence of feature vectors (e.g. the word vectors, "
                             "not the words)")
        if self.width is not None and features.shape[1] != self.width:
            raise self.error("feature width differs between videos", video,
                             f"{self.width} columns, as in the first video",
                             f"{features.shape[1]} columns", "Pass one consistent sequence")
        self.width = features.shape[1]
        self._check_intervals(video, intervals)
        order = np.lexsort((intervals[:, 1], intervals[:, 0]))  # by start, then end; stable
        features, intervals = features[order].astype(np.float32), intervals[order]
        if reference and len(intervals) > 1:
            same = np.flatnonzero((np.abs(np.diff(intervals, axis=0)) <= EPSILON).all(axis=1))
            if len(same):
                i = int(same[0])
                raise self.error(
                    "two reference rows of the same interval", f"{video}/intervals",
                    f"reference rows of distinct intervals (ends more than {EPSILON} s apart)",
                    f"rows {int(order[i])} {intervals[i].tolist()} and "
                    f"{int(order[i + 1])} {intervals[i + 1].tolist()}",
                    "Remove the repeated row, or pass the video-level sequence (not one "
                    "already aligned to overlapping segments); overlapping rows of "
                    "different intervals are fine")
        if not self.labels:
            features[np.isneginf(features)] = 0.0
            if self.nan == "zero":
                features[np.isnan(features)] = 0.0
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        if len(bad):
            row = int(order[bad[0]])
            found = features[bad[0]]
            kind = "NaN" if np.isnan(found).any() else "infinite"
            raise self.error("NaN or infinite values", f"{video}/features",
                             "finite numbers" + ("" if self.labels else " (-inf is read as 0)"),
                             f"a non-finite value ({kind}) in row {row} ({len(bad)} such rows)",
                             "Fix the labels file" if self.labels else
                             "Pass nan='zero' (recipe key \"nan\": \"zero\") to read NaN "
                             "features as 0, or clean the features (e.g. np.nan_to_num) and "
                             "write them again")
        return _Rows(features, intervals, order, np.maximum.accumulate(intervals[:, 1]))

    def _check_intervals(self, video: str, intervals: np.ndarray) -> None:
        field = f"{video}/intervals"
        bad = np.flatnonzero(~np.isfinite(intervals).all(axis=1))
        if len(bad):
            raise self.error("non-finite interval", field, "start and end times in seconds",
                             f"{intervals[bad[0]].tolist()} in row {int(bad[0])}",
                             "Fix the intervals in the file")
        bad = np.flatnonzero(intervals[:, 1] < intervals[:, 0])
        if len(bad):
            raise self.error("interval ends before it starts", field, "start <= end",
                             f"{intervals[bad[0]].tolist()} in row {int(bad[0])}",
                             "Fix the intervals in the file (columns are start, end)")

    def error(self, problem: str, field: str, expected: str, found: str, fix: str
              ) -> DatasetError:
        return DatasetError(problem, file=self.where, field=field, expected=expected,
                            found=found, fix=fix)


def _entry_order(key: str) -> tuple[str, int]:
    match = _SEGMENT_ID.match(key)
    return (match.group(1), int(match.group(2))) if match else (key, -1)


def align_csd(
    features: Mapping[str, Source],
    labels: Source,
    *,
    folds: str | PathLike | Mapping[str, Sequence[str]],
    reference: str | None = None,
    reduction: str | Callable[[np.ndarray], np.ndarray] = "mean",
    max_steps: int | Mapping[str, int] | None = None,
    label_column: int | str | Callable[[np.ndarray], np.ndarray] = 0,
    label_range: tuple[float, float] | None = None,
    missing: str = "error",
    nan: str = "error",
) -> dict[str, MultimodalDataset]:
    r"""Cut computational sequences to labelled segments: one dataset per fold.

    See the module's documentation for the rule that assigns rows to segments and to
    reference intervals, and for the checks.

    Args:
        features (Mapping[str, Source]): Per modality name, in the modality order, a
            ``.csd`` file or a :class:`ComputationalSequence` whose entries are videos
            (or ``video[k]`` entries, joined back into their video).
        labels (Source): The labels sequence: entries are videos, row ``k`` of entry
            ``v`` is the labelled segment ``'v[k]'`` (its label vector and interval).
        folds (str, PathLike or Mapping): ``'mosi'``, ``'mosei'``, a folds JSON file or a
            mapping, see :func:`load_folds`.
        reference (str, optional): Collapse every other modality onto the rows of this
            one (e.g. the words); :obj:`None` keeps each modality's own rows.
            (default: :obj:`None`)
        reduction (str or Callable, optional): How rows under one reference row are
            collapsed: a name in :data:`REDUCTIONS` or a function of the ``(k, n)`` rows
            returning ``(n,)``. (default: ``'mean'``, as the SDK)
        max_steps (int or Mapping[str, int], optional): Keep at most this many steps per
            segment (the first ones), for all or per modality. (default: :obj:`None`)
        label_column (int, str or Callable, optional): The labels' column to use,
            ``'mosei_emotions'`` for CMU-MOSEI's six emotions as multi-hot labels (from
            its seven columns), or a function of the ``(N, C)`` matrix of all columns
            returning the labels. (default: :obj:`0`, the sentiment)
        label_range (tuple[float, float], optional): Inclusive range a label column must
            lie in; :obj:`None` means ``(-3, 3)`` for a column and no check for a
            function. (default: :obj:`None`)
        missing (str, optional): ``'error'``: a labelled segment without rows of some
            modality, or a labelled video missing from a feature sequence, is an error;
            ``'drop'``: such segments are left out, with a warning. (default: ``'error'``)
        nan (str, optional): ``'error'``: a NaN feature is an error; ``'zero'``: NaN
            features are read as 0 (labels must still be finite). (default: ``'error'``)

    Returns:
        dict[str, MultimodalDataset]: Keys ``'train'``, ``'valid'``, ``'test'``; ids
        ``'video[k]'``; features float32 ``(N, T_m, d_m)`` zero-padded after each
        segment's length (with a ``reference``, every modality has the same lengths).

    Raises:
        ImportError: ``h5py`` is not installed and a file is given.
        DatasetError: For the problems listed in the module's documentation, and for an
            unknown ``reference``, ``reduction`` or ``missing``.
    """
    folds = load_folds(folds)
    names = list(features)
    _check_options(names, reference, reduction, max_steps, missing, nan)
    reduce = REDUCTIONS[reduction] if isinstance(reduction, str) else reduction
    limits = {name: (max_steps.get(name) if isinstance(max_steps, Mapping) else max_steps)
              for name in names}
    with ExitStack() as stack:
        label_sequence = _Sequence(labels, stack, labels=True)
        sequences = {name: _Sequence(source, stack, labels=False, nan=nan)
                     for name, source in features.items()}
        videos = _videos_by_split(label_sequence, folds, sequences, missing)
        dropped: list[str] = []
        datasets = {}
        for split, split_videos in videos.items():
            samples = []
            for video in split_videos:
                samples += _segments(video, label_sequence, sequences, reference, reduce,
                                     missing, dropped)
            if not samples:
                raise DatasetError("no segment left in a split", file=label_sequence.where,
                                   split=split, expected="at least one labelled segment",
                                   found=f"all segments of its {len(split_videos)} videos "
                                   "dropped for missing features",
                                   fix="Check that the feature files belong to the labels")
            datasets[split] = _dataset(samples, names, limits, label_column, label_range,
                                       label_sequence.where, split)
    if dropped:
        warnings.warn(f"align_csd: {len(dropped)} labelled segment(s) without rows of some "
                      f"modality were dropped (missing='drop'), e.g. {dropped[:5]}",
                      stacklevel=2)
    return datasets


def _check_options(names: list[str], reference: str | None, reduction, max_steps,
                   missing: str, nan: str) -> None:
    def fail(field: str, expected: str, found: Any) -> DatasetError:
        return DatasetError("invalid alignment option", field=field, expected=expected,
                            found=repr(found), fix=f"Pass a valid {field}")

    if not names:
        raise fail("features", "at least one feature sequence", names)
    if reference is not None and reference not in names:
        raise fail("reference", f"one of the modalities {names} or None", reference)
    if isinstance(reduction, str) and reduction not in REDUCTIONS:
        raise fail("reduction", f"one of {sorted(REDUCTIONS)} or a function", reduction)
    if missing not in _MISSING:
        raise fail("missing", f"one of {list(_MISSING)}", missing)
    if nan not in NAN_OPTIONS:
        raise fail("nan", f"one of {list(NAN_OPTIONS)}", nan)
    limits = max_steps.values() if isinstance(max_steps, Mapping) else [max_steps]
    if isinstance(max_steps, Mapping) and set(max_steps) - set(names):
        raise fail("max_steps", f"keys among the modalities {names}", sorted(max_steps))
    if not all(limit is None or (isinstance(limit, int) and not isinstance(limit, bool)
                                 and limit >= 1) for limit in limits):
        raise fail("max_steps", "a positive integer, per modality or for all", max_steps)


def _videos_by_split(labels: _Sequence, folds: dict[str, list[str]],
                     sequences: dict[str, _Sequence], missing: str) -> dict[str, list[str]]:
    """Labelled videos per split, sorted; checks that ids match across files."""
    fold_of = {video: split for split, videos in folds.items() for video in videos}
    unplaced = sorted(video for video in labels.entries if video not in fold_of)
    videos = {split: sorted(v for v in labels.entries if fold_of.get(v) == split)
              for split in SPLITS}
    for split, split_videos in videos.items():
        if not split_videos:
            raise DatasetError(
                "no labelled video of a fold", file=labels.where, split=split,
                expected=f"some of the {len(folds[split])} '{split}' videos of the folds "
                f"(e.g. {folds[split][:3]}) among the labels' entries",
                found=f"none; the labels have {len(labels.entries)} videos, e.g. "
                f"{sorted(labels.entries)[:3]}",
                fix="Pass the folds of this dataset, and labels whose entries are whole "
                "videos (not aligned 'video[k]' entries)")
    if unplaced:
        warnings.warn(f"align_csd: {len(unplaced)} labelled video(s) are in no fold and are "
                      f"left out, e.g. {unplaced[:5]}", stacklevel=3)
    wanted = [video for split_videos in videos.values() for video in split_videos]
    for name, sequence in sequences.items():
        absent = [video for video in wanted if video not in sequence.entries]
        if absent and missing == "error":
            raise sequence.error(
                "labelled videos missing from a feature sequence", name,
                f"an entry for each of the {len(wanted)} labelled videos of the folds",
                f"{len(absent)} without one, e.g. {absent[:5]}; its entries are e.g. "
                f"{sorted(sequence.entries)[:3]}",
                "Check that the files belong to the same dataset, or pass missing='drop' to "
                "leave those videos out")
        if absent:
            warnings.warn(f"align_csd: {len(absent)} labelled video(s) missing from "
                          f"{sequence.where} are left out (missing='drop'), e.g. {absent[:5]}",
                          stacklevel=3)
        for split in SPLITS:
            kept = [video for video in videos[split] if video in sequence.entries]
            if not kept:
                raise sequence.error(
                    "no labelled video of a split in a feature sequence", name,
                    f"an entry for some of the {len(videos[split])} labelled '{split}' videos",
                    f"none, e.g. {videos[split][:3]} missing; its entries are e.g. "
                    f"{sorted(sequence.entries)[:3]}",
                    "Check that the files belong to the same dataset")
            videos[split] = kept
    return videos


def _segments(video: str, labels: _Sequence, sequences: dict[str, _Sequence],
              reference: str | None, reduce, missing: str, dropped: list[str]) -> list[tuple]:
    """``(id, {modality: (T, d) rows}, label row)`` for each labelled segment of a video."""
    label_rows = labels.rows(video)  # segments may overlap: each is judged on its own
    rows = {name: sequence.rows(video, reference=name == reference)
            for name, sequence in sequences.items()}
    samples = []
    for index in np.argsort(label_rows.order):  # the segments in the file's order
        start, end = label_rows.intervals[index]
        row = int(label_rows.order[index])
        segment = f"{video}[{row}]"
        if end - start <= EPSILON:
            raise labels.error("empty labelled segment", f"{video}/intervals",
                               f"a segment longer than {EPSILON} s",
                               f"{[float(start), float(end)]} in row {row}",
                               "Fix or remove the segment in the labels file")
        if reference is None:
            steps = {name: r.features[r.within(start, end)] for name, r in rows.items()}
            empty = next((name for name, s in steps.items() if not len(s)), None)
        else:
            steps, empty = _collapse(rows, reference, start, end, reduce)
        if empty is not None:
            if missing == "drop":
                dropped.append(segment)
                continue
            r = rows[empty]
            span = (f"its rows span {r.intervals[0, 0]:.3f}-{r.intervals[:, 1].max():.3f} s"
                    if len(r.intervals) else "it has no rows")
            raise sequences[empty].error(
                "labelled segment without features", video,
                f"rows of '{empty}' within segment '{segment}' "
                f"({start:.3f}-{end:.3f} s)" + (f", under the '{reference}' rows" if reference
                                                else ""),
                f"none; {span}",
                "Check that the files belong together, or pass missing='drop' to leave such "
                "segments out (as the SDK does)")
        samples.append((segment, steps, label_rows.features[index]))
    return samples


def _collapse(rows: dict[str, _Rows], reference: str, start: float, end: float, reduce
              ) -> tuple[dict[str, np.ndarray], str | None]:
    """Every modality on the reference rows of a segment; the first uncovered modality."""
    base = rows[reference]
    steps: dict[str, list[np.ndarray]] = {name: [] for name in rows}
    uncovered = None
    for row in base.within(start, end):
        low, high = base.intervals[row]
        if high - low <= EPSILON:  # the SDK skips reference rows of zero length
            continue
        found = {name: r.within(low, high) for name, r in rows.items() if name != reference}
        gap = next((name for name, indices in found.items() if not len(indices)), None)
        if gap is not None:  # left out of every modality, as the SDK's unify does
            uncovered = uncovered or gap
            continue
        steps[reference].append(base.features[row])
        for name, indices in found.items():
            steps[name].append(np.asarray(reduce(rows[name].features[indices]), np.float32))
    if not steps[reference]:
        return {}, uncovered or reference
    return {name: np.stack(values) for name, values in steps.items()}, None


def _dataset(samples: list[tuple], names: list[str], limits: dict[str, int | None],
             label_column, label_range, source: str, split: str) -> MultimodalDataset:
    count = len(samples)
    features, lengths = {}, {}
    for name in names:
        rows = [steps[name][: limits[name]] for _, steps, _ in samples]
        lengths[name] = np.array([len(r) for r in rows], dtype=np.int64)
        array = np.zeros((count, int(lengths[name].max()), rows[0].shape[1]), dtype=np.float32)
        for i, r in enumerate(rows):
            array[i, : len(r)] = r
        features[name] = array
    matrix = np.stack([label for *_, label in samples]).astype(np.float32)  # (N, C)
    ids = [segment for segment, *_ in samples]
    if label_column == "mosei_emotions":
        return MultimodalDataset(
            features, lengths, mosei_emotion_presence(matrix, file=source, field="labels"),
            ids, label_kind="multi_hot", num_classes=len(MOSEI_EMOTIONS),
            label_names=MOSEI_EMOTIONS, source=source, split=split)
    if callable(label_column):
        labels = label_column(matrix)
    else:
        if not (isinstance(label_column, int) and 0 <= label_column < matrix.shape[1]):
            raise DatasetError("no such label column", file=source, split=split,
                               field="label_column",
                               expected=f"a column in 0..{matrix.shape[1] - 1}",
                               found=repr(label_column),
                               fix="Pick a column of the labels sequence (0 is the sentiment)")
        labels = matrix[:, label_column]
        check_labels(labels, label_range or SENTIMENT_RANGE, Location(source, split),
                     f"label column {label_column}", ids)
    return MultimodalDataset(features, lengths, labels, ids, source=source, split=split)


def load_alignment(recipe: str | PathLike, *, label_range: tuple[float, float] | None = None
                   ) -> dict[str, MultimodalDataset]:
    r"""Align the computational sequences that a JSON recipe names (see the module's
    documentation for the recipe's keys).

    Args:
        recipe (str or PathLike): The recipe ``.json`` file.
        label_range (tuple[float, float], optional): Overrides the recipe's
            ``label_range``. (default: :obj:`None`)

    Returns:
        dict[str, MultimodalDataset]: As :func:`align_csd`.

    Raises:
        DatasetError: The recipe is unreadable or has a missing, unknown or malformed
            key, or the alignment fails.
    """
    recipe = Path(recipe)
    options = _read_recipe(recipe)
    if label_range is not None:
        options["label_range"] = label_range
    return align_csd(**options)


def alignment_files(recipe: str | PathLike) -> list[Path]:
    """The files a recipe reads: the labels, the features and a folds file if any."""
    options = _read_recipe(Path(recipe))
    files = [options["labels"], *options["features"].values()]
    if not isinstance(options["folds"], Mapping) and options["folds"] not in BUILTIN_FOLDS:
        files.append(options["folds"])
    return [Path(file) for file in files]


def recipe_label_range(recipe: str | PathLike) -> tuple[float, float]:
    """The inclusive range a recipe's labels are checked against: its ``label_range``, or
    CMU-MOSI/MOSEI's ``(-3, 3)``."""
    return _read_recipe(Path(recipe)).get("label_range", SENTIMENT_RANGE)


_NULL = type(None)
_RECIPE_FIX = "See dhmd_graph.data.align for the recipe's keys"
_RECIPE = {
    "labels": Key(str, "the labels .csd file (relative to the recipe)", required=True),
    "features": Key(dict, "an object {modality: file.csd}", required=True),
    "folds": Key((str, dict), f"one of {sorted(BUILTIN_FOLDS)}, a folds .json file or an "
                 'object {"train": [video ids], "valid": [...], "test": [...]}', required=True),
    "reference": Key((str, _NULL), "a modality name, or null for the unaligned layout"),
    "reduction": Key((str, _NULL), f"one of {sorted(REDUCTIONS)} (null only without a "
                     "reference)"),
    "max_steps": Key((int, dict, _NULL), "a positive integer, an object {modality: positive "
                     "integer}, or null"),
    "label_column": Key((int, str), "a column index or 'mosei_emotions'"),
    "label_range": Key((list, _NULL), "[low, high], two numbers, or null"),
    "missing": Key(str, f"one of {list(_MISSING)}"),
    "nan": Key(str, f"one of {list(NAN_OPTIONS)}"),
}
"""The keys of a recipe, their JSON types and meaning (see the module docstring)."""


def _read_recipe(recipe: Path) -> dict[str, Any]:
    def fail(problem: str, field: str, expected: str, found: Any) -> DatasetError:
        return DatasetError(problem, file=recipe, field=field, expected=expected,
                            found=json.dumps(found)[:80], fix=_RECIPE_FIX)

    data = check_object(read_user_json(recipe, what="an alignment recipe (a JSON object)"),
                        _RECIPE, recipe, fix=_RECIPE_FIX)
    here = recipe.parent

    def path(value: Any, field: str) -> Path:
        if not isinstance(value, str) or not value:
            raise fail("not a file name", field, "a path (relative to the recipe)", value)
        file = here / value
        if file.exists():  # a missing file is named by its reader
            check_user_file(file, root=here, what=f"the file of '{field}'")
        return file

    features = data["features"]
    if not features:
        raise fail("malformed recipe key", "features", "an object {modality: file.csd}",
                   features)
    for name in features:
        if not is_safe_name(name):
            raise fail("not a modality name", f"features.{name}", SAFE_NAME, name)
    options = dict(data)
    options["labels"] = path(data["labels"], "labels")
    options["features"] = {name: path(value, f"features.{name}")
                           for name, value in features.items()}
    folds = data["folds"]
    if isinstance(folds, str) and folds not in BUILTIN_FOLDS:
        options["folds"] = path(folds, "folds")
    elif isinstance(folds, dict):
        options["folds"] = _check_folds(folds, recipe)
    reference = data.get("reference")
    if reference is not None and reference not in features:
        raise fail("malformed recipe key", "reference",
                   f"one of the modalities {list(features)}, or null", reference)
    reduction = data.get("reduction", "mean")
    if reduction is None and reference is None:
        options.pop("reduction")  # the unaligned layout reduces nothing
    elif reduction not in REDUCTIONS:
        raise fail("malformed recipe key", "reduction", _RECIPE["reduction"].expected,
                   reduction)
    max_steps = data.get("max_steps")
    limits = max_steps if isinstance(max_steps, dict) else {"max_steps": max_steps}
    for name, limit in limits.items():
        field = "max_steps" if name == "max_steps" else f"max_steps.{name}"
        if isinstance(max_steps, dict) and name not in features:
            raise fail("malformed recipe key", field, f"a modality among {list(features)}",
                       name)
        if limit is not None and not (type(limit) is int and limit >= 1):
            raise fail("malformed recipe key", field, "a positive integer", limit)
    if data.get("missing", "error") not in _MISSING:
        raise fail("malformed recipe key", "missing", f"one of {list(_MISSING)}",
                   data["missing"])
    if data.get("nan", "error") not in NAN_OPTIONS:
        raise fail("malformed recipe key", "nan", f"one of {list(NAN_OPTIONS)}", data["nan"])
    label_range = data.get("label_range")
    if label_range is not None:
        if not (len(label_range) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in label_range)
                and label_range[0] <= label_range[1]):
            raise fail("malformed recipe key", "label_range", "[low, high], low <= high",
                       label_range)
        options["label_range"] = tuple(label_range)
    column = data.get("label_column", 0)
    if column != "mosei_emotions" and (type(column) is not int or column < 0):
        raise fail("malformed recipe key", "label_column",
                   "a column index (0, 1, ...) or 'mosei_emotions'", column)
    return options
