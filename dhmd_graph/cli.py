"""The ``dhmd`` command line: parse, call, print, exit codes.

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in
:func:`build_parser`. Heavy imports (torch, PyG) happen inside the subcommands so
that ``dhmd --help`` and argument errors stay fast. Bad data or configuration
(:class:`~dhmd_graph.data.errors.DatasetError`, :class:`ValueError` from configs)
exits with status 2 and a one-paragraph message, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dhmd", description="Decoupled Hierarchical Multimodal Distillation (DHMD) tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert a dataset once into a memory-mapped cache")
    convert.add_argument("source", help="an MMSA .pkl file or a MISA folder (train/dev/test.pkl)")
    convert.add_argument("cache_dir", help="the cache folder to create")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace a cache of another source at CACHE_DIR")
    convert.set_defaults(func=_cmd_convert)

    describe = commands.add_parser("describe", help="summarise a dataset: sizes, shapes, labels")
    describe.add_argument("path", help="an MMSA .pkl file, a cache folder or a MISA folder")
    describe.set_defaults(func=_cmd_describe)
    return parser


def _cmd_convert(args: argparse.Namespace) -> int:
    from dhmd_graph.data import convert_to_cache

    cache_dir = convert_to_cache(args.source, args.cache_dir, overwrite=args.overwrite)
    print(f"cache of {args.source} at {cache_dir}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from dhmd_graph.data.loading import describe, load_dataset

    print(describe(load_dataset(args.path)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from dhmd_graph.data.errors import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DatasetError as error:
        print(f"dhmd {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
