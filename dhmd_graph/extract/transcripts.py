r"""Transcripts with timestamps, which define the utterances, and per-word timestamps.

Three transcript formats, told apart by the suffix:

* SubRip ``.srt``: numbered cues ``00:00:01,000 --> 00:00:04,200`` and their text;
* WebVTT ``.vtt``: ``WEBVTT`` then cues ``00:01.000 --> 00:04.200`` (hours optional, cue
  settings and identifiers allowed; ``NOTE``, ``STYLE`` and ``REGION`` blocks skipped);
* ``.csv`` with the header ``id,start,end,text`` (seconds).

Markup inside cue text (``<v Speaker>``, ``<i>``, ``{\an8}``) is dropped. SRT and VTT cues
become the utterances ``<recording>_1``, ``<recording>_2``, ... in the file's order; a
CSV's ``id`` is the utterance id as written.

Per-word timestamps (for word-level alignment) are a ``.csv`` with the header
``start,end,word`` (seconds), one row per word, e.g. from a forced aligner or a speech
recogniser that gives word times.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from dhmd_graph.errors import DatasetError

__all__ = ["TRANSCRIPT_SUFFIXES", "Utterance", "Word", "read_transcript", "read_words",
           "tokenize"]

TRANSCRIPT_SUFFIXES = (".srt", ".vtt", ".csv")
_TIME = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})\s*$")
_ARROW = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)(?:\s+.*)?$")
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_TOKEN = re.compile(r"[\w']+|[^\w\s]")


@dataclass(frozen=True)
class Utterance:
    """One utterance: its id, its interval ``[start, end)`` in seconds and its text."""

    id: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Word:
    """One word with its interval ``[start, end)`` in seconds."""

    start: float
    end: float
    word: str


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: ``"Don't go!"`` → ``["don't", "go", "!"]``."""
    return _TOKEN.findall(text.lower())


def read_transcript(path: str | Path, recording: str | None = None) -> list[Utterance]:
    r"""The utterances of one recording's transcript (``.srt``, ``.vtt`` or ``.csv``).

    Args:
        path (str or Path): The transcript.
        recording (str, optional): The recording's name, the prefix of SRT/VTT utterance
            ids. (default: the file name without its suffix)

    Returns:
        list[Utterance]: In the file's order.

    Raises:
        DatasetError: An unknown suffix, an unreadable file, a malformed time, an interval
            with ``end <= start``, or repeated ids.
    """
    path = Path(path)
    recording = recording or path.stem
    suffix = path.suffix.lower()
    if suffix not in TRANSCRIPT_SUFFIXES:
        raise DatasetError("unknown transcript format", file=path,
                           expected=f"a file ending in {' or '.join(TRANSCRIPT_SUFFIXES)}",
                           found=repr(path.suffix), fix="Convert the transcript to SRT, "
                           "WebVTT or a CSV of id,start,end,text")
    text = _read_text(path)
    if suffix == ".csv":
        rows = _csv_rows(path, text, ("id", "start", "end", "text"))
        utterances = [Utterance(row["id"], _seconds(row["start"], path, line, "start"),
                                _seconds(row["end"], path, line, "end"), row["text"].strip())
                      for line, row in rows]
    else:
        utterances = [Utterance(f"{recording}_{i}", start, end, words)
                      for i, (start, end, words) in enumerate(_cues(path, text), start=1)]
    seen: dict[str, int] = {}
    for i, utterance in enumerate(utterances):
        if utterance.end <= utterance.start:
            raise DatasetError("empty interval", file=path, field=f"utterance {utterance.id}",
                               expected="end after start",
                               found=f"start {utterance.start}, end {utterance.end}",
                               fix="Correct the cue's times")
        if seen.setdefault(utterance.id, i) != i:
            raise DatasetError("repeated utterance id", file=path, field="id",
                               expected="each id once", found=repr(utterance.id),
                               fix="Give every utterance its own id")
    return utterances


def read_words(path: str | Path) -> list[Word]:
    r"""Per-word timestamps from a CSV with the header ``start,end,word``.

    Returns:
        list[Word]: Sorted by start time.

    Raises:
        DatasetError: A missing column, a malformed time or ``end < start``.
    """
    path = Path(path)
    words = []
    for line, row in _csv_rows(path, _read_text(path), ("start", "end", "word")):
        word = Word(_seconds(row["start"], path, line, "start"),
                    _seconds(row["end"], path, line, "end"), row["word"].strip())
        if word.end < word.start:
            raise DatasetError("negative word duration", file=path, field=f"line {line}",
                               expected="end at or after start",
                               found=f"start {word.start}, end {word.end}",
                               fix="Correct the word's times")
        words.append(word)
    return sorted(words, key=lambda w: (w.start, w.end))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError("cannot read the file", file=path, expected="a UTF-8 text file",
                           found=f"{type(error).__name__}: {error}",
                           fix="Save the file as UTF-8") from None


def _csv_rows(path: Path, text: str, needed: tuple[str, ...]) -> list[tuple[int, dict]]:
    rows = list(csv.reader(text.splitlines()))
    header = [name.strip() for name in rows[0]] if rows else []
    if not set(needed) <= set(header):
        raise DatasetError("missing columns", file=path,
                           expected=f"a header with the columns {','.join(needed)}",
                           found=f"header {header}", fix="Add or rename the header row")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DatasetError("wrong number of cells", file=path, field=f"line {line}",
                               expected=f"{len(header)} cells", found=f"{len(row)} cells",
                               fix="Quote cells that hold commas")
        out.append((line, dict(zip(header, row, strict=True))))
    return out


def _seconds(text: str, path: Path, line: int | str, field: str) -> float:
    """Seconds from ``12.5``, ``00:00:12,500`` or ``00:12.500``."""
    match = _TIME.match(text)
    try:
        if match:
            hours, minutes, seconds, fraction = match.groups()
            value = (int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
                     + int(fraction.ljust(3, "0")) / 1000)
        else:
            value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise DatasetError("malformed time", file=path, field=f"{field}, line {line}",
                           expected="seconds (12.5) or a time stamp (00:00:12,500)",
                           found=repr(text), fix="Write the time as seconds")
    return value


def _cues(path: Path, text: str) -> list[tuple[float, float, str]]:
    """``(start, end, text)`` of each SRT/VTT cue."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    if path.suffix.lower() == ".vtt":
        if not blocks or not blocks[0].startswith("WEBVTT"):
            raise DatasetError("not a WebVTT file", file=path, field="line 1",
                               expected="'WEBVTT'", found=repr(blocks[0][:40] if blocks else ""),
                               fix="Start the file with the line WEBVTT")
        blocks = [b for b in blocks[1:] if not b.startswith(("NOTE", "STYLE", "REGION"))]
    cues = []
    for block in blocks:
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        match = _ARROW.match(lines[timing]) if timing is not None else None
        if match is None:
            raise DatasetError("malformed cue", file=path, field=f"cue {len(cues) + 1}",
                               expected="a line 'START --> END'", found=repr(block[:60]),
                               fix="Separate cues by a blank line, each with its times")
        where = f"cue {len(cues) + 1}"
        words = " ".join(_MARKUP.sub("", line).strip() for line in lines[timing + 1:])
        cues.append((_seconds(match[1], path, where, "start"),
                     _seconds(match[2], path, where, "end"), " ".join(words.split())))
    return cues
