"""The figures and numbers of the docs' "Looking inside a run" page, from a run of the main
example.

Usage (from the repository root; the run takes minutes, the inspection about one)::

    python examples/mosei_dhmd.py --out runs/mosei-example
    python benchmarks/inspect_example.py runs/mosei-example

Runs ``dhmd inspect`` on every seed of the run (t-SNE, validation split), copies the
first seed's figures to ``docs/figures/inspect_<name>.png`` and writes
``benchmarks/results/inspect_example.json``: the summary across seeds (``"summary"``) and,
from the first seed's ``report.md``, the sections that hold numbers (``"sections"``:
warnings, E against the prior, reliability, routing, missing and single modalities,
verbatim); its ``report``, the page's rendered block, joins the two.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from common import write_results

from dhmd_graph.inspect.report import inspect_run

FIGURES_DIR = Path(__file__).resolve().parents[1] / "docs" / "figures"
FIGURES = ("edges", "edge_evolution", "training_curves", "spaces", "atoms", "routing")
"""The figures of a seed's report that the page shows (``routing`` where the data plant a
reliability)."""
SECTIONS = ("Warnings", "Learned weights E against the prior alone",
            "Edge weights and planted modality reliability",
            "Routing: the top teacher and the most reliable modality", "Missing modalities",
            "Single modalities")
"""The headings of a seed's ``report.md`` whose sections the page quotes."""


def report_sections(text: str, headings: tuple[str, ...] = SECTIONS) -> str:
    """The ``## `` sections of a ``report.md`` whose heading starts with one of
    ``headings``, in the report's order, figure links removed (the page shows the
    figures itself)."""
    sections = re.split(r"(?m)^(?=## )", text)
    kept = [section for section in sections
            if section.startswith("## ") and section[3:].startswith(headings)]
    body = "\n\n".join(section.strip() for section in kept)
    body = re.sub(r"(?m)^!\[[^\]]*\]\([^)]*\)\n?", "", body)
    return re.sub(r"\n{3,}", "\n\n", body).strip()


def markdown_report(summary: str, seed: str, sections: str) -> str:
    """The page's block: the summary across seeds, then the first seed's sections."""
    return "\n\n".join(part for part in (summary, f"{seed}:", sections) if part)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder of `python examples/mosei_dhmd.py --out`")
    parser.add_argument("--figures-dir", default=str(FIGURES_DIR))
    parser.add_argument("--output-dir", help="where the results file goes (default: "
                        "benchmarks/results)")
    args = parser.parse_args(argv)

    run = Path(args.run)
    summary = inspect_run(run, split="valid", method="tsne")
    seeds = sorted(run.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
    first = seeds[0] / "inspect-valid"
    figures = Path(args.figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in FIGURES:
        source = first / f"{name}.png"
        if source.exists():
            shutil.copyfile(source, figures / f"inspect_{name}.png")
            copied.append(name)
    entries = {"summary": summary.read_text().strip() if summary.parent != first else "",
               "seed": seeds[0].name,
               "sections": report_sections((first / "report.md").read_text())}
    report = markdown_report(**entries)
    path = write_results("inspect_example", [], settings={"run": str(run), "split": "valid",
                                                          "method": "tsne"},
                         output_dir=args.output_dir, extra={"figures": copied, **entries},
                         report=report)
    print(report)
    print(f"wrote {path} and {len(copied)} figures to {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
