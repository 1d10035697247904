"""The runnable example, in its quick mode (as CI runs it)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dhmd_graph import MultimodalDataset

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mosei_dhmd.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mosei_dhmd", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_mode_trains_and_prints_the_table(example, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))  # synthetic data goes here
    assert example.main(["--quick", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "mean ± std" in out and "seed 1111" in out
    assert "predict the training mean" in out and "majority sign" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert f"{results['mean']['MAE']:.4f}" in out
    assert (tmp_path / "run" / "seed_1111" / "best.pt").is_file()


def test_baselines(example):
    def split(labels):
        labels = np.asarray(labels, dtype=np.float32)
        n = len(labels)
        return MultimodalDataset({"a": np.zeros((n, 1, 1), np.float32)}, {"a": np.ones(n)},
                                 labels, [str(i) for i in range(n)])

    # Training mean 0.5; non-zero training labels mostly negative.
    splits = {"train": split([-1, -1, 0, 3.5]), "test": split([0.5, 1.5, -0.5, 0])}
    scores = example.baselines(splits)
    assert scores["MAE"] == pytest.approx((0 + 1 + 1 + 0.5) / 4, abs=1e-4)
    assert scores["Non0_acc_2"] == pytest.approx(1 / 3, abs=1e-4)  # only -0.5 is negative
