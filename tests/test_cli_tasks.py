"""Every task trains end to end from the CLI, on synthetic task profiles and on tiny files of
each format with class labels, and is evaluated and inspected with the task's metrics."""

import json
import pickle

import numpy as np
import pytest

from dhmd_graph.cli import EXIT_BAD_INPUT, main
from dhmd_graph.presets import PRESETS
from dhmd_graph.protocols import PROTOCOLS

TASK_PRESETS = tuple(name for name, p in PROTOCOLS.items() if p.synthetic == "task")

TINY = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
        "model.encoder.memory_layers=1", "model.dictionary.atoms=4", "train.max_epochs=1",
        "train.batch_size=4", "train.accumulation_steps=1"]
EXPECTED = {  # preset: task, num_classes, the selection metric
    "iemocap4": ("multilabel", 4, "Avg_F1"),
    "iemocap6": ("multiclass", 6, "F1_weighted"),
    "mosei_emotions": ("multilabel", 6, "Avg_WAcc"),
    "humour": ("binary", None, "Acc"),
    "sarcasm": ("binary", None, "F1_weighted"),
}


def test_every_protocol_has_a_preset():
    assert set(PRESETS) == set(PROTOCOLS) == {"mosi", "mosei", "sims", *TASK_PRESETS}


def train(data, run, *options):
    return main(["train", "--data", str(data), "--out", str(run), "--seeds", "3", *options,
                 "--set", *TINY])


@pytest.mark.parametrize("preset", TASK_PRESETS)
def test_each_task_preset_trains_and_evaluates(preset, tmp_path, capsys):
    data = tmp_path / f"{preset}.pkl"
    assert main(["synth", str(data), "--profile", preset, "--sizes", "12,8,8"]) == 0
    run = tmp_path / "run"
    assert train(data, run, "--preset", preset) == 0
    task, classes, monitor = EXPECTED[preset]
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["task"], config["model"]["num_classes"]) == (task, classes)
    assert config["train"]["monitor"] == monitor
    selected = json.loads((run / "seed_3" / "metrics.json").read_text())
    assert monitor in selected["valid"] and monitor in selected["test"]
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "valid", "--subsets"]) == 0
    out = capsys.readouterr().out
    assert monitor in out and "text+audio+vision" in out


def test_inspect_a_classification_run(tmp_path, capsys):
    data = tmp_path / "iemocap6.pkl"
    main(["synth", str(data), "--profile", "iemocap6", "--sizes", "12,12,8"])
    run = tmp_path / "run"
    assert train(data, run, "--preset", "iemocap6") == 0
    assert main(["inspect", str(run), "--pca"]) == 0
    report = (run / "seed_3" / "inspect-valid" / "report.md").read_text()
    assert "coloured by modality (left) and class (right)" in report
    assert "With all modalities the F1_weighted is" in report
    assert (run / "seed_3" / "inspect-valid" / "spaces.png").is_file()
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(run), "--out", str(out), "--device", "cpu"]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert "prediction_5" in header and "logit/homogeneous/text_5" in header  # 6 classes


def mult_file(path, labels, rng):
    n = len(labels)
    split = {"text": rng.normal(size=(n, 5, 6)).astype(np.float32),
             "audio": rng.normal(size=(n, 5, 3)).astype(np.float32),
             "vision": rng.normal(size=(n, 5, 4)).astype(np.float32), "labels": labels}
    path.write_bytes(pickle.dumps({"train": split, "valid": split, "test": split}))
    return path


def test_mult_iemocap_layout_trains_as_four_binary_tasks(tmp_path):
    rng = np.random.default_rng(0)
    emotion = np.arange(8) % 4
    labels = np.eye(2, dtype=np.float32)[np.eye(4, dtype=np.int64)[emotion]]  # (8, 4, 2)
    data = mult_file(tmp_path / "iemocap.pkl", labels, rng)
    run = tmp_path / "run"
    assert train(data, run) == 0  # no preset: mosei's architecture, the task from the data
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["task"], config["model"]["num_classes"]) == ("multilabel", 4)
    # The mosei preset names no multi-label protocol: the generic metrics, label names kept.
    test = json.loads((run / "seed_3" / "metrics.json").read_text())["test"]
    assert {"neutral_F1", "angry_WAcc", "Avg_F1"} <= set(test)


