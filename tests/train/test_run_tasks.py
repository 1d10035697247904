"""Every task trains end to end from Python on tiny files: load_splits -> fit_inputs ->
fit_task -> run_seeds with the task's metrics and selection metric."""

import json
import pickle

import numpy as np
import pytest

from dhmd_graph.config import apply_overrides
from dhmd_graph.data import collate
from dhmd_graph.data.loading import load_dataset, modality_inputs
from dhmd_graph.data.synthetic_tasks import write_synthetic_task
from dhmd_graph.experiment import fit_inputs, fit_task, load_splits
from dhmd_graph.metrics import default_monitor, task_metric_kind, task_metrics
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset
from dhmd_graph.train import TrainConfig, run_seeds

SMALL = ["width=8", "num_heads=2", "encoder.num_layers=1", "encoder.memory_layers=1",
         "dictionary.atoms=4"]
SIZES = {"train": 12, "valid": 8, "test": 8}


def mmsa_file(path, rng):
    n = 9
    split = {"id": np.array([f"v{i}$_$0" for i in range(n)], dtype=object),
             "text": rng.normal(size=(n, 4, 6)).astype(np.float32),
             "audio": rng.normal(size=(n, 4, 2)).astype(np.float32),
             "vision": rng.normal(size=(n, 4, 5)).astype(np.float32),
             "regression_labels": rng.uniform(-3, 3, n),
             "classification_labels": (np.arange(n) % 3).astype(np.float32)}
    path.write_bytes(pickle.dumps({"train": split, "valid": split, "test": split}))
    return path


@pytest.mark.parametrize("source, preset_name, task, monitor", [
    ("iemocap4", "iemocap4", "multilabel", "Avg_F1"),
    ("iemocap6", "iemocap6", "multiclass", "F1_weighted"),
    ("humour", "humour", "binary", "Acc"),
    ("mmsa", "mosi", "multiclass", "F1_score_3"),
    ("mmsa", "mosi", "regression", "MAE"),
])
def test_each_task_trains_from_python(source, preset_name, task, monitor, tmp_path):
    rng = np.random.default_rng(0)
    if source == "mmsa":
        data = mmsa_file(tmp_path / "mosi.pkl", rng)
    else:
        data = write_synthetic_task(tmp_path / f"{source}.pkl", source, sizes=SIZES)
    config = apply_overrides(preset(preset_name), SMALL)
    if task == "multiclass" and source == "mmsa":  # MMSA's 3-class labels, chosen by the task
        config = apply_overrides(config, ["task=multiclass", "num_classes=3"])
    splits = load_splits(data, config)
    train = splits["train"]
    config = fit_task(fit_inputs(config, modality_inputs(splits)), train.label_kind,
                      train.num_classes)
    assert config.task == task
    kind = (config.task, config.num_classes, preset_name)
    train_config = TrainConfig(lr=1e-3, batch_size=4, accumulation_steps=1, max_epochs=2,
                               seeds=[5], monitor=default_monitor(task_metric_kind(*kind)))
    results = run_seeds(lambda: DHMD(config), splits, train_config, tmp_path / "run",
                        metrics=task_metrics(*kind, label_names=train.label_names),
                        collate_fn=collate)
    assert train_config.monitor == monitor and np.isfinite(results["mean"][monitor])
    record = json.loads((tmp_path / "run" / "seed_5" / "metrics.json").read_text())
    assert monitor in record["valid"]


def test_a_six_class_model_on_four_class_data_is_refused_before_training(tmp_path):
    rng = np.random.default_rng(1)
    split = {name: rng.normal(size=(8, 5, dim)).astype(np.float32)
             for name, dim in (("text", 6), ("audio", 3), ("vision", 4))}
    split["labels"] = np.arange(8, dtype=np.int64) % 4
    data = tmp_path / "four.pkl"
    data.write_bytes(pickle.dumps({"train": split, "valid": split, "test": split}))
    train = load_dataset(data)["train"]
    with pytest.raises(ValueError, match=r"DHMDConfig.num_classes: expected 4 \(the data has "
                       r"4 classes\), found 6"):
        fit_task(preset("iemocap6"), train.label_kind, train.num_classes, ["num_classes"])
