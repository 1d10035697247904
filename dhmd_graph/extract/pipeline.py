r"""Recordings in, a plain-arrays folder out: :func:`extract`.

The path of one run:

1. **Recordings.** Every media file of the folder (or the files given); files with the
   same name (``a.mp4`` and ``a.wav``) are one recording: its video from the video file,
   its sound from the audio file, else from the video.
2. **Utterances.** A recording's transcript (``<name>.srt``, ``.vtt`` or ``.csv`` beside
   it or in ``transcripts``) defines its utterances; without one the recording is one
   utterance (a document) without text.
3. **Frames.** Each modality's extractor runs once over the whole recording; its frames
   are cached per recording (``<out>.cache/<name>.npz``), so a killed run continues where
   it stopped and a second run with another transcript or manifest extracts nothing.
4. **Alignment.** Per utterance, each modality keeps its frames with a time in
   ``[start, end)``; with ``collapse="words"`` (and per-word timestamps) the frames within
   each word are averaged, so every modality has one step per word, as the CMU SDK's
   word-level alignment does. An utterance with no frame of a modality gets one zero
   step and ``extra.<modality>_present = 0``.
5. **Folder.** With a manifest of labels, the folder :func:`~dhmd_graph.data.load_arrays`
   reads (``dhmd train --data``); without one, every utterance is a ``test`` row without
   a label, for prediction. ``extract.json`` beside the arrays names every feature
   column and holds the summary.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from dhmd_graph.data.arrays import LABELS_FILE, SPLITS, dataset_from_arrays, write_arrays
from dhmd_graph.data.misa import PAD, UNK, build_vocabulary
from dhmd_graph.errors import ConfigError, DatasetError
from dhmd_graph.extract.media import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaError,
    Segment,
    probe,
)
from dhmd_graph.extract.protocol import Extractor, Frames, check_frames
from dhmd_graph.extract.registry import make_extractor
from dhmd_graph.extract.transcripts import (
    TRANSCRIPT_SUFFIXES,
    Utterance,
    Word,
    read_transcript,
    read_words,
    tokenize,
)

__all__ = ["DEFAULT_MODALITIES", "ExtractSummary", "Recording", "extract", "find_recordings"]

DEFAULT_MODALITIES = {"audio": "acoustic", "vision": "face"}
SUMMARY_FILE = "extract.json"
_SPLIT_SHARES = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class Recording:
    """One recording: its name and its video and audio files (either may be missing)."""

    name: str
    video: Path | None = None
    audio: Path | None = None

    @property
    def path(self) -> Path:
        return self.video or self.audio


@dataclass
class FileReport:
    """What happened to one recording (a row of the summary table)."""

    recording: str
    status: str  # "extracted", "cached" or "skipped"
    seconds: float = 0.0
    utterances: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    message: str = ""


@dataclass
class ExtractSummary:
    r"""What :func:`extract` did: a row per recording and the counts of what was missing.

    Attributes:
        files (list[FileReport]): Per recording: status, seconds, utterances, frames and
            invalid frames per modality, and the error of a skipped file.
        missing (dict[str, list[str]]): Per modality, the utterances with no frame in their
            interval (written as one zero step).
        without_text (list[str]): Utterances whose transcript gave no words.
        no_transcript (list[str]): Recordings without a transcript (one utterance each).
        clipped (list[str]): Utterances whose interval runs past the end of the recording.
        empty_words (int): Words without a frame of some modality (zero steps).
        unlabelled (list[str]): Utterances the manifest gives no row for (not written).
        unmatched (list[str]): Manifest ids that match no utterance.
        splits (dict[str, int]): Utterances written per split.
        out (Path): The folder written.
    """

    files: list[FileReport] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    without_text: list[str] = field(default_factory=list)
    no_transcript: list[str] = field(default_factory=list)
    clipped: list[str] = field(default_factory=list)
    empty_words: int = 0
    unlabelled: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    out: Path | None = None
    _descriptions: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def skipped(self) -> list[FileReport]:
        return [report for report in self.files if report.status == "skipped"]

    def table(self) -> str:
        """The summary as text: a row per recording, then a line per kind of gap."""
        modalities = list(self._descriptions)
        header = ["recording", "status", "seconds", "utterances"] + [
            f"{m} frames ({self._descriptions[m]})" for m in modalities]
        rows = [header]
        for r in self.files:
            if r.status == "skipped":
                rows.append([r.recording, r.status] + ["-"] * (len(header) - 2))
                continue
            rows.append([r.recording, r.status, f"{r.seconds:.1f}", str(r.utterances)] + [
                f"{r.frames.get(m, 0)} ({_share(r.invalid.get(m, 0), r.frames.get(m, 0))})"
                for m in modalities])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                           ).rstrip() for row in rows]
        written = ", ".join(f"{split} {n}" for split, n in self.splits.items())
        lines.append(f"written: {sum(self.splits.values())} utterances ({written}) to {self.out}")
        gaps = [(f"{m}: no frame in the interval", ids) for m, ids in self.missing.items()]
        gaps += [("without text", self.without_text),
                 ("recordings without a transcript (one utterance each)", self.no_transcript),
                 ("interval past the end of the recording", self.clipped),
                 ("not in the manifest (not written)", self.unlabelled),
                 ("manifest ids matching no utterance", self.unmatched)]
        lines += [f"{label}: {len(ids)} ({_first(ids)})" for label, ids in gaps if ids]
        if self.empty_words:
            lines.append(f"words without a frame of a modality: {self.empty_words}")
        lines += [f"skipped {r.recording} (not in the folder): {r.message}"
                  for r in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("_descriptions")
        data["out"] = str(self.out)
        return data


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def _first(ids: Sequence[str], count: int = 3) -> str:
    return ", ".join(ids[:count]) + (", ..." if len(ids) > count else "")


def find_recordings(recordings: str | os.PathLike | Sequence[str | os.PathLike]
                    ) -> list[Recording]:
    r"""The recordings of a folder, a media file or a list of media files, by name.

    Raises:
        DatasetError: A path that does not exist, no media file, or two video (or two
            audio) files of the same name.
    """
    if isinstance(recordings, (str, os.PathLike)):
        root = Path(recordings)
        if root.is_dir():
            paths = sorted(p for p in root.iterdir() if p.suffix.lower() in
                           VIDEO_SUFFIXES + AUDIO_SUFFIXES and p.is_file())
        elif root.is_file():
            paths = [root]
        else:
            raise DatasetError("no such file or folder", file=root,
                               expected="a folder of recordings or a media file",
                               found="nothing there", fix="Check the path")
    else:
        paths = [Path(p) for p in recordings]
    if not paths:
        raise DatasetError("no recordings", file=recordings,
                           expected=f"media files ending in {', '.join(VIDEO_SUFFIXES[:4])}, "
                           f"{', '.join(AUDIO_SUFFIXES[:3])}, ...", found="none",
                           fix="Point to the folder that holds the videos or audio files")
    found: dict[str, dict[str, Path]] = {}
    for path in paths:
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "audio"
        files = found.setdefault(path.stem, {})
        if kind in files:
            raise DatasetError("two recordings of one name", file=path, expected=f"one {kind} "
                               f"file named '{path.stem}'", found=f"{files[kind].name} and "
                               f"{path.name}", fix="Rename or remove one of them")
        files[kind] = path
    return [Recording(name, files.get("video"), files.get("audio"))
            for name, files in sorted(found.items())]


def extract(
    recordings: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    transcripts: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    words: str | os.PathLike | None = None,
    modalities: Mapping[str, str | Extractor | None] | None = None,
    text: bool = True,
    vocabulary: str | os.PathLike | None = None,
    collapse: Literal["none", "words"] = "none",
    on_error: Literal["skip", "stop"] = "skip",
    cache: str | os.PathLike | bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> ExtractSummary:
    r"""Turn a folder of recordings into a plain-arrays folder (see the module's
    documentation for the path of a run).

    Args:
        recordings (str, PathLike or Sequence): A folder of media files, one file, or a
            list of files.
        out (str or PathLike): The folder to write (new or empty, unless ``overwrite``).
        transcripts (str or PathLike, optional): A folder of ``<name>.srt|.vtt|.csv``, or
            one transcript file when there is one recording. (default: beside the media)
        manifest (str or PathLike, optional): A CSV with the columns ``id``, ``label`` and
            optionally ``split``: ``id`` an utterance id or a recording name (then it
            labels all the recording's utterances). Without ``split``, whole recordings
            are assigned in name order, about 70/15/15. Utterances without a row are not
            written. (default: :obj:`None`: no labels, every utterance a ``test`` row)
        words (str or PathLike, optional): A folder of ``<name>.csv`` per-word timestamps
            (``start,end,word``); the text is then the words inside each utterance.
            (default: :obj:`None`)
        modalities (Mapping[str, str, Extractor or None], optional): Modality name →
            extractor or spec (:func:`~dhmd_graph.extract.make_extractor`); :obj:`None`
            leaves a default modality out. (default: ``{"audio": "acoustic",
            "vision": "face"}``, updated by what is given)
        text (bool, optional): Add the ``text`` modality (token ids and
            ``vocabulary.json``) when there are transcripts. (default: :obj:`True`)
        vocabulary (str or PathLike, optional): A ``vocabulary.json`` to map words onto
            (e.g. the training folder's, to predict with a trained run); unknown words
            become ``<unk>``. (default: built from the train split's words)
        collapse (str, optional): ``"none"`` (every frame) or ``"words"`` (the mean of the
            frames within each word; needs ``words``). (default: ``"none"``)
        on_error (str, optional): ``"skip"`` an unreadable recording (reported in the
            summary) or ``"stop"`` at it. (default: ``"skip"``)
        cache (str, PathLike or bool, optional): The per-recording cache folder;
            :obj:`True` for ``<out>.cache``, :obj:`False` for none. (default: :obj:`True`)
        overwrite (bool, optional): Replace ``out`` if it holds files. (default: :obj:`False`)
        progress (bool, optional): A progress bar on stderr. (default: :obj:`True`)

    Returns:
        ExtractSummary: What was written, cut or missing; ``summary.table()`` prints it.

    Raises:
        DatasetError: Bad input (the message names the file); with ``on_error="stop"``, the
            first unreadable recording. :class:`MediaError` is a :class:`DatasetError`.
        ImportError: The ``[extract]`` extra is not installed.
    """
    from tqdm import tqdm

    out = Path(out)
    if collapse not in ("none", "words") or on_error not in ("skip", "stop"):
        raise ConfigError(f"extract: collapse must be 'none' or 'words' (found {collapse!r}) "
                          f"and on_error 'skip' or 'stop' (found {on_error!r})")
    if collapse == "words" and words is None:
        raise ConfigError("extract: collapse='words' needs per-word timestamps (words=FOLDER)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DatasetError("refusing to write into a folder that is not empty", file=out,
                           expected="a new or empty folder", found="other files",
                           fix="Choose a new folder, or pass overwrite")
    _require("av", "decoding the recordings")
    manifest = None if manifest is None else Path(manifest)
    table = None if manifest is None else _read_manifest(manifest)  # checked before extracting
    chosen = {**DEFAULT_MODALITIES, **(modalities or {})}
    extractors = {name: make_extractor(spec) for name, spec in chosen.items() if spec is not None}
    if "text" in extractors:
        raise ConfigError("extract: 'text' is the transcripts' modality; name the "
                          "extractor's modality otherwise")
    found = find_recordings(recordings)
    cache_dir = None if cache is False else (
        out.with_name(out.name + ".cache") if cache is True else Path(cache))
    summary = ExtractSummary(_descriptions={m: getattr(e, "missing", "invalid")
                                            for m, e in extractors.items()})
    samples: list[dict] = []
    bar = tqdm(found, desc="extract", unit="file", disable=not progress, file=sys.stderr)
    for recording in bar:
        bar.set_postfix_str(recording.name)
        try:
            utterances, word_list, duration, frames, status = _recording(
                recording, extractors, transcripts, words, cache_dir, len(found), summary)
        except DatasetError as error:  # unreadable media (MediaError), a bad transcript
            if on_error == "stop":
                raise
            summary.files.append(FileReport(recording.name, "skipped", message=str(error)))
            continue
        report = FileReport(recording.name, status, duration, len(utterances),
                            {m: len(f.times) for m, f in frames.items()},
                            {m: int((~f.valid).sum()) if f.valid is not None else 0
                             for m, f in frames.items()})
        summary.files.append(report)
        for utterance in utterances:
            if utterance.end > duration + 1e-3:
                summary.clipped.append(utterance.id)
            samples.append(_align(recording.name, utterance, frames, extractors, word_list,
                                  collapse, summary))
    bar.close()
    if not samples:
        raise DatasetError("nothing extracted", expected="at least one readable recording",
            found=f"{len(summary.skipped)} skipped: {summary.skipped[0].message}"
            if summary.skipped else "no utterance", fix="See the messages above")
    with_text = text and any(s["tokens"] is not None for s in samples)
    _label(samples, manifest, table, summary)
    if overwrite and out.exists():
        shutil.rmtree(out)
    names = {m: list(getattr(e, "names", [f"{m}_{i}" for i in range(1, e.dim + 1)]))
             for m, e in extractors.items()}
    _write(samples, out, extractors, with_text, vocabulary, summary)
    summary.out = out
    (out / SUMMARY_FILE).write_text(json.dumps(
        {"features": names, "extractors": {m: repr(e) for m, e in extractors.items()},
         "collapse": collapse, "summary": summary.to_dict()}, indent=1), encoding="utf-8")
    return summary


def _require(module: str, purpose: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{purpose} needs the '{module}' package: pip install "
                          "'dhmd_graph[extract]'")


def _find(folder: Path | None, recording: Recording, suffixes: Iterable[str]) -> Path | None:
    for base in ([folder] if folder is not None else [recording.path.parent]):
        for suffix in suffixes:
            if (base / f"{recording.name}{suffix}").is_file():
                return base / f"{recording.name}{suffix}"
    return None


def _recording(recording: Recording, extractors: Mapping[str, Extractor],
               transcripts: str | os.PathLike | None, words: str | os.PathLike | None,
               cache_dir: Path | None, count: int, summary: ExtractSummary):
    """One recording's utterances, words, duration and whole-recording frames per
    modality, from the cache where it holds them."""
    video = None
    audio = recording.audio
    duration = 0.0
    for path in (recording.video, recording.audio):
        if path is not None:
            info = probe(path)
            duration = max(duration, info.duration)
            if path == recording.video and info.video:
                video = path
            if path == recording.video and info.audio and audio is None:
                audio = path
    transcript = _transcript(transcripts, recording, count)
    if transcript is None:
        summary.no_transcript.append(recording.name)
        utterances = [Utterance(recording.name, 0.0, duration, "")]
    else:
        utterances = read_transcript(transcript, recording.name)
    word_list = None
    if words is not None:
        path = Path(words) / f"{recording.name}.csv"
        if not path.is_file():
            raise MediaError("no per-word timestamps for the recording", file=path,
                             expected="a CSV start,end,word named after the recording",
                             found="no such file", fix="Add it, or leave words out")
        word_list = read_words(path)
    key = json.dumps({m: _cache_key(e) for m, e in extractors.items()}
                     | {"files": [_stamp(p) for p in (recording.video, recording.audio)
                                  if p is not None]}, sort_keys=True)
    cached = _load_cache(cache_dir, recording.name, key, extractors)
    if cached is not None:
        return utterances, word_list, duration, cached, "cached"
    segment = Segment(recording.name, 0.0, duration, video=video, audio=audio)
    frames = {m: check_frames(e(segment), e, recording.name) for m, e in extractors.items()}
    _save_cache(cache_dir, recording.name, key, frames)
    return utterances, word_list, duration, frames, "extracted"


def _transcript(transcripts: str | os.PathLike | None, recording: Recording, count: int
                ) -> Path | None:
    if transcripts is not None and Path(transcripts).is_file():
        if count != 1:
            raise DatasetError("one transcript for several recordings", file=transcripts,
                               expected="a folder of <recording>.srt|.vtt|.csv",
                               found=f"a file, with {count} recordings",
                               fix="Put each recording's transcript in a folder, named "
                               "after the recording")
        return Path(transcripts)
    return _find(None if transcripts is None else Path(transcripts), recording,
                 TRANSCRIPT_SUFFIXES)


def _cache_key(extractor: Extractor) -> str:
    kind = type(extractor)
    return (repr(extractor) if dataclasses.is_dataclass(extractor)
            else f"{kind.__module__}.{kind.__qualname__}")


def _stamp(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def _load_cache(cache_dir: Path | None, name: str, key: str,
                extractors: Mapping[str, Extractor]) -> dict[str, Frames] | None:
    path = None if cache_dir is None else cache_dir / f"{name}.npz"
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            return {m: Frames(saved[f"{m}.features"], saved[f"{m}.times"],
                              saved[f"{m}.valid"] if f"{m}.valid" in saved else None)
                    for m in extractors}
    except (OSError, ValueError, KeyError):  # a cache file cut short: extract again
        return None


def _save_cache(cache_dir: Path | None, name: str, key: str, frames: Mapping[str, Frames]
                ) -> None:
    if cache_dir is None:
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"key": np.array(key)}
    for m, f in frames.items():
        arrays[f"{m}.features"], arrays[f"{m}.times"] = f.features, f.times
        if f.valid is not None:
            arrays[f"{m}.valid"] = f.valid
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".npz", dir=cache_dir)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, cache_dir / f"{name}.npz")  # a kill leaves no half file
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _align(recording: str, utterance: Utterance, frames: Mapping[str, Frames],
           extractors: Mapping[str, Extractor], word_list: list[Word] | None,
           collapse: str, summary: ExtractSummary) -> dict:
    """One sample: per modality its ``(T, d)`` steps within the utterance, its tokens."""
    start, end = utterance.start, utterance.end
    inside = None if word_list is None else [
        w for w in word_list if start <= (w.start + w.end) / 2 < end]
    sample = {"id": utterance.id, "recording": recording, "start": start, "end": end,
              "text": utterance.text, "features": {}, "present": {}}
    for m, f in frames.items():
        cut = f.select((f.times >= start) & (f.times < end))
        if len(cut.times) == 0:
            steps = cut.features
        elif collapse == "words" and not inside:
            steps = cut.features.mean(0, keepdims=True)  # no word: one step, the mean
        elif collapse == "words":
            steps = np.zeros((len(inside), extractors[m].dim), np.float32)
            for i, w in enumerate(inside):
                rows = (cut.times >= w.start) & (cut.times < max(w.end, w.start + 1e-9))
                if rows.any():
                    steps[i] = cut.features[rows].mean(0)
                else:
                    summary.empty_words += 1
        else:
            steps = cut.features
        sample["present"][m] = float(len(cut.times) > 0)
        if len(cut.times) == 0:
            summary.missing.setdefault(m, []).append(utterance.id)
            steps = np.zeros((1, extractors[m].dim), np.float32)
        sample["features"][m] = steps
    if inside:
        tokens = [w.word.lower() for w in inside]  # one token per word: aligned with the steps
        sample["text"] = sample["text"] or " ".join(w.word for w in inside)
    else:
        tokens = None if recording in summary.no_transcript else tokenize(utterance.text)
    if tokens is not None and not tokens:
        summary.without_text.append(utterance.id)
    sample["tokens"] = tokens
    return sample


def _read_manifest(path: Path) -> dict[str, tuple[float, str | None]]:
    """The manifest as id → (label, split or None), checked."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            header, *body = list(csv.reader(file)) or [[]]
        header = [name.strip() for name in header]
        rows = [dict(zip(header, row, strict=False)) for row in body if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError("cannot read the manifest", file=path, expected="a UTF-8 CSV",
                           found=f"{type(error).__name__}: {error}",
                           fix="Write the manifest as a CSV of id,label[,split]") from None
    if not {"id", "label"} <= set(header) or not set(header) <= {"id", "label", "split"}:
        raise DatasetError("wrong manifest columns", file=path,
                           expected="the columns id, label and optionally split",
                           found=f"header {header}", fix="Rename or remove the columns")
    table = {}
    for line, row in enumerate(rows, start=2):
        try:
            label = float(row["label"])
        except ValueError:
            raise DatasetError("label is not a number", file=path, field=f"label, line {line}",
                               expected="a float", found=repr(row["label"]),
                               fix="Write one number per cell") from None
        split = row.get("split", "").strip() or None
        if split is not None and split not in SPLITS:
            raise DatasetError("unknown split", file=path, field=f"split, line {line}",
                               expected=f"one of {list(SPLITS)}", found=repr(split),
                               fix="Name the split train, valid or test")
        table[row["id"].strip()] = (label, split)
    return table


def _label(samples: list[dict], manifest: Path | None,
           table: dict[str, tuple[float, str | None]] | None, summary: ExtractSummary) -> None:
    """Set each sample's ``label`` and ``split`` from the manifest's ``table`` (drops the
    samples without a row); without a manifest, every sample is an unlabelled ``test`` row."""
    if table is None:
        for sample in samples:
            sample["label"], sample["split"] = None, "test"
        return
    path = manifest
    used = set()
    kept = []
    for sample in samples:
        key = sample["id"] if sample["id"] in table else sample["recording"]
        if key not in table:
            summary.unlabelled.append(sample["id"])
            continue
        used.add(key)
        sample["label"], sample["split"] = table[key]
        kept.append(sample)
    summary.unmatched = sorted(set(table) - used)
    samples[:] = kept
    if not samples:
        raise DatasetError("no utterance in the manifest", file=path,
                           expected="ids of utterances or recordings",
                           found=f"ids such as {_first(sorted(table))}; utterances such as "
                           f"{_first(summary.unlabelled)}",
                           fix="Use the utterance ids (see the summary) or recording names")
    if any(s["split"] is None for s in samples):
        _assign_splits(samples, path)


def _assign_splits(samples: list[dict], path: Path) -> None:
    """Whole recordings to train/valid/test in name order, about 70/15/15."""
    names = sorted({s["recording"] for s in samples if s["split"] is None})
    if len(names) < 3:
        raise DatasetError("too few recordings to split", file=path, field="split",
                           expected="a split column, or three recordings or more",
                           found=f"{len(names)} recording(s) without a split",
                           fix="Add a split column (train, valid, test)")
    valid = max(1, round(_SPLIT_SHARES[1] * len(names)))
    test = max(1, round(_SPLIT_SHARES[2] * len(names)))
    order = {name: "train" if i < len(names) - valid - test else
             "valid" if i < len(names) - test else "test" for i, name in enumerate(names)}
    for sample in samples:
        sample["split"] = sample["split"] or order[sample["recording"]]


def _vocabulary(samples: list[dict], path: str | os.PathLike | None) -> list[str]:
    if path is None:
        train = [s for s in samples if s["split"] == "train"] or samples
        return build_vocabulary([s["tokens"] or [] for s in train])
    try:
        words = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        words = error
    if not (isinstance(words, list) and len(words) > 1 and words[:2] == [PAD, UNK]):
        raise DatasetError("malformed vocabulary", file=path,
                           expected=f"a JSON list of words starting '{PAD}', '{UNK}'",
                           found=str(words)[:80], fix="Give the vocabulary.json of the "
                           "folder the model was trained on")
    return words


def _write(samples: list[dict], out: Path, extractors: Mapping[str, Extractor],
           with_text: bool, vocabulary: str | os.PathLike | None,
           summary: ExtractSummary) -> None:
    words = _vocabulary(samples, vocabulary) if with_text else None
    index = {word: i for i, word in enumerate(words or [])}
    labelled = samples[0]["label"] is not None
    datasets = {}
    for split in SPLITS:
        rows = [s for s in samples if s["split"] == split]
        summary.splits[split] = len(rows)
        if not rows:
            continue
        features = {m: [s["features"][m] for s in rows] for m in extractors}
        if with_text:
            features["text"] = [np.array([index.get(t, 1) for t in s["tokens"] or []] or [1],
                                         dtype=np.int64) for s in rows]
        extras = {f"{m}_present": np.array([s["present"][m] for s in rows], np.float32)
                  for m in extractors}
        extras["start_seconds"] = np.array([s["start"] for s in rows], np.float32)
        extras["end_seconds"] = np.array([s["end"] for s in rows], np.float32)
        labels = np.array([s["label"] if labelled else 0.0 for s in rows], np.float32)
        datasets[split] = dataset_from_arrays(
            dict(sorted(features.items())), labels, ids=[s["id"] for s in rows],
            raw_text=[s["text"] for s in rows], extras=extras, vocabulary=words,
            source=str(out), split=split)
    summary.splits = {k: v for k, v in summary.splits.items() if v}
    if labelled:
        empty = [split for split in SPLITS if split not in datasets]
        if empty:
            raise DatasetError("empty split", split=empty[0], expected="utterances in "
                               f"each of {list(SPLITS)}", found=f"splits {summary.splits}",
                               fix="Give the manifest's split column every split")
        write_arrays(datasets, out)
    else:
        _write_unlabelled(datasets["test"], out)


def _write_unlabelled(dataset, out: Path) -> None:
    """The arrays of one unlabelled split, for prediction: ``labels.csv`` holds ``id``,
    ``split`` (``test``) and ``raw_text`` only.

    The arrays are those :func:`~dhmd_graph.data.write_arrays` writes (it writes them; the
    label column is then dropped from its ``labels.csv``).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staged = work / "folder"
        write_arrays({split: dataset for split in SPLITS}, staged)  # the one writer
        keep = len(dataset)  # the first copy: rows of the train block
        with (staged / LABELS_FILE).open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))[:keep]
        for array in staged.glob("*.npy"):
            np.save(array, np.load(array, allow_pickle=False)[:keep], allow_pickle=False)
        with (staged / LABELS_FILE).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["id", "split", "raw_text"])
            writer.writerows([row["id"], "test", row["raw_text"]] for row in rows)
        if out.exists():
            out.rmdir()
        os.replace(staged, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
