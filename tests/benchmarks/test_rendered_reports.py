"""The stored reports of the results files are what their scripts render from the files'
own rows (nobody edits a report by hand), and every page block under a
``<!-- rendered from ... -->`` line is its file's report, character for character
(lead-in sentence and table alike). No assertion on a timing: only on text."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = sorted((BENCHMARKS / "results").glob("*.json"))
PAGES = [ROOT / "README.md", BENCHMARKS / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!-- rendered from (\S+) -->\n", flags=re.MULTILINE)


def _load_render():
    """``benchmarks/render.py`` as a module (it puts ``benchmarks/`` on the path for the
    scripts, as ``python benchmarks/render.py`` does)."""
    spec = importlib.util.spec_from_file_location("render", BENCHMARKS / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RENDER = _load_render()


@pytest.fixture
def render():
    return RENDER


def _with_report() -> list[Path]:
    """The results files with a report that a benchmark script wrote (an example's own
    files are checked by running it, in ``tests/test_rendered_numbers.py``)."""
    found = []
    for path in RESULTS:
        results = json.loads(path.read_text())
        if "report" in results and RENDER.script_name(results, path) is not None:
            found.append(path)
    return found


def _markers() -> list[tuple[Path, str, int]]:
    return [(page, match[1], match.end()) for page in PAGES
            for match in MARKER.finditer(page.read_text())]


@pytest.mark.parametrize("path", _with_report(), ids=lambda path: path.name)
def test_stored_report_is_what_its_script_renders_from_the_rows(render, path):
    stored = json.loads(path.read_text())["report"]
    assert stored == render.render(path), (
        f"{path.relative_to(ROOT)}: its 'report' is not what its script's markdown_report "
        f"renders from its rows; run `python benchmarks/render.py {path.relative_to(ROOT)}` "
        "(and `--paste` the pages that show it)")


@pytest.mark.parametrize(("page", "results", "start"), _markers(),
                         ids=lambda value: value.name if isinstance(value, Path) else None)
def test_page_block_is_its_files_report(page, results, start):
    report = json.loads((ROOT / results).read_text())["report"].rstrip("\n")
    rest = page.read_text()[start:]
    fenced = f"```\n{report}\n```"
    block = fenced if rest.startswith("```") else report
    assert rest.startswith(block) and rest[len(block):len(block) + 1] in ("\n", ""), (
        f"{page.relative_to(ROOT)}: the block under '<!-- rendered from {results} -->' is not "
        f"that file's report; run `python benchmarks/render.py --paste "
        f"{page.relative_to(ROOT)}`")
    after = rest[len(block):].split("\n", 2)
    assert len(after) < 2 or not after[1].startswith("|"), "the table goes on past the report"


def test_pages_render_the_benchmark_tables():
    rendered = {results for _, results, _ in _markers()}
    for name in ("layer", "train_step", "train_step_threads1", "scale", "scaling_curves",
                 "cache_memory", "quickstart_time_old_quiet", "dmd_ablation_switches_1-2",
                 "dmd_ablation_repr_reduction_margin_off", "example_default",
                 "dmd_reference_speed", "dmd_reference_speed_system_malloc",
                 "routing_evidence"):
        assert f"benchmarks/results/{name}.json" in rendered


def test_results_files_name_their_script(render):
    for path in RESULTS:
        results = json.loads(path.read_text())
        assert render.script_path(results, path).is_file()
        if path in _with_report():
            assert render.renderer(results, path) is not None, (
                f"{path.name} has a report but its script no markdown_report")


def test_write_results_renders_a_report_from_what_it_writes(render, tmp_path):
    common = render.load_script("common")

    def markdown_report(rows, settings, summary=None):
        return f"{len(rows)} rows, size {settings['size']}, summary {summary}"

    path = common.write_results("demo", [{"a": 1.5}, {"a": (2, 3)}], settings={"size": 4},
                                output_dir=tmp_path, report=markdown_report)
    results = json.loads(path.read_text())
    assert results["report"] == "2 rows, size 4, summary None"
    assert common.render_report(markdown_report, {**results, "summary": 7}).endswith("7")
    with pytest.raises(KeyError, match="'settings'"):
        common.render_report(markdown_report, {"rows": []})


def test_measured_line_names_the_commit_and_says_when_none_is_known(render):
    common = render.load_script("common")
    machine = {"time": "2026-11-25T14:18:55+0000", "commit": None, "cpu_model": "CPU",
               "logical_cpus": 2, "torch_threads": 1, "torch": "2.13.0",
               "load_average": [0.7, 0.5, 0.4]}
    assert "a commit the file does not record" in common.measured_line(machine)
    stated = common.measured_line(machine, {"commit": "e4dac4c", "source": "named by a page"})
    assert stated.startswith("Measured 2026-11-25 at commit e4dac4c (named by a page) on CPU")
    assert "at commit abc1234 on" in common.measured_line({**machine, "commit": "abc1234"})


def test_paste_replaces_stale_blocks_and_keeps_the_rest(render, tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(
        json.dumps({"report": "Lead in.\n\n| a |\n|---|\n| 2 |"}))
    (tmp_path / "results" / "y.json").write_text(json.dumps({"report": "plain 3"}))
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n<!-- rendered from results/x.json -->\nOld lead.\n\n| a |\n"
                    "|---|\n| 1 |\n\ntext after\n\n<!-- rendered from results/y.json -->\n"
                    "```\nplain 2\n```\nend\n")
    monkeypatch.setattr(render, "ROOT", tmp_path)
    assert render.paste(page) == 2
    assert page.read_text() == (
        "# Title\n\n<!-- rendered from results/x.json -->\nLead in.\n\n| a |\n|---|\n| 2 |\n"
        "\ntext after\n\n<!-- rendered from results/y.json -->\n```\nplain 3\n```\nend\n")
