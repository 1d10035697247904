"""Renders the ``"report"`` of existing results files again, from their stored entries.

::

    python benchmarks/render.py benchmarks/results/layer.json [more files]
    python benchmarks/render.py --check benchmarks/results/*.json
    python benchmarks/render.py --paste benchmarks/README.md docs/guide/dmd.md

Nothing is measured: the file names the script that wrote it (its ``"command"``, or else
its name), and that script's ``markdown_report`` renders the block of the page from the
file's rows, machine and settings (:func:`common.render_report`). The file is rewritten
with the new ``"report"``, everything else kept. ``--check`` writes nothing and exits 1
when a stored report is not what its script renders now. A page shows a report under the
line ``<!-- rendered from benchmarks/results/NAME.json -->``; ``--paste PAGE`` replaces
the block under every such line of the page by its file's stored report (a fenced block
stays fenced; otherwise the block is an optional lead-in paragraph and one or more Markdown
tables, each after one blank line).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
MARKER = re.compile(r"<!-- rendered from (\S+) -->")
if str(BENCHMARKS) not in sys.path:  # the scripts import ``common`` as a sibling
    sys.path.insert(0, str(BENCHMARKS))

from common import render_report  # noqa: E402


def script_path(results: Mapping[str, Any], path: Path | None = None) -> Path:
    """The script that wrote ``results``: the ``.py`` its ``"command"`` runs (a benchmark
    script by its name, or a file of the repository such as ``examples/mosei_dhmd.py``),
    else the benchmark script whose name begins the file's name (``train_step_threads1``
    → ``benchmarks/train_step.py``).

    Raises:
        LookupError: When neither names a script.
    """
    for word in shlex.split(str(results.get("command", ""))):
        if word.endswith(".py"):
            if (BENCHMARKS / Path(word).name).is_file():
                return BENCHMARKS / Path(word).name
            if (ROOT / word).is_file():
                return ROOT / word
    stem = path.stem if path is not None else str(results.get("benchmark", ""))
    for script in sorted(BENCHMARKS.glob("*.py"), key=lambda p: len(p.stem), reverse=True):
        if stem == script.stem or stem.startswith(script.stem + "_"):
            return script
    raise LookupError(f"no script wrote {path or stem!r}: its 'command' names none and its "
                      f"name begins with the name of no script under {BENCHMARKS}")


def script_name(results: Mapping[str, Any], path: Path | None = None) -> str | None:
    """The name of the benchmark script that wrote ``results`` (:func:`script_path`), or
    :obj:`None` when another script of the repository wrote it (an example, whose report
    ``tests/test_rendered_numbers.py`` checks by running it)."""
    script = script_path(results, path)
    return script.stem if script.parent == BENCHMARKS else None


def load_script(name: str) -> ModuleType:
    """Imports ``benchmarks/<name>.py`` as ``python benchmarks/<name>.py`` would see it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def renderer(results: Mapping[str, Any], path: Path | None = None
             ) -> Callable[..., str] | None:
    """The ``markdown_report`` of the benchmark script that wrote ``results``, or
    :obj:`None` when that script has none or is not a benchmark script."""
    name = script_name(results, path)
    return None if name is None else getattr(load_script(name), "markdown_report", None)


def render(path: Path | str) -> str:
    """The report of the results file at ``path``, rendered now from its entries."""
    path = Path(path)
    results = json.loads(path.read_text())
    function = renderer(results, path)
    if function is None:
        raise LookupError(f"{path}: {script_path(results, path).relative_to(ROOT)} has no "
                          "markdown_report among the benchmark scripts to render it with")
    return render_report(function, results)


def block_end(lines: Sequence[str], start: int) -> int:
    """The index just past the rendered block that begins at ``lines[start]``: a fenced
    block, or an optional lead-in paragraph, a blank line and Markdown tables separated by
    one blank line each."""
    if lines[start] == "```":
        return lines.index("```", start + 1) + 1
    end = start
    while end < len(lines) and lines[end] and not lines[end].startswith("|"):
        end += 1  # the lead-in paragraph
    if end + 1 < len(lines) and not lines[end] and lines[end + 1].startswith("|"):
        end += 1
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
        if (end + 1 < len(lines) and not lines[end] and lines[end + 1].startswith("|")):
            end += 1  # the next table of the same report
    return end


def paste(page: Path | str) -> int:
    """Replaces the block under every marker of ``page`` by its file's stored report;
    returns how many blocks it replaced."""
    page = Path(page)
    lines = page.read_text().split("\n")
    count, index = 0, 0
    while index < len(lines):
        match = MARKER.fullmatch(lines[index])
        index += 1
        if match is None:
            continue
        report = json.loads((ROOT / match[1]).read_text())["report"].rstrip("\n").split("\n")
        fenced = lines[index] == "```"
        new = ["```", *report, "```"] if fenced else report
        lines[index:block_end(lines, index)] = new
        index += len(new)
        count += 1
    page.write_text("\n".join(lines))
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="results files (JSON), or pages "
                        "with --paste")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a stored report differs")
    parser.add_argument("--paste", action="store_true",
                        help="the files are pages: paste the stored reports into their blocks")
    args = parser.parse_args(argv)
    if args.paste:
        for page in args.files:
            print(f"{page}: {paste(page)} rendered block(s) pasted")
        return 0
    stale = 0
    for path in args.files:
        results = json.loads(path.read_text())
        report = render(path)
        if args.check:
            if results.get("report") != report:
                stale += 1
                print(f"{path}: the stored report is not what "
                      f"{script_path(results, path).relative_to(ROOT)} renders from its rows")
            continue
        results["report"] = report
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{path}: report rendered ({len(report.splitlines())} lines)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
