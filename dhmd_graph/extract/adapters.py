r"""Adapters for what the field's standard tools write, as extractors.

* :class:`OpenFaceCSV` reads OpenFace 2 ``FeatureExtraction`` CSVs: action-unit
  intensities (``AU01_r`` ...) and presences (``AU01_c`` ...), gaze and head pose, timed by
  its ``timestamp`` column; a frame is valid where ``success`` is 1 and ``confidence`` is at
  least ``min_confidence``. OpenFace writes its header with a space after each comma
  (``frame, face_id, timestamp, confidence, success, gaze_0_x, ...``); names are read
  with the spaces stripped.
* :class:`OpenSmileCSV` reads openSMILE's frame-level (LLD) CSVs: ``SMILExtract``'s
  ``-lldcsvoutput`` (``name;frameTime;Loudness_sma3;...``, ``;`` between cells) or the
  ``opensmile`` Python package's frames saved with ``DataFrame.to_csv``
  (``file,start,end,Loudness_sma3,...``, times in seconds or as ``0 days 00:00:01.230000``).
  Every numeric column other than the names and times is a feature, in the file's order.

Each reads ``<folder>/<recording>.csv`` for a recording (OpenFace names its output after
the video), so that a folder of the tool's outputs stands beside the recordings.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dhmd_graph.errors import ConfigError
from dhmd_graph.extract.media import MediaError, Segment
from dhmd_graph.extract.protocol import Frames

__all__ = ["OPENFACE_GROUPS", "OpenFaceCSV", "OpenSmileCSV", "read_openface", "read_opensmile"]

_AUS = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23",
        "25", "26", "45"]
OPENFACE_GROUPS = {
    "au_r": [f"AU{au}_r" for au in _AUS],
    "au_c": [f"AU{au}_c" for au in _AUS[:16] + ["28", "45"]],
    "gaze": [f"gaze_{eye}_{axis}" for eye in (0, 1) for axis in "xyz"]
    + ["gaze_angle_x", "gaze_angle_y"],
    "pose": [f"pose_{kind}{axis}" for kind in "TR" for axis in "xyz"],
}
"""The columns of each OpenFace 2 group, in the order OpenFace writes them: 17 action-unit
intensities (0 to 5), 18 presences (0 or 1), 8 gaze values (two eyes' unit vectors and
two angles in radians), 6 head-pose values (translation in mm, rotation in radians)."""

_DELTA = re.compile(r"^(?:(\d+) days? )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header (names stripped) and rows of a ``,`` or ``;`` separated file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise MediaError("cannot read the tool's output", file=path, expected="a CSV file",
                         found=f"{type(error).__name__}: {error}",
                         fix="Run the tool on this recording again") from None
    lines = text.splitlines()
    if not lines:
        raise MediaError("empty tool output", file=path, expected="a header and frames",
                         found="an empty file", fix="Run the tool on this recording again")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
    header = [name.strip().strip("'\"") for name in rows[0]]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise MediaError("wrong number of cells", file=path, field=f"line {line}",
                             expected=f"{len(header)} cells", found=f"{len(row)} cells",
                             fix="Run the tool on this recording again")
    return header, rows[1:]


def _numbers(path: Path, header: list[str], rows: list[list[str]], columns: list[str]
             ) -> np.ndarray:
    """``(R, len(columns))`` float64 of the named columns."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise MediaError("missing columns", file=path, expected=f"the columns {missing[:4]} "
                         f"{'...' if len(missing) > 4 else ''}",
                         found=f"{len(header)} columns from {header[:3]}",
                         fix="Run the tool with the outputs these features need, or choose "
                         "other groups")
    index = [header.index(c) for c in columns]
    try:
        return np.array([[float(row[i]) for i in index] for row in rows], dtype=np.float64
                        ).reshape(len(rows), len(columns))
    except ValueError as error:
        raise MediaError("a cell is not a number", file=path, expected="numbers in the "
                         "feature columns", found=str(error), fix="Run the tool again") from None


def _seconds(path: Path, cells: list[str]) -> np.ndarray:
    """Seconds from numbers or pandas time deltas (``0 days 00:00:01.230000``)."""
    out = np.empty(len(cells))
    for i, cell in enumerate(cells):
        match = _DELTA.match(cell.strip())
        try:
            out[i] = (float(cell) if match is None else int(match[1] or 0) * 86400
                      + int(match[2]) * 3600 + int(match[3]) * 60 + float(match[4]))
        except ValueError:
            raise MediaError("malformed time", file=path, field=f"line {i + 2}",
                             expected="seconds or a time delta", found=repr(cell),
                             fix="Write the frame times in seconds") from None
    return out


