"""Numbers by construction, for the main example: its quick variant reproduces its stored
numbers exactly on this checkout, so a change that moves results shows here. (That every
page block equals its results file's report is ``tests/benchmarks/test_rendered_reports.py``.)"""

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
QUICK_RESULTS = ROOT / "benchmarks" / "results" / "example_quick.json"


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
