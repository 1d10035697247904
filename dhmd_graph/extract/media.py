r"""Decoding recordings offline, and the :class:`Segment` that extractors read.

Audio and video are decoded with PyAV, whose wheel bundles FFmpeg's libraries: no system
``ffmpeg`` is needed and nothing is downloaded. Any container and codec FFmpeg reads
works (``.mp4``, ``.mkv``, ``.webm``, ``.avi``, ``.mov``, ``.wav``, ``.mp3``, ``.flac``,
``.m4a``, ``.ogg``, ...). A file that cannot be read raises :class:`MediaError`, which
names the file.

Times are in seconds from the start of the recording. A video frame's time is its
presentation time; frames are kept in ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dhmd_graph.errors import DatasetError

__all__ = ["AUDIO_SUFFIXES", "VIDEO_SUFFIXES", "MediaError", "MediaInfo", "Segment", "probe",
           "read_audio", "read_frames"]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac", ".wma")


class MediaError(DatasetError):
    """A recording (or a tool's output for it) that cannot be read: the message names it."""


def _av():
    try:
        import av
    except ImportError as error:  # the extra is not installed
        raise ImportError("Decoding recordings needs PyAV: pip install 'dhmd_graph[extract]'"
                          ) from error
    return av


def _unreadable(path: Path, error: Exception) -> MediaError:
    return MediaError("cannot decode the recording", file=path,
                      expected="a media file FFmpeg reads (video or audio)",
                      found=f"{type(error).__name__}: {error}",
                      fix="Check that the file plays; re-encode it (e.g. to .mp4 or .wav) "
                      "or remove it from the folder")


def _open(path: Path):
    av = _av()
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from None


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds: its duration in seconds and whether it has video and sound."""

    duration: float
    video: bool
    audio: bool


_NO_STREAM = {"audio": "Give the sound as an audio file of the same name",
              "video": "Give a video file, or leave the vision modality out"}


def _first(container, path: Path, kind: str):
    """The container's first ``kind`` (``audio`` or ``video``) stream."""
    streams = getattr(container.streams, kind)
    if not streams:
        raise MediaError(f"no {kind} stream", file=path, expected=f"a file with {kind}",
                         found=f"streams {[s.type for s in container.streams]}",
                         fix=_NO_STREAM[kind])
    return streams[0]


def probe(path: str | Path) -> MediaInfo:
    """The duration (the container's, else its longest stream's) and streams of a file.

    Raises:
        MediaError: The file cannot be opened, or holds neither video nor sound, or gives
            no duration.
    """
    path = Path(path)
    with _open(path) as container:
        video, audio = bool(container.streams.video), bool(container.streams.audio)
        spans = [float(s.duration * s.time_base) for s in container.streams
                 if s.duration is not None and s.time_base is not None]
        if container.duration is not None:
            spans.append(container.duration / 1_000_000)  # av.time_base: microseconds
    if not (video or audio):
        raise MediaError("no video or sound", file=path, expected="a video or audio stream",
                         found="neither", fix="Remove the file from the folder")
    if not spans:
        raise MediaError("no duration", file=path, expected="a container that states its length",
                         found="none in the container or its streams",
                         fix="Re-encode the file (e.g. ffmpeg -i IN -c copy OUT.mkv)")
    return MediaInfo(max(spans), video, audio)


def read_audio(path: str | Path, sample_rate: int = 16_000, start: float = 0.0,
               end: float | None = None) -> np.ndarray:
    r"""The first audio stream of a file, mono, resampled, as float samples in ``[-1, 1]``.

    Args:
        path (str or Path): A video or audio file.
        sample_rate (int, optional): The rate to resample to. (default: ``16000``)
        start (float, optional): First second kept. (default: ``0.0``)
        end (float, optional): Seconds kept up to (exclusive); :obj:`None` for the end.
            (default: :obj:`None`)

    Returns:
        np.ndarray: ``(S,)`` float32 samples, sample ``i`` at ``start + i / sample_rate``.

    Raises:
        MediaError: The file cannot be decoded or has no audio stream.
    """
    path = Path(path)
    av = _av()
    chunks, offset = [], None
    with _open(path) as container:
        stream = _first(container, path, "audio")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                if offset is None:  # a stream that starts late (or early) keeps its times
                    offset = float(frame.time or 0.0)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as error:
            raise _unreadable(path, error) from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)  # (S,)
    shift = int(round((offset or 0.0) * sample_rate))
    samples = np.pad(samples, (shift, 0)) if shift > 0 else samples[-shift:]
    first = int(round(start * sample_rate))
    last = None if end is None else int(round(end * sample_rate))
    return np.ascontiguousarray(samples[first:last], dtype=np.float32)


def read_frames(path: str | Path, fps: float | None = None, start: float = 0.0,
                end: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    r"""The frames of the first video stream, decoded one at a time.

    Args:
        path (str or Path): A video file.
        fps (float, optional): Keep at most this many frames per second (the first frame
            at or after each tick of ``1 / fps``); :obj:`None` keeps every frame.
            (default: :obj:`None`)
        start (float, optional): First second kept. (default: ``0.0``)
        end (float, optional): Seconds kept up to (exclusive). (default: :obj:`None`)

    Yields:
        tuple[float, np.ndarray]: A frame's time in seconds and its ``(H, W, 3)`` uint8
        BGR pixels.

    Raises:
        MediaError: The file cannot be decoded or has no video stream.
    """
    path = Path(path)
    av = _av()
    with _open(path) as container:
        stream = _first(container, path, "video")
        stream.thread_type = "AUTO"
        tick = start
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = (float(frame.time) if frame.time is not None
                        else index / float(stream.average_rate or 25))
                if time < start or (fps is not None and time < tick - 1e-6):
                    continue
                if end is not None and time >= end:
                    break
                if fps is not None:
                    tick = max(tick + 1.0 / fps, time)  # the next frame kept is a tick on
                yield time, frame.to_ndarray(format="bgr24")
        except (av.error.FFmpegError, ValueError) as error:
            raise _unreadable(path, error) from None


@dataclass
class Segment:
    r"""A stretch ``[start, end)`` of one recording, as an extractor sees it.

    The pipeline calls each extractor once per recording with a segment spanning the whole
    recording, and cuts the returned frames by their timestamps; an extractor must work on
    any segment. Decoding is lazy: :meth:`samples` decodes the audio once per rate,
    :meth:`frames` streams the video.

    Args:
        recording (str): The recording's name (its file name without the suffix); adapters
            find a tool's output by it.
        start (float): First second.
        end (float): Last second (exclusive).
        video (Path, optional): The video file, if any. (default: :obj:`None`)
        audio (Path, optional): The file to take the sound from: an audio file, or the
            video. (default: :obj:`None`)
    """

    recording: str
    start: float
    end: float
    video: Path | None = None
    audio: Path | None = None
    _audio: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def samples(self, sample_rate: int) -> np.ndarray:
        """``(S,)`` float32 mono samples of the segment at ``sample_rate``
        (:func:`read_audio`); empty when the recording has no sound."""
        if self.audio is None:
            return np.zeros(0, np.float32)
        if sample_rate not in self._audio:
            self._audio[sample_rate] = read_audio(self.audio, sample_rate, self.start, self.end)
        return self._audio[sample_rate]

    def frames(self, fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """The segment's video frames as ``(time, (H, W, 3) BGR uint8)`` (:func:`read_frames`);
        none when the recording has no video."""
        if self.video is None:
            return iter(())
        return read_frames(self.video, fps, self.start, self.end)
