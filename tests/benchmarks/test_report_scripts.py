"""The scripts that turn a run into a page's rendered block: ``benchmarks/inspect_example.py``
(the sections of an inspect report that the inspect page quotes) and
``benchmarks/reproducibility.py`` (the table of what moves the example's numbers). Text only:
the runs they wrap are tested where they live."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import their sibling `common`
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


@pytest.fixture(scope="module")
def inspect_example():
    return _script("inspect_example")


@pytest.fixture(scope="module")
def reproducibility():
    return _script("reproducibility")


REPORT = """# DHMD inspection

Intro.

## Warnings

- **An early checkpoint.** epoch 2 of 3
## Who teaches whom: the distillation graphs

![edges](edges.png)
Numbers not quoted.

## Missing modalities

![subsets](subsets.png)
| present | MAE |
|---|---|
| text | 0.7 |

## Dictionary activations

Not quoted either.
"""


def test_report_sections_keeps_the_named_sections_in_order_without_figures(inspect_example):
    text = inspect_example.report_sections(REPORT, ("Missing modalities", "Warnings"))
    assert text.startswith("## Warnings\n\n- **An early checkpoint.**")
    assert "## Missing modalities\n\n| present | MAE |" in text
    assert text.index("Warnings") < text.index("Missing modalities")
    assert "![" not in text and "Who teaches whom" not in text and "Not quoted" not in text
    assert "Intro." not in text


def test_inspect_block_joins_summary_seed_and_sections(inspect_example):
    block = inspect_example.markdown_report(summary="# Summary", seed="seed_1", sections="## W")
    assert block == "# Summary\n\nseed_1:\n\n## W"
    assert inspect_example.markdown_report(summary="", seed="seed_1", sections="## W") == (
        "seed_1:\n\n## W")  # a one-seed run has no summary


def test_reproducibility_table_says_whether_the_data_were_the_same(reproducibility):
    machine = {"time": "2026-12-07T20:00:00+0000", "commit": "abc1234", "cpu_model": "CPU",
               "logical_cpus": 2, "torch_threads": 2, "torch": "2.13.0",
               "load_average": [0.1, 0.1, 0.1]}
    row = {"setting": "AVX2 kernels, 2 threads", "cpu_capability": "AVX2", "threads": 2,
           "data_sha256": "a", "valid_MAE": 0.59661, "test_MAE": 0.595, "test_Corr": 0.7621}
    same = reproducibility.markdown_report([row, {**row, "setting": "again"}], machine)
    assert "on the same data file" in same
    assert "| AVX2 kernels, 2 threads | AVX2 | 2 | 0.5966 | 0.5950 | 0.7621 |" in same
    other = reproducibility.markdown_report([row, {**row, "data_sha256": "b"}], machine)
    assert "same data file" not in other
