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


EMOTION_EXAMPLE = EXAMPLE.with_name("emotion_dhmd.py")


@pytest.fixture(scope="module")
def emotion_example():
    spec = importlib.util.spec_from_file_location("emotion_dhmd", EMOTION_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task, monitor", [
    ("iemocap6", "F1_weighted"), ("mosei_emotions", "Avg_WAcc"), ("humour", "Acc"),
    pytest.param("iemocap4", "Avg_F1", marks=pytest.mark.slow),
    pytest.param("sarcasm", "F1_weighted", marks=pytest.mark.slow)])
def test_emotion_example_quick_mode(emotion_example, task, monitor, tmp_path, monkeypatch,
                                    capsys):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert emotion_example.main(["--quick", "--task", task, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"selected on valid {monitor}" in out and "mean ± std" in out
    assert "majority" in out and "label priors" in out and f"baselines on {monitor}" in out
    results = json.loads((run / "results.json").read_text())
    assert f"{results['mean'][monitor]:.4f}" in out
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["class_weights"] is not None  # balanced by the example


def test_emotion_example_weights_and_baselines(emotion_example):
    from dhmd_graph.metrics import metrics_for
    from dhmd_graph.presets import preset

    def split(labels, **kind):
        n = len(labels)
        return MultimodalDataset({"a": np.zeros((n, 1, 1), np.float32)}, {"a": np.ones(n)},
                                 np.asarray(labels), [str(i) for i in range(n)], **kind)

    classes = {"label_kind": "class", "num_classes": 3}
    train = split([0, 0, 0, 1, 1, 2], **classes)
    # N / (C N_c): 6 / (3 * 3), 6 / (3 * 2), 6 / (3 * 1).
    weights = emotion_example.balanced_class_weights(train, "multiclass")
    assert weights == pytest.approx([2 / 3, 1.0, 2.0])
    multi_hot = split(np.array([[1, 0], [1, 0], [1, 1], [0, 0]], np.float32),
                      label_kind="multi_hot")
    # Per label N_neg / N_pos: 1 / 3 and 3 / 1.
    assert emotion_example.balanced_class_weights(multi_hot, "multilabel") == pytest.approx(
        [1 / 3, 3.0])
    splits = {"train": train, "test": split([0, 1, 2, 0], **classes)}
    scores = emotion_example.baselines(splits, preset("iemocap6"), metrics_for("multiclass"))
    assert scores["majority"]["Acc"] == pytest.approx(0.5)  # class 0 on [0, 1, 2, 0]
    assert set(scores["label priors"]) == {"Acc", "UAcc", "F1_weighted", "F1_macro"}
    assert emotion_example.summary_keys({"happy_F1": 1, "Avg_F1": 1, "F1_micro": 1,
                                         "sad_WAcc": 1, "Acc": 1}) == ["Avg_F1", "F1_micro", "Acc"]
