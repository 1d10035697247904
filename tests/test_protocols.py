"""The benchmark protocols: a preset chosen for the data must read the data's kind of label
(a class preset on scores, or a sentiment preset on classes, is refused before anything is
written)."""

import csv
import json

import numpy as np
import pytest

from dhmd_graph.cli import EXIT_BAD_INPUT, main
from dhmd_graph.errors import ConfigError
from dhmd_graph.protocols import check_label_kind, metric_kind

TINY = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
        "model.encoder.memory_layers=1", "model.dictionary.atoms=4", "train.max_epochs=1",
        "train.batch_size=4", "train.accumulation_steps=1", "train.progress=false"]
SPLITS = ["train"] * 6 + ["valid"] * 3 + ["test"] * 3


def folder(path, labels, description=None):
    """A plain-arrays folder of 12 samples with text, audio and vision and ``labels``."""
    rng = np.random.default_rng(0)
    path.mkdir()
    for name, width in {"text": 4, "audio": 3, "vision": 2}.items():
        np.save(path / f"{name}.npy", rng.normal(size=(12, 2, width)).astype(np.float32))
    with (path / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "split", "label"])
        writer.writerows([f"clip{i}", split, labels[i]] for i, split in enumerate(SPLITS))
    if description is not None:
        (path / "dataset.json").write_text(json.dumps(description))
    return path


SCORES = [f"{(i % 7) - 3}.5" for i in range(12)]
CLASSES = [str(i % 6) for i in range(12)]


def train(data, run, *options):
    return main(["train", "--data", str(data), "--out", str(run), "--seeds", "1", *options,
                 "--set", *TINY])


@pytest.mark.parametrize("preset, labels, kind, fix", [
    ("iemocap6", SCORES, "score labels", "--preset mosi or --preset mosei or --preset sims"),
    ("humour", SCORES, "score labels", "--set model.task=regression)"),
    ("iemocap6", SCORES, "score labels", "--set model.task=regression model.num_classes=null"),
    ("mosi", CLASSES, "class labels (6 classes)", "--preset iemocap6 for these"),
    ("mosi", CLASSES, "class labels (6 classes)", "model.task=multiclass model.num_classes=6"),
])
def test_a_preset_of_another_label_kind_is_refused_before_anything_is_written(
        tmp_path, capsys, preset, labels, kind, fix):
    classes = labels is CLASSES
    data = folder(tmp_path / "data", labels, {"label_kind": "class"} if classes else None)
    run = tmp_path / "run"
    assert train(data, run, "--preset", preset) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--preset {preset} trains" in err and f"holds {kind}" in err and fix in err
    assert str(data) in err
    assert not run.exists()  # refused before the run folder is created


def test_the_data_decides_without_a_preset_and_an_explicit_task_is_kept(tmp_path):
    data = folder(tmp_path / "data", CLASSES, {"label_kind": "class"})
    assert train(data, tmp_path / "default") == 0  # no preset named: the data's task
    config = json.loads((tmp_path / "default" / "config.json").read_text())
    assert (config["model"]["task"], config["model"]["num_classes"]) == ("multiclass", 6)
    results = json.loads((tmp_path / "default" / "results.json").read_text())
    classes = results["classes"]  # the test split per class, for the one seed
    assert classes["test"]["classes"] == [str(c) for c in range(6)]
    assert np.sum(classes["test"]["confusion_matrix"]) == 3  # the 3 test samples
    assert classes["seeds"]["1"] == classes["test"]
    assert set(classes["test"]["per_class"]["0"]) == {"precision", "recall", "F1", "support"}
    scores = folder(tmp_path / "scores", SCORES)
    run = tmp_path / "explicit"
    assert train(scores, run, "--preset", "iemocap6", "--set", "model.task=regression",
                 "model.num_classes=null") == 0
    assert json.loads((run / "config.json").read_text())["model"]["task"] == "regression"
    # The fix the refusal of --preset mosi on classes names, as printed:
    assert train(data, tmp_path / "classes", "--preset", "mosi", "--set", "model.task=multiclass",
                 "model.num_classes=6") == 0


def test_check_label_kind_allows_the_three_class_sentiment_variant():
    check_label_kind("mosi", "class", 3)  # MMSA's classification_labels: sentiment3
    assert metric_kind("multiclass", 3, "mosi") == "sentiment3"
    check_label_kind("iemocap6", "class", 4)  # the kind fits; the class count is the data's
    check_label_kind("iemocap4", "multi_hot", 4)
    with pytest.raises(ConfigError, match="holds multi-hot labels .6 labels.*--preset "
                       "mosei_emotions"):
        check_label_kind("sarcasm", "multi_hot", 6, "data.pkl")
    with pytest.raises(ConfigError, match="class labels .4 classes.*--preset iemocap6"):
        check_label_kind("sims", "class", 4)
