"""Numbers by construction: every block of figures in the README and the docs that says
``<!-- rendered from PATH -->`` (then a fenced block, a table, or text up to
``<!-- end rendered -->``) is the ``report`` of that results file, character for
character; and the quick variant of the main example reproduces its stored numbers exactly
on this checkout (a change that moves results shows here)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
         *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"<!-- rendered from (?P<path>\S+) -->\n(?P<body>```\n.*?\n```|"
                    r"(?:\|.*\n)+|.*?(?=\n<!-- end rendered -->))", flags=re.DOTALL)
"""The marker line, then the block: a fenced block, a table, or any text up to a line
``<!-- end rendered -->``."""
QUICK_RESULTS = ROOT / "benchmarks" / "results" / "example_quick.json"


def rendered_blocks() -> list[tuple[Path, str, str]]:
    """(page, results path, the block's text without its fences) for every marker."""
    found = []
    for page in PAGES:
        for match in MARKER.finditer(page.read_text()):
            body = match["body"]
            if body.startswith("```"):
                body = body[4:-4]
            found.append((page, match["path"], body.rstrip("\n")))
    return found


def test_the_pages_render_blocks():
    paths = {path for _, path, _ in rendered_blocks()}
    assert "benchmarks/results/example_default.json" in paths  # the README's headline block


@pytest.mark.parametrize(("page", "path", "body"), rendered_blocks(),
                         ids=lambda value: value.name if isinstance(value, Path) else None)
def test_rendered_block_equals_its_results_file(page, path, body):
    report = json.loads((ROOT / path).read_text())["report"]
    assert body == report.rstrip("\n"), (
        f"{page.relative_to(ROOT)}: the block under '<!-- rendered from {path} -->' is not "
        f"that file's report; paste the file's 'report' or rerun its 'command'")


def test_quick_example_reproduces_its_stored_numbers(tmp_path, monkeypatch, capsys):
    stored = json.loads(QUICK_RESULTS.read_text())
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))  # the data generated anew
    spec = importlib.util.spec_from_file_location("mosei_dhmd_quick",
                                                  ROOT / "examples" / "mosei_dhmd.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    threads = torch.get_num_threads()
    torch.set_num_threads(stored["threads"])
    try:
        assert example.main(["--quick", "--results", str(tmp_path / "quick.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    found = json.loads((tmp_path / "quick.json").read_text())
    assert found["data_sha256"] == stored["data_sha256"], "the generator's output changed"
    assert found["report"] == stored["report"], (
        f"the quick example's numbers moved; if on purpose, rerun `{stored['command']}` "
        "from the repository root with a fresh DHMD_CACHE and commit the file")