def read_openface(path: str | Path, groups: tuple[str, ...] = tuple(OPENFACE_GROUPS),
                  min_confidence: float = 0.5) -> tuple[Frames, list[str]]:
    r"""One OpenFace 2 ``FeatureExtraction`` CSV as frames.

    Where the file tracks several faces (a ``face_id`` column with more than one value per
    frame), the most confident face of each frame is kept.

    Args:
        path (str or Path): The CSV.
        groups (tuple[str, ...], optional): Keys of :data:`OPENFACE_GROUPS`.
            (default: all: ``au_r``, ``au_c``, ``gaze``, ``pose``)
        min_confidence (float, optional): Frames below it are invalid. (default: ``0.5``)

    Returns:
        tuple[Frames, list[str]]: ``(T, d)`` features (zeros where invalid), ``timestamp``
        times, ``success``/``confidence`` validity; and the ``d`` column names.

    Raises:
        MediaError: An unreadable file or a missing column, naming the file.
    """
    path = Path(path)
    names = [name for group in groups for name in OPENFACE_GROUPS[group]]
    header, rows = _table(path)
    meta = _numbers(path, header, rows, ["timestamp", "confidence", "success"])  # (R, 3)
    features = _numbers(path, header, rows, names)  # (R, d)
    if "frame" in header and "face_id" in header:
        frame = _numbers(path, header, rows, ["frame"])[:, 0]
        best: dict[float, int] = {}
        for i, number in enumerate(frame):
            if number not in best or meta[i, 1] > meta[best[number], 1]:
                best[number] = i
        keep = np.array(sorted(best.values(), key=lambda i: meta[i, 0]), dtype=np.int64)
        meta, features = meta[keep], features[keep]
    valid = (meta[:, 2] > 0.5) & (meta[:, 1] >= min_confidence)
    features[~valid] = 0.0
    return Frames(features.astype(np.float32), meta[:, 0], valid), names


def read_opensmile(path: str | Path) -> tuple[Frames, list[str]]:
    r"""One openSMILE frame-level CSV as frames (see the module's documentation).

    Returns:
        tuple[Frames, list[str]]: ``(T, d)`` features timed by ``frameTime`` (or
        ``start``), and the ``d`` column names.

    Raises:
        MediaError: An unreadable file, no time column, or a cell that is not a number.
    """
    path = Path(path)
    header, rows = _table(path)
    time = next((name for name in ("frameTime", "start") if name in header), None)
    if time is None:
        raise MediaError("no time column", file=path, expected="frame-level output with a "
                         "'frameTime' (SMILExtract -lldcsvoutput) or 'start' column",
                         found=f"header {header[:4]}", fix="Write the low-level descriptors "
                         "(LLDs), not the functionals, for frame-level features")
    names = [n for n in header if n not in ("name", "file", "frameTime", "start", "end")]
    times = _seconds(path, [row[header.index(time)] for row in rows])
    features = np.nan_to_num(_numbers(path, header, rows, names))
    order = np.argsort(times, kind="stable")
    return Frames(features[order].astype(np.float32), times[order]), names


def _output(folder: Path, recording: str, tool: str) -> Path:
    path = folder / f"{recording}.csv"
    if not path.is_file():
        raise MediaError(f"no {tool} output for the recording", file=path,
                         expected=f"{tool}'s CSV named after the recording",
                         found=f"no such file in {folder}",
                         fix=f"Run {tool} on '{recording}' and save its CSV there")
    return path


@dataclass
class OpenFaceCSV:
    r"""Action units, gaze and pose from OpenFace 2 CSVs in ``folder`` (:func:`read_openface`).

    Args:
        folder (str or Path): Holds ``<recording>.csv`` per recording.
        groups (tuple[str, ...], optional): Keys of :data:`OPENFACE_GROUPS`.
            (default: all four, 49 values)
        min_confidence (float, optional): Frames below it are invalid. (default: ``0.5``)
    """

    folder: Path
    groups: tuple[str, ...] = tuple(OPENFACE_GROUPS)
    min_confidence: float = 0.5
    name = "openface"
    missing = "frames OpenFace did not track"

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        unknown = [g for g in self.groups if g not in OPENFACE_GROUPS]
        if unknown:
            raise ConfigError(f"OpenFaceCSV: unknown groups {unknown}; choose among "
                              f"{list(OPENFACE_GROUPS)}")

    @property
    def names(self) -> list[str]:
        return [name for group in self.groups for name in OPENFACE_GROUPS[group]]

    @property
    def dim(self) -> int:
        return len(self.names)

    def __call__(self, segment: Segment) -> Frames:
        frames, _ = read_openface(_output(self.folder, segment.recording, "OpenFace"),
                                  self.groups, self.min_confidence)
        return frames.select((frames.times >= segment.start) & (frames.times < segment.end))


@dataclass
class OpenSmileCSV:
    r"""Frame-level openSMILE features (e.g. eGeMAPS LLDs) from CSVs in ``folder``
    (:func:`read_opensmile`). The columns are those of the first CSV in the folder;
    every file must have them.

    Args:
        folder (str or Path): Holds ``<recording>.csv`` per recording.
    """

    folder: Path
    name = "opensmile"
    names: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        files = sorted(self.folder.glob("*.csv"))
        if not files:
            raise MediaError("no openSMILE output", file=self.folder,
                             expected="one <recording>.csv per recording", found="no .csv file",
                             fix="Point to the folder of openSMILE's CSVs")
        self.names = read_opensmile(files[0])[1]

    @property
    def dim(self) -> int:
        return len(self.names)

    def __call__(self, segment: Segment) -> Frames:
        path = _output(self.folder, segment.recording, "openSMILE")
        frames, names = read_opensmile(path)
        if names != self.names:
            raise MediaError("openSMILE columns differ between files", file=path,
                             expected=f"the {len(self.names)} columns of the folder's first "
                             "CSV", found=f"{len(names)} columns", fix="Extract every "
                             "recording with the same openSMILE configuration")
        return frames.select((frames.times >= segment.start) & (frames.times < segment.end))