def test_mult_class_labels_train_multiclass_and_a_wrong_class_count_is_refused(tmp_path,
                                                                                capsys):
    rng = np.random.default_rng(1)
    data = mult_file(tmp_path / "four.pkl", np.arange(8, dtype=np.int64) % 4, rng)
    run = tmp_path / "run"
    assert train(data, run, "--preset", "iemocap6") == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["task"], config["model"]["num_classes"]) == ("multiclass", 4)
    capsys.readouterr()
    six = tmp_path / "six"
    assert train(data, six, "--set", "model.task=multiclass", "model.num_classes=6") == (
        EXIT_BAD_INPUT)
    err = capsys.readouterr().err
    assert "DHMDConfig.num_classes: expected 4 (the data has 4 classes), found 6" in err
    assert "Traceback" not in err and not six.exists()  # refused before training


def test_mmsa_classification_labels_train_three_class_sentiment(tmp_path, capsys):
    rng = np.random.default_rng(2)
    n = 9
    split = {"id": np.array([f"v{i}$_$0" for i in range(n)], dtype=object),
             "text": rng.normal(size=(n, 4, 6)).astype(np.float32),
             "audio": rng.normal(size=(n, 4, 2)).astype(np.float32),
             "vision": rng.normal(size=(n, 4, 5)).astype(np.float32),
             "regression_labels": rng.uniform(-3, 3, n),
             "classification_labels": (np.arange(n) % 3).astype(np.float32)}
    data = tmp_path / "mosi.pkl"
    data.write_bytes(pickle.dumps({"train": split, "valid": split, "test": split}))
    run = tmp_path / "run"
    assert train(data, run, "--preset", "mosi", "--set", "model.task=multiclass",
                 "model.num_classes=3") == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["monitor"] == "F1_score_3"  # MMSA's 3-class keys
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0  # reads the classification labels again
    assert "Has0_acc_2" in capsys.readouterr().out
    # The same file trains regression on its regression labels by default.
    assert train(data, tmp_path / "regression", "--preset", "mosi") == 0


def test_mosei_emotions_from_computational_sequences(tmp_path, capsys):
    """CMU-MOSEI's 7-column labels sequence, aligned through a recipe with
    ``label_column='mosei_emotions'``: six multi-hot emotions, trained from the CLI."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    videos = {"train": ["vid_a", "vid_b"], "valid": ["vid_c"], "test": ["vid_d"]}
    segments = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    frames = np.stack([np.arange(0, 4.0, 0.25), np.arange(0.25, 4.01, 0.25)], axis=1)
    rows = {}
    for video in sum(videos.values(), []):
        intensities = rng.choice([0.0, 0.0, 0.33, 1.0, 3.0], size=(4, 6))
        rows[video] = np.column_stack([rng.uniform(-3, 3, 4), intensities])
    sequences = {"labels": {v: (r, segments) for v, r in rows.items()}}
    for name, width in {"text": 5, "audio": 4, "vision": 3}.items():
        sequences[name] = {v: (rng.normal(size=(len(frames), width)), frames) for v in rows}
    for name, entries in sequences.items():
        with h5py.File(tmp_path / f"{name}.csd", "w") as handle:
            for video, (features, intervals) in entries.items():
                handle[f"{name}/data/{video}/features"] = features
                handle[f"{name}/data/{video}/intervals"] = intervals
            handle[name].create_group("metadata")
    (tmp_path / "folds.json").write_text(json.dumps(videos))
    recipe = tmp_path / "emotions.json"
    recipe.write_text(json.dumps({
        "labels": "labels.csd", "folds": "folds.json", "label_column": "mosei_emotions",
        "features": {name: f"{name}.csd" for name in ("text", "audio", "vision")}}))

    from dhmd_graph.data import load_dataset
    train_split = load_dataset(recipe)["train"]
    assert (train_split.label_kind, train_split.num_classes) == ("multi_hot", 6)
    expected = np.concatenate([rows["vid_a"][:, 1:], rows["vid_b"][:, 1:]]) > 0
    np.testing.assert_array_equal(train_split.labels, expected.astype(np.float32))

    run = tmp_path / "run"
    assert train(recipe, run, "--preset", "mosei_emotions") == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["task"], config["model"]["num_classes"]) == ("multilabel", 6)
    assert "Avg_WAcc" in json.loads((run / "seed_3" / "metrics.json").read_text())["test"]
