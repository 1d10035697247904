r"""Frame-level acoustic features from the sound of a recording, computed with librosa.

The built-in ``acoustic`` extractor: the sound is decoded (PyAV), mixed to mono and
resampled to 16 kHz; frames of 25 ms every 10 ms (100 per second, centred on their
timestamps) give, in this order (61 values with the defaults):

==========================  ====  ======================================================
name                        count what
==========================  ====  ======================================================
``mfcc_1`` ...              13    MFCCs (DCT of the log-mel energies; ``librosa.feature.mfcc``)
``logmel_1`` ...            40    log-mel energies in dB, 40 bands from 0 to 8 kHz
``f0_semitones``            1     F0 (YIN, 60-500 Hz) in semitones above 27.5 Hz, as
                                  openSMILE's eGeMAPS; 0 where the frame is unvoiced
``voicing``                 1     normalised autocorrelation at the F0 period, 0 to 1
``energy_db``               1     RMS energy in dB (full scale = 0 dB)
``zero_crossing_rate``      1     zero crossings per sample
``spectral_centroid_khz``   1     spectral centroid, kHz
``spectral_bandwidth_khz``  1     spectral bandwidth (second moment about the centroid), kHz
``spectral_rolloff_khz``    1     frequency below which 85% of the energy lies, kHz
``spectral_flatness``       1     geometric over arithmetic mean of the power, 0 to 1
==========================  ====  ======================================================

These are descriptors of the signal, not of the speaker's state; they are not COVAREP's
or openSMILE's (read those with :class:`~dhmd_graph.extract.OpenSmileCSV`). A frame
whose energy is below ``silence_db`` is marked invalid (counted as silent in the summary)
but kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhmd_graph.extract.media import Segment
from dhmd_graph.extract.protocol import Frames

__all__ = ["AcousticFeatures"]


def _librosa():
    try:
        import librosa
    except ImportError as error:
        raise ImportError("The acoustic features need librosa: pip install "
                          "'dhmd_graph[extract]'") from error
    return librosa


@dataclass
class AcousticFeatures:
    r"""MFCCs, log-mel energies, F0 and voicing, energy and spectral shape per frame.

    Args:
        sample_rate (int, optional): Rate the sound is resampled to. (default: ``16000``)
        window (float, optional): Frame length in seconds. (default: ``0.025``)
        hop (float, optional): Seconds between frames. (default: ``0.01``)
        n_mfcc (int, optional): MFCCs kept. (default: ``13``)
        n_mels (int, optional): Mel bands. (default: ``40``)
        f0_min (float, optional): Lowest F0 searched, Hz. (default: ``60.0``)
        f0_max (float, optional): Highest F0 searched, Hz. (default: ``500.0``)
        voicing_threshold (float, optional): Voicing above which a frame is voiced.
            (default: ``0.5``)
        silence_db (float, optional): Energy below which a frame is silent, dB.
            (default: ``-60.0``)

    Shapes:
        - **output:** features ``(T, n_mfcc + n_mels + 8)``, times ``(T,)`` with
          ``T = 1 + floor(S / hop_samples)`` for ``S`` samples.
    """

    sample_rate: int = 16_000
    window: float = 0.025
    hop: float = 0.01
    n_mfcc: int = 13
    n_mels: int = 40
    f0_min: float = 60.0
    f0_max: float = 500.0
    voicing_threshold: float = 0.5
    silence_db: float = -60.0
    name = "acoustic"
    missing = "silent frames"

    @property
    def dim(self) -> int:
        return self.n_mfcc + self.n_mels + 8

    @property
    def names(self) -> list[str]:
        return ([f"mfcc_{i}" for i in range(1, self.n_mfcc + 1)]
                + [f"logmel_{i}" for i in range(1, self.n_mels + 1)]
                + ["f0_semitones", "voicing", "energy_db", "zero_crossing_rate",
                   "spectral_centroid_khz", "spectral_bandwidth_khz", "spectral_rolloff_khz",
                   "spectral_flatness"])

    def __call__(self, segment: Segment) -> Frames:
        librosa = _librosa()
        y = segment.samples(self.sample_rate)  # (S,)
        if len(y) == 0:
            return Frames.empty(self.dim)
        sr, hop = self.sample_rate, int(round(self.hop * self.sample_rate))
        n_fft = int(round(self.window * sr))
        pitch_frame = max(2048, 1 << int(np.ceil(np.log2(2.2 * sr / self.f0_min))))
        count = 1 + len(y) // hop
        padded = np.pad(y, (0, max(0, pitch_frame - len(y))))  # YIN needs one whole frame
        power = np.abs(librosa.stft(padded, n_fft=n_fft, hop_length=hop)) ** 2  # (F, T')
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=self.n_mels, fmax=sr / 2)
        logmel = librosa.power_to_db(mel, ref=1.0, top_db=None)  # (n_mels, T')
        mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=self.n_mfcc)
        f0 = librosa.yin(padded, fmin=self.f0_min, fmax=self.f0_max, sr=sr,
                         frame_length=pitch_frame, hop_length=hop)
        voicing = self._voicing(librosa, padded, f0, pitch_frame, hop)
        rms = librosa.feature.rms(S=np.sqrt(power), frame_length=n_fft)[0]
        energy = 20 * np.log10(np.maximum(rms, 1e-10))
        voiced = (voicing > self.voicing_threshold) & (energy > self.silence_db)
        semitones = np.where(voiced, 12 * np.log2(f0 / 27.5), 0.0)
        shape = [librosa.feature.zero_crossing_rate(padded, frame_length=n_fft,
                                                    hop_length=hop)[0],
                 librosa.feature.spectral_centroid(S=power ** 0.5, sr=sr)[0] / 1000,
                 librosa.feature.spectral_bandwidth(S=power ** 0.5, sr=sr)[0] / 1000,
                 librosa.feature.spectral_rolloff(S=power ** 0.5, sr=sr)[0] / 1000,
                 librosa.feature.spectral_flatness(S=power, power=1.0)[0]]
        rows = [mfcc, logmel, semitones[None], voicing[None], energy[None], np.stack(shape)]
        features = np.concatenate([r[:, :count] for r in rows]).T  # (T, dim)
        times = segment.start + np.arange(count) * hop / sr
        return Frames(features.astype(np.float32), times, energy[:count] > self.silence_db)

    def _voicing(self, librosa, y: np.ndarray, f0: np.ndarray, frame: int, hop: int
                 ) -> np.ndarray:
        """``(T',)`` normalised autocorrelation of each centred frame at its F0 period."""
        frames = librosa.util.frame(np.pad(y, frame // 2), frame_length=frame,
                                    hop_length=hop).T[: len(f0)]  # (T', frame)
        out = np.zeros(len(f0))
        periods = np.clip(np.round(self.sample_rate / f0).astype(int), 1, frame - 1)
        for i, (x, lag) in enumerate(zip(frames, periods, strict=True)):
            a, b = x[:-lag], x[lag:]
            norm = np.sqrt(a @ a * (b @ b))
            out[i] = max(0.0, float(a @ b) / norm) if norm > 1e-12 else 0.0
        return out
