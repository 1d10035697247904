r"""Per-frame face descriptors from OpenCV's bundled Haar cascades.

The built-in ``face`` extractor: frames are decoded (PyAV) at ``fps`` per second, the
largest frontal face is found with the Viola-Jones cascade that ships inside the
``opencv-python-headless`` wheel (``haarcascade_frontalface_default.xml``; nothing is
downloaded), and each frame gives, in this order (154 values with the defaults):

=====================  =====  =========================================================
name                   count  what
=====================  =====  =========================================================
``face_found``         1      1 where a face was found, else 0 (and all below are 0)
``face_x`` ``face_y``  2      the face box's centre, as a fraction of the frame's size
``face_w`` ``face_h``  2      the box's width and height, as fractions of the frame's
``eyes_found``         1      eyes found by the bundled eye cascade in the box's upper
                              half, 0, 0.5 or 1
``smile_found``        1      1 where the bundled smile cascade fires in the lower half
``brightness``         1      mean grey level of the face, 0 to 1
``contrast``           1      standard deviation of the grey level of the face
``motion``             1      mean absolute change of the face since the last frame
                              with a face, 0 to 1
``hog_1`` ...          144    histograms of oriented gradients of the face resized to
                              64 x 64: 4 x 4 cells of 16 pixels, 9 orientations each
=====================  =====  =========================================================

These are **not** facial action units, gaze or head pose (OpenFace's, Facet's): they
describe where a face is and how its appearance changes, and carry expression only
through the gradient histograms, the smile detector and the motion. For action units,
gaze and pose run OpenFace and read its CSVs with :class:`~dhmd_graph.extract.OpenFaceCSV`.
The cascades find frontal, upright faces; a turned or small face is often missed, and a
frame without a face is marked invalid (counted in the summary) with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dhmd_graph.extract.media import Segment
from dhmd_graph.extract.protocol import Frames

__all__ = ["FaceFeatures"]

_CROP, _CELL, _BINS = 64, 16, 9
_SUMMARY = ["face_found", "face_x", "face_y", "face_w", "face_h", "eyes_found",
            "smile_found", "brightness", "contrast", "motion"]


def _cv2():
    try:
        import cv2
    except ImportError as error:
        raise ImportError("The face descriptors need OpenCV: pip install "
                          "'dhmd_graph[extract]'") from error
    return cv2


@dataclass
class FaceFeatures:
    r"""Face box, eye and smile detections, appearance and motion of the largest face.

    Args:
        fps (float, optional): Frames analysed per second; :obj:`None` for every frame.
            (default: ``10.0``)
        detect_width (int, optional): Frames are scaled to this width for detection.
            (default: ``320``)
        min_face (float, optional): Smallest face searched, as a fraction of the scaled
            frame's height. (default: ``0.15``)
        min_neighbors (int, optional): The cascade's ``minNeighbors``; higher finds fewer
            false faces. (default: ``5``)

    Shapes:
        - **output:** features ``(T, 154)``, times ``(T,)``: one row per analysed frame.
    """

    fps: float | None = 10.0
    detect_width: int = 320
    min_face: float = 0.15
    min_neighbors: int = 5
    name = "face"
    missing = "frames without a face"
    _cascades: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return len(_SUMMARY) + (_CROP // _CELL) ** 2 * _BINS

    @property
    def names(self) -> list[str]:
        return _SUMMARY + [f"hog_{i}" for i in range(1, self.dim - len(_SUMMARY) + 1)]

    def _cascade(self, name: str):
        cv2 = _cv2()
        if name not in self._cascades:
            self._cascades[name] = cv2.CascadeClassifier(cv2.data.haarcascades + name)
            if self._cascades[name].empty():
                raise ImportError(f"OpenCV's bundled cascade {name} is missing: install "
                                  "opencv-python-headless<5 (pip install 'dhmd_graph[extract]')")
        return self._cascades[name]

    def __call__(self, segment: Segment) -> Frames:
        cv2 = _cv2()
        hog = cv2.HOGDescriptor((_CROP, _CROP), (_CELL, _CELL), (_CELL, _CELL),
                                (_CELL, _CELL), _BINS)
        rows, times, found = [], [], []
        previous = None
        for time, frame in segment.frames(self.fps):
            row, crop = self._describe(cv2, hog, frame, previous)
            previous = crop if crop is not None else previous
            rows.append(row)
            times.append(time)
            found.append(crop is not None)
        if not rows:
            return Frames.empty(self.dim)
        return Frames(np.stack(rows), np.asarray(times), np.asarray(found))

    def _describe(self, cv2, hog, frame: np.ndarray, previous: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """One frame's ``(154,)`` row, and its ``(64, 64)`` face crop (:obj:`None`: no face)."""
        row = np.zeros(self.dim, np.float32)
        height, width = frame.shape[:2]
        scale = min(1.0, self.detect_width / width)
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        side = max(20, int(self.min_face * small.shape[0]))
        faces = self._cascade("haarcascade_frontalface_default.xml").detectMultiScale(
            small, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(side, side))
        if len(faces) == 0:
            return row, None
        x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
        box = small[y:y + h, x:x + w]
        eyes = self._cascade("haarcascade_eye.xml").detectMultiScale(
            box[: h // 2], scaleFactor=1.1, minNeighbors=5, minSize=(w // 10, w // 10))
        smiles = self._cascade("haarcascade_smile.xml").detectMultiScale(
            box[h // 2:], scaleFactor=1.2, minNeighbors=15, minSize=(w // 5, h // 10))
        x0, y0, x1, y1 = (int(v / scale) for v in (x, y, x + w, y + h))
        crop = cv2.resize(grey[y0:y1, x0:x1], (_CROP, _CROP), interpolation=cv2.INTER_AREA)
        pixels = crop.astype(np.float32) / 255
        motion = 0.0 if previous is None else float(
            np.abs(pixels - previous.astype(np.float32) / 255).mean())
        row[:len(_SUMMARY)] = [1.0, (x + w / 2) / small.shape[1], (y + h / 2) / small.shape[0],
                               w / small.shape[1], h / small.shape[0], min(len(eyes), 2) / 2,
                               float(len(smiles) > 0), pixels.mean(), pixels.std(), motion]
        row[len(_SUMMARY):] = hog.compute(crop).reshape(-1)
        return row, crop
