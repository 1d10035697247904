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

from __future__ import annotations

from dhmd_graph import lazy_exports

# public name -> the module that defines it (imported lazily: ``dhmd --help`` and the
# command's argument errors need none of the media libraries)
_EXPORTS = {
    "OPENFACE_GROUPS": "dhmd_graph.extract.adapters",
    "OpenFaceCSV": "dhmd_graph.extract.adapters",
    "OpenSmileCSV": "dhmd_graph.extract.adapters",
    "read_openface": "dhmd_graph.extract.adapters",
    "read_opensmile": "dhmd_graph.extract.adapters",
    "AcousticFeatures": "dhmd_graph.extract.audio",
    "FaceFeatures": "dhmd_graph.extract.face",
    "MediaError": "dhmd_graph.extract.media",
    "Segment": "dhmd_graph.extract.media",
    "probe": "dhmd_graph.extract.media",
    "read_audio": "dhmd_graph.extract.media",
    "read_frames": "dhmd_graph.extract.media",
    "ExtractSummary": "dhmd_graph.extract.pipeline",
    "Recording": "dhmd_graph.extract.pipeline",
    "extract": "dhmd_graph.extract.pipeline",
    "find_recordings": "dhmd_graph.extract.pipeline",
    "Extractor": "dhmd_graph.extract.protocol",
    "Frames": "dhmd_graph.extract.protocol",
    "EXTRACTORS": "dhmd_graph.extract.registry",
    "make_extractor": "dhmd_graph.extract.registry",
    "register_extractor": "dhmd_graph.extract.registry",
    "Utterance": "dhmd_graph.extract.transcripts",
    "Word": "dhmd_graph.extract.transcripts",
    "read_transcript": "dhmd_graph.extract.transcripts",
    "read_words": "dhmd_graph.extract.transcripts",
}

__all__ = [*_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
