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
    parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser


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
