"""Model selection, the plateau scheduler and early stopping follow the monitored metric's
direction."""

import numpy as np
import pytest
from boring import DIMS, adam_on_plateau, make_trainer, random_splits, read_log, tiny_config
from torch import Tensor, nn

from dhmd_graph.data import MultimodalBatch, MultimodalDataset, collate
from dhmd_graph.metrics import metrics_for
from dhmd_graph.train import TrainConfig, Trainer, seed_everything
from dhmd_graph.train.distributed import setup_distributed
from dhmd_graph.train.trainer import predict


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


# A classification task through the same loop: class labels, (B, C) class scores. ########

class BoringClassifier(nn.Module):
    """A linear classifier on the length-masked mean of each modality."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in DIMS.items()})

    def forward(self, batch: MultimodalBatch) -> Tensor:
        out = 0.0
        for modality, head in self.heads.items():
            mask = batch.mask(modality).unsqueeze(-1)  # (B, T, 1)
            out = out + head((batch.features[modality] * mask).sum(1) / mask.sum(1))  # (B, C)
        return out

    def training_step(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        labels = batch.labels
        if labels.is_floating_point():  # multi-hot rows
            loss = nn.functional.binary_cross_entropy_with_logits(self(batch), labels)
        else:
            loss = nn.functional.cross_entropy(self(batch), labels)
        return {"loss": loss}

    def predict_step(self, batch: MultimodalBatch) -> tuple[Tensor, Tensor]:
        return self(batch), batch.labels

    def configure_optimizers(self, config: TrainConfig):
        return adam_on_plateau(self, config)


def relabel(splits, to_labels, **options):
    """The same samples with other labels."""
    return {name: MultimodalDataset(split.features, split.lengths, to_labels(split.labels),
                                    split.ids, split=name, **options)
            for name, split in splits.items()}


def three_classes(scores):
    return np.digitize(scores, [-0.5, 0.5])  # (N,) in {0, 1, 2}


def test_a_classifier_trains_and_selects_on_weighted_f1(tmp_path):
    splits = relabel(random_splits(), three_classes, label_kind="class", num_classes=3)
    seed_everything(1)
    trainer = Trainer(BoringClassifier(3), tiny_config(monitor="F1_weighted", max_epochs=8),
                      splits["train"], splits["valid"], tmp_path, metrics=metrics_for("multiclass"),
                      collate_fn=collate)
    prediction, label = trainer.predict(splits["valid"])
    assert prediction.shape == (24, 3) and prediction.dtype == np.float32
    assert label.dtype == np.int64 and label.tolist() == splits["valid"].labels.tolist()
    selected = trainer.fit()
    f1 = [record["valid/F1_weighted"] for record in read_log(tmp_path / "log.jsonl")]
    assert trainer.scheduler.mode == "max"
    assert selected["best_epoch"] == int(np.argmax(f1)) + 1 and np.argmax(f1) != np.argmin(f1)
    majority = np.bincount(splits["valid"].labels).max() / len(splits["valid"])
    assert selected["valid"]["Acc"] > majority + 0.1  # the linear structure was learnt
    assert set(trainer.test(splits["test"])) == {"Acc", "UAcc", "F1_weighted", "F1_macro"}


def test_predict_keeps_multi_hot_rows():
    def two_labels(scores):
        return np.stack([scores > 0, np.abs(scores) > 1], 1).astype(np.float32)  # (N, 2)

    splits = relabel(random_splits(), two_labels, label_kind="multi_hot")
    prediction, label = predict(BoringClassifier(2), splits["valid"], setup_distributed("cpu"),
                                collate_fn=collate, batch_size=5)
    assert prediction.shape == (24, 2) and label.shape == (24, 2) and label.dtype == np.float32
    np.testing.assert_array_equal(label, splits["valid"].labels)
    assert set(metrics_for("multilabel")(prediction, label)) >= {"0_WAcc", "1_F1", "Avg_F1"}
