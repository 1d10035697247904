r"""The one protocol every extractor follows, and the frames it returns.

An extractor is any object with a ``name``, a ``dim`` and a ``__call__(segment)`` that
returns the segment's frames: ``(T, dim)`` features with ``(T,)`` timestamps in seconds
(from the start of the recording) and, optionally, a ``(T,)`` mask of the frames that
hold a measurement (a face found, a voiced or audible frame, a frame the tool tracked)::

    class Loudness:
        name, dim = "loudness", 1
        missing = "silent frames"          # optional: what an invalid frame means

        def __call__(self, segment):
            samples = segment.samples(16_000)                    # (S,)
            frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
            times = segment.start + (np.arange(len(frames)) + 0.5) * 0.01
            return Frames(np.log1p(np.abs(frames).mean(1, keepdims=True)), times)

Register it with :func:`~dhmd_graph.extract.register_extractor` to name it on the command
line, or pass the object itself to :func:`~dhmd_graph.extract.extract`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from dhmd_graph.errors import DatasetError
from dhmd_graph.extract.media import Segment

__all__ = ["Extractor", "Frames", "check_frames"]


class Frames(NamedTuple):
    r"""What an extractor returns for a segment.

    Attributes:
        features (np.ndarray): ``(T, d)`` float32 features, one row per frame.
        times (np.ndarray): ``(T,)`` float64 seconds of the frames, non-decreasing.
        valid (np.ndarray, optional): ``(T,)`` bool, :obj:`True` where the frame holds a
            measurement; :obj:`None` when all do. Invalid frames stay in the sequence
            (with the extractor's fill, e.g. zeros) and are counted in the summary.
    """

    features: np.ndarray
    times: np.ndarray
    valid: np.ndarray | None = None

    def select(self, rows: np.ndarray | slice) -> Frames:
        """The frames at ``rows``."""
        return Frames(self.features[rows], self.times[rows],
                      None if self.valid is None else self.valid[rows])

    @classmethod
    def empty(cls, dim: int) -> Frames:
        """No frames, ``(0, dim)``."""
        return cls(np.zeros((0, dim), np.float32), np.zeros(0), None)


@runtime_checkable
class Extractor(Protocol):
    """Per-frame features of a :class:`Segment`: ``name``, ``dim`` and a call."""

    name: str
    dim: int

    def __call__(self, segment: Segment) -> Frames | tuple[np.ndarray, np.ndarray]:
        ...


def check_frames(result: object, extractor: Extractor, recording: str) -> Frames:
    """``result`` as :class:`Frames` (a plain ``(features, times)`` pair is accepted), with
    its shapes, dtypes and finiteness checked.

    Raises:
        DatasetError: Naming the extractor and the recording.
    """
    def fail(found: str) -> DatasetError:
        return DatasetError(f"extractor '{extractor.name}' returned malformed frames",
                            field=f"recording {recording}",
                            expected=f"(T, {extractor.dim}) finite float features, (T,) "
                            "non-decreasing times and optionally a (T,) mask",
                            found=found, fix="Fix the extractor's __call__")

    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise fail(f"a {type(result).__name__}")
    features, times, *valid = result
    features = np.asarray(features, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64)
    mask = np.asarray(valid[0], dtype=bool) if valid and valid[0] is not None else None
    if features.ndim != 2 or features.shape[1] != extractor.dim or times.shape != (
            len(features),) or (mask is not None and mask.shape != times.shape):
        raise fail(f"features {features.shape}, times {times.shape}"
                   + ("" if mask is None else f", mask {mask.shape}"))
    if not (np.isfinite(features).all() and np.isfinite(times).all()):
        raise fail("non-finite values")
    if np.any(np.diff(times) < 0):
        raise fail("times that go backwards")
    return Frames(features, times, mask)
