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

    synth = commands.add_parser(
        "synth", help="write a synthetic MMSA pickle with planted structure",
        description="Write a synthetic dataset in the MMSA pickle layout, with the feature "
        "widths, lengths, split sizes and label distributions of a real dataset and a "
        "documented planted structure (see dhmd_graph.data.synthetic).")
    synth.add_argument("out", metavar="OUT.pkl", help="the pickle to write")
    synth.add_argument("--profile", choices=("mosi", "mosei", "sims"), default="mosei",
                       help="the dataset to imitate (default: mosei)")
    synth.add_argument("--unaligned", action="store_true",
                       help="unaligned layout (default: aligned; CH-SIMS is unaligned only)")
    synth.add_argument("--sizes", type=_split_sizes, metavar="TRAIN,VALID,TEST",
                       help="samples per split, e.g. 200,50,50 (default: the real sizes)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.set_defaults(func=_cmd_synth)
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


def _split_sizes(text: str) -> dict[str, int]:
    """``"200,50,50"`` to ``{'train': 200, 'valid': 50, 'test': 50}``."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected three positive integers TRAIN,VALID,TEST such as 200,50,50, found {text!r}")
    return dict(zip(("train", "valid", "test"), map(int, parts), strict=True))


def _cmd_synth(args: argparse.Namespace) -> int:
    from dhmd_graph.data.synthetic import write_synthetic

    try:
        path = write_synthetic(args.out, args.profile, not args.unaligned, args.sizes, args.seed)
    except ValueError as error:  # e.g. an aligned CH-SIMS
        print(f"dhmd synth: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
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
