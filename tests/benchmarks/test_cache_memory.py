import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cache_memory.py"


@pytest.mark.slow  # five fresh interpreters that import torch and PyG: ~30 s here
def test_quick_mode_measures_every_step_and_cleans_up(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--scratch", str(scratch),
                    "--output-dir", str(tmp_path)], check=True, capture_output=True, text=True)
    results = json.loads((tmp_path / "cache_memory_quick.json").read_text())
    rows = {row["step"]: row for row in results["rows"]}
    assert list(rows) == ["baseline", "load pickle", "convert", "iterate cache"]
    assert results["settings"]["sizes"] == {"train": 16, "valid": 8, "test": 8}
    assert rows["load pickle"]["samples"] == rows["iterate cache"]["samples"] == 32
    for row in rows.values():
        assert row["peak_rss_mib"] >= rows["baseline"]["peak_rss_mib"] * 0.9 > 0
    assert 0 < rows["iterate cache"]["peak_anon_mib"] <= rows["iterate cache"]["peak_rss_mib"]
    assert results["pickle_mib"] > 0 and results["cache_mib"] > 0
    assert list(scratch.iterdir()) == []  # the pickle and cache are deleted
