r"""``dhmd extract``: the arguments, and the call to :func:`~dhmd_graph.extract.extract`.

:func:`add_extract_parser` adds the subcommand to ``dhmd``'s subparsers; its ``func``
default is :func:`run_extract`. Bad input raises :class:`~dhmd_graph.data.DatasetError`
(a :class:`ValueError`), which ``dhmd``'s error table turns into a one-line message and
exit status 2; a missing extra is reported the same way here.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_extract_parser", "run_extract"]

_EPILOG = """\
examples:
  dhmd extract recordings/ --manifest labels.csv --out my_data
  dhmd train --data my_data --preset mosi
  dhmd extract new_recordings/ --vocabulary my_data/vocabulary.json --out to_predict
  dhmd extract videos/ --vision openface:processed/ --audio opensmile:egemaps/ --out d

extractors: acoustic (librosa), face (OpenCV Haar cascades; not action units),
openface:FOLDER (OpenFace 2 CSVs), opensmile:FOLDER (openSMILE LLD CSVs), none;
options as NAME:key=value,key=value (e.g. face:fps=15)."""


def add_extract_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``extract`` to ``dhmd``'s subcommands; returns its parser."""
    parser = subparsers.add_parser(
        "extract", help="turn videos, audio and transcripts into a plain-arrays folder",
        description="Turn a folder of recordings (video and/or audio) and their timed "
        "transcripts into the plain-arrays folder 'dhmd train --data' reads, offline.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recordings", metavar="RECORDINGS",
                        help="a folder of media files, or one media file")
    parser.add_argument("--out", required=True, metavar="FOLDER", help="the folder to write")
    parser.add_argument("--transcripts", metavar="PATH",
                        help="a folder of <recording>.srt|.vtt|.csv (default: beside the "
                        "media); without one a recording is one utterance")
    parser.add_argument("--manifest", metavar="CSV",
                        help="labels: a CSV of id,label[,split] by utterance or recording "
                        "(default: none; every utterance an unlabelled test row)")
    parser.add_argument("--words", metavar="FOLDER",
                        help="a folder of <recording>.csv per-word timestamps start,end,word")
    parser.add_argument("--collapse", choices=("none", "words"), default="none",
                        help="'words': average each modality's frames within each word "
                        "(needs --words) (default: none)")
    parser.add_argument("--audio", default="acoustic", metavar="EXTRACTOR",
                        help="the audio modality's extractor, or 'none' (default: acoustic)")
    parser.add_argument("--vision", default="face", metavar="EXTRACTOR",
                        help="the vision modality's extractor, or 'none' (default: face)")
    parser.add_argument("--no-text", action="store_true",
                        help="leave the text modality out")
    parser.add_argument("--vocabulary", metavar="JSON",
                        help="map words onto this vocabulary.json (the training folder's)")
    parser.add_argument("--stop-on-error", action="store_true",
                        help="stop at the first unreadable recording (default: skip it)")
    parser.add_argument("--cache", metavar="FOLDER",
                        help="the per-recording cache (default: OUT.cache)")
    parser.add_argument("--no-cache", action="store_true", help="cache nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_extract)
    return parser


def run_extract(args: argparse.Namespace) -> int:
    """Run ``dhmd extract`` with parsed ``args``; print the summary table. Returns 0, or 2
    when the ``[extract]`` extra is missing."""
    try:
        from dhmd_graph.extract.pipeline import extract

        summary = extract(
            args.recordings, args.out, transcripts=args.transcripts, manifest=args.manifest,
            words=args.words, collapse=args.collapse, text=not args.no_text,
            modalities={name: None if spec.lower() == "none" else spec
                        for name, spec in (("audio", args.audio), ("vision", args.vision))},
            vocabulary=args.vocabulary,
            on_error="stop" if args.stop_on_error else "skip",
            cache=False if args.no_cache else (args.cache or True),
            overwrite=args.overwrite, progress=not args.quiet)
    except ImportError as error:
        print(f"dhmd extract: error: {error}", file=sys.stderr)
        return 2
    print(summary.table())
    return 0
