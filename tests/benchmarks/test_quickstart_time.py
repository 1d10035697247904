"""The quickstart timing harness (``benchmarks/quickstart_time.py``): its environments and
one ``--quick`` run. Harness correctness only: no assertion on a timing."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling `common`
    spec = importlib.util.spec_from_file_location("quickstart_time", BENCHMARKS /
                                                  "quickstart_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))


def test_each_setting_owns_the_openmp_variables(harness, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the caller's own choice must not leak
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    old = harness.setting_environment("old", 2)
    assert old["OMP_NUM_THREADS"] == "2" and "OMP_WAIT_POLICY" not in old
    new = harness.setting_environment("new", 2)
    assert not {"OMP_NUM_THREADS", "OMP_WAIT_POLICY"} & set(new)  # the example chooses
    assert harness.setting_environment("one-thread", 2)["OMP_NUM_THREADS"] == "1"
    active = harness.setting_environment("active", 2)
    assert active["OMP_WAIT_POLICY"] == "ACTIVE" and "OMP_NUM_THREADS" not in active
    with pytest.raises(ValueError, match="expected a setting"):
        harness.setting_environment("fast", 2)


@pytest.mark.slow  # two Python processes and one quick training: ~15 s
def test_quick_run_writes_a_row_per_cell(harness, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))  # the child reads the same data
    rows = harness.main(["--quick", "--settings", "new", "--loads", "quiet",
                         "--output-dir", str(tmp_path)])
    (row,) = rows
    assert (row["setting"], row["load"], row["status"]) == ("new", "quiet", "ok")
    assert row["seconds"] > 0 and float(row["test_MAE"]) > 0
    assert "setting" in capsys.readouterr().out
    payload = json.loads((tmp_path / "quickstart_time_quick.json").read_text())
    assert payload["settings"]["default_threads"] >= 1 and payload["rows"] == rows


def test_unknown_names_are_refused(harness):
    with pytest.raises(SystemExit):
        harness.main(["--settings", "old,fast"])
