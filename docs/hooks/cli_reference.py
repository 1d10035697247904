"""MkDocs hook: the command-line reference, written from ``dhmd``'s own argument parser.

``docs/cli.md`` holds a hand-written introduction and the marker line
``<!-- cli-reference -->``; at build time the marker is replaced by one section per
subcommand (its description and its ``--help`` text), so the page cannot drift from the
parser (:func:`dhmd_graph.cli.build_parser`). The help is formatted at a fixed width so that
the page does not depend on the terminal the build runs in.
"""

from __future__ import annotations

import argparse
import os
from unittest import mock

MARKER = "<!-- cli-reference -->"
WIDTH = "96"  # argparse reads $COLUMNS for its line width


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``parser``'s subcommands by name, in the order they were added."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def cli_reference() -> str:
    """The Markdown of the reference: ``dhmd --help``, then a section per subcommand."""
    from dhmd_graph.cli import build_parser

    with mock.patch.dict(os.environ, {"COLUMNS": WIDTH}):
        parser = build_parser()
        sections = ["## `dhmd`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, command in subcommands(parser).items():
            sections += [f"## `dhmd {name}`", "", command.description or "", "",
                         "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != "cli.md":
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/cli.md lost its {MARKER} line, where the reference goes")
    return markdown.replace(MARKER, cli_reference())
