"""Small recordings made here for the extraction tests: a drawn face that OpenCV's bundled
Haar cascade finds, a voiced tone, written with PyAV into real containers; and the
transcript files that cut them into utterances."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FPS = 10
RATE = 16_000


def face_frame(size: int = 60, mouth: float = 0.0, height: int = 240, width: int = 320
               ) -> np.ndarray:
    """A ``(height, width, 3)`` BGR frame with a cartoon face (skin oval, brows, eyes,
    nose, mouth) that ``haarcascade_frontalface_default`` detects; ``mouth`` in [0, 1]
    opens the mouth."""
    import cv2

    frame = np.full((height, width, 3), 90, np.uint8)
    cx, cy = width // 2, height // 2
    cv2.ellipse(frame, (cx, cy), (size, int(size * 1.3)), 0, 0, 360, (150, 180, 220), -1)
    for side in (-1, 1):
        eye = (cx + side * size // 2, cy - size // 4)
        cv2.ellipse(frame, (eye[0], cy - size // 2), (size // 4, size // 10), 0, 180, 360,
                    (40, 40, 60), -1)
        cv2.ellipse(frame, eye, (size // 6, size // 10), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(frame, eye, size // 12, (30, 30, 30), -1)
    cv2.line(frame, (cx, cy - size // 6), (cx - size // 10, cy + size // 3), (110, 130, 170), 3)
    cv2.ellipse(frame, (cx, cy + int(size * 0.7)),
                (size // 3, max(2, int(size * (0.08 + 0.15 * mouth)))), 0, 0, 360,
                (60, 60, 140), -1)
    return frame


def blank_frame(height: int = 240, width: int = 320) -> np.ndarray:
    """A grey ``(height, width, 3)`` frame with no face."""
    return np.full((height, width, 3), 90, np.uint8)


def voice(seconds: float, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """``(seconds * RATE,)`` float32 samples: a harmonic tone at ``f0`` with a slow
    loudness contour and a little noise (voiced throughout)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.4 * np.sin(2 * np.pi * 0.5 * t)
    return (0.2 * envelope * wave + 0.005 * rng.normal(size=t.size)).astype(np.float32)


def write_video(path: Path, seconds: float, *, face=lambda t: True, f0: float = 140.0,
                sound: bool = True, seed: int = 0) -> Path:
    """An ``.mp4`` (H.264 at :data:`FPS` frames per second, AAC sound at :data:`RATE`)
    of ``seconds``; ``face(t)`` says whether the frame at ``t`` shows the face."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono") if sound else None
        for i in range(int(seconds * FPS)):
            t = i / FPS
            pixels = face_frame(mouth=0.5 + 0.5 * np.sin(t)) if face(t) else blank_frame()
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            write_samples(container, audio, voice(seconds, f0, seed))
    return path


def write_audio(path: Path, samples: np.ndarray) -> Path:
    """A ``.wav`` (16-bit PCM, mono, :data:`RATE`) of ``samples``."""
    import av

    with av.open(str(path), "w") as container:
        write_samples(container, container.add_stream("pcm_s16le", rate=RATE, layout="mono"),
                      samples)
    return path


def write_samples(container, stream, samples: np.ndarray, block: int = 1024) -> None:
    import av

    for first in range(0, len(samples), block):
        chunk = samples[None, first:first + block].astype(np.float32)  # (1, n) planar
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = RATE, first
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_srt(path: Path, cues: list[tuple[float, float, str]]) -> Path:
    def stamp(seconds: float) -> str:
        ms = int(round(seconds * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = [f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for i, (a, b, text) in
              enumerate(cues, start=1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def write_vtt(path: Path, cues: list[tuple[float, float, str]]) -> Path:
    def stamp(seconds: float) -> str:
        ms = int(round(seconds * 1000))
        return f"{ms // 60_000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    blocks = [f"{stamp(a)} --> {stamp(b)} align:start\n<v Speaker>{text}</v>\n"
              for a, b, text in cues]
    path.write_text("WEBVTT\n\nNOTE made by the tests\n\n" + "\n".join(blocks),
                    encoding="utf-8")
    return path
