"""Model selection, the plateau scheduler and early stopping follow the monitored metric's
direction."""

import numpy as np
import pytest
from boring import make_trainer, random_splits, read_log, tiny_config

from dhmd_graph.train import TrainConfig


def scripted_metric(values):
    """A metric function that reports ``values`` in turn, one per validation."""
    remaining = iter(values)

    def metric(prediction, label):
        return {"score": next(remaining), "MAE": float(np.mean(np.abs(prediction - label)))}
    return metric


def test_a_larger_is_better_metric_selects_the_argmax_epoch(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(monitor="Corr"), random_splits())
    assert trainer.config.direction == "max" and trainer.scheduler.mode == "max"
    selected = trainer.fit()
    corr = [record["valid/Corr"] for record in read_log(tmp_path / "log.jsonl")]
    assert selected["best_epoch"] == int(np.argmax(corr)) + 1
    assert selected["valid"]["Corr"] == max(corr)
    assert np.argmax(corr) != np.argmin(corr)  # selecting as for MAE would pick another epoch


@pytest.mark.parametrize("mode, best_epoch, epochs, lowered", [
    ("max", 1, 3, True),  # 0.9 is never beaten: two bad epochs stop training
    ("min", 6, 6, False),  # every epoch improves: no plateau, no early stop
])
def test_scheduler_and_early_stopping_follow_the_direction(tmp_path, mode, best_epoch, epochs,
                                                           lowered):
    config = tiny_config(monitor="score", monitor_mode=mode, lr_patience=0,
                         early_stop_patience=2, max_epochs=6)
    descending = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    trainer = make_trainer(tmp_path, config, random_splits())
    trainer.metrics = scripted_metric(descending)
    selected = trainer.fit()
    log = read_log(tmp_path / "log.jsonl")
    assert len(log) == epochs and selected["best_epoch"] == best_epoch
    assert [r["improved"] for r in log] == [i + 1 == best_epoch or mode == "min"
                                            for i in range(epochs)]
    assert (log[-1]["lr"] < log[0]["lr"]) == lowered


def test_monitor_mode_auto_derives_the_direction_from_the_name():
    assert TrainConfig().direction == "min"  # MAE
    assert TrainConfig(monitor="F1_weighted").direction == "max"
    assert TrainConfig(monitor="happiness_WAcc").direction == "max"
    assert TrainConfig(monitor="MAE", monitor_mode="max").direction == "max"
    assert TrainConfig(monitor="perplexity", monitor_mode="min").direction == "min"
    with pytest.raises(ValueError, match=r"TrainConfig.monitor_mode: 'auto' needs a known "
                                         r"metric name.*'perplexity'"):
        TrainConfig(monitor="perplexity")
    with pytest.raises(ValueError, match=r"TrainConfig.monitor_mode: expected 'auto', 'min' or "
                                         r"'max', found 'up'"):
        TrainConfig(monitor_mode="up")
    assert TrainConfig().with_overrides(["monitor=Acc_3"]).direction == "max"
