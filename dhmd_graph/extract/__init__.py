r"""Recordings → the plain-arrays folder: decoders, extractors, tool adapters, alignment.

Needs the ``[extract]`` extra (``pip install 'dhmd_graph[extract]'``: PyAV, OpenCV,
librosa), which bundles every codec and model it uses; nothing is downloaded at run time.
:func:`extract` is the whole path; the parts are usable alone:

* :mod:`~dhmd_graph.extract.media`: decoding (:func:`read_audio`, :func:`read_frames`) and
  the :class:`Segment` an extractor reads;
* :mod:`~dhmd_graph.extract.protocol`: the :class:`Extractor` protocol and its
  :class:`Frames`;
* :class:`AcousticFeatures` (audio), :class:`FaceFeatures` (vision): the built-ins;
* :class:`OpenFaceCSV`, :class:`OpenSmileCSV`: the standard tools' outputs;
* :mod:`~dhmd_graph.extract.transcripts`: SRT, WebVTT, CSV transcripts and per-word times;
* :mod:`~dhmd_graph.extract.registry`: extractors by name (:func:`register_extractor`).
"""

from dhmd_graph.extract.adapters import (
    OPENFACE_GROUPS,
    OpenFaceCSV,
    OpenSmileCSV,
    read_openface,
    read_opensmile,
)
from dhmd_graph.extract.audio import AcousticFeatures
from dhmd_graph.extract.face import FaceFeatures
from dhmd_graph.extract.media import MediaError, Segment, probe, read_audio, read_frames
from dhmd_graph.extract.pipeline import ExtractSummary, Recording, extract, find_recordings
from dhmd_graph.extract.protocol import Extractor, Frames
from dhmd_graph.extract.registry import EXTRACTORS, make_extractor, register_extractor
from dhmd_graph.extract.transcripts import Utterance, Word, read_transcript, read_words

__all__ = [
    "EXTRACTORS",
    "OPENFACE_GROUPS",
    "AcousticFeatures",
    "ExtractSummary",
    "Extractor",
    "FaceFeatures",
    "Frames",
    "MediaError",
    "OpenFaceCSV",
    "OpenSmileCSV",
    "Recording",
    "Segment",
    "Utterance",
    "Word",
    "extract",
    "find_recordings",
    "make_extractor",
    "probe",
    "read_audio",
    "read_frames",
    "read_openface",
    "read_opensmile",
    "read_transcript",
    "read_words",
    "register_extractor",
]
