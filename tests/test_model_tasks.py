"""DHMD for every task: output widths, the objective's task terms, labels checked."""

import pytest
import torch
from test_model import make_batch, tiny_config

from dhmd_graph.data.errors import DatasetError
from dhmd_graph.losses import task_loss
from dhmd_graph.metrics import metrics_for
from dhmd_graph.model import DHMD, dhmd_objective
from dhmd_graph.presets import preset

LENGTHS = {"text": [5, 4, 3, 5], "audio": [3, 3, 2, 1], "vision": [4, 2, 4, 3]}
TASKS = {  # overrides, labels of a batch of 4, metric kind
    "regression": ([], torch.tensor([1.0, -2.0, 0.5, 2.5]), "regression"),
    "multiclass": (["task=multiclass", "num_classes=3"], torch.tensor([0, 2, 1, 2]),
                   "multiclass"),
    "multilabel": (["task=multilabel", "num_classes=4"],
                   torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]]),
                   "multilabel"),
    "binary": (["task=binary"], torch.tensor([0, 1, 1, 0]), "binary"),
}


def task_batch(task: str, config):
    batch = make_batch(config, LENGTHS)
    batch.labels = TASKS[task][1]
    return batch


@pytest.mark.parametrize("task, logit_metric", [
    (task, metric) for task in TASKS for metric in ("l1", "kl")
    if not (task == "regression" and metric == "kl")])  # 'kl' needs class logits
def test_every_output_follows_the_task(task, logit_metric):
    config = tiny_config(*TASKS[task][0], f"homogeneous_graph.logit_metric={logit_metric}",
                         f"heterogeneous_graph.logit_metric={logit_metric}")
    torch.manual_seed(0)
    model = DHMD(config)
    batch = task_batch(task, config)
    output = model(batch)
    wide = config.output_channels > 1
    tail = (config.output_channels,) if wide else ()
    assert output.prediction.shape == (4, *tail)
    assert output.shared_logit.shape == (4, *tail)
    for space in output.spaces.values():
        assert space.logits.shape == (4, 3, *tail)  # GD-Unit nodes' logits are C-wide
    terms = dhmd_objective(output, batch, config)
    assert torch.isfinite(terms["loss"]) and terms["gd/homogeneous/logit"] >= 0
    terms["loss"].backward()
    head = model.spaces["homogeneous"].heads[0].out.weight
    assert head.shape[0] == config.output_channels and head.grad.abs().sum() > 0
    model.eval()
    prediction, _ = model.predict_step(batch)
    metrics = metrics_for(TASKS[task][2])(prediction.numpy(), batch.labels.numpy())
    assert metrics  # the metric function reads the prediction as it is


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "binary"])
def test_the_task_term_is_the_tasks_loss(task):
    config = tiny_config(*TASKS[task][0])
    torch.manual_seed(0)
    model = DHMD(config).eval()
    batch = task_batch(task, config)
    output = model(batch)
    terms = dhmd_objective(output, batch, config)
    labels = batch.labels
    if task == "multiclass":
        def loss(y):
            return torch.nn.functional.cross_entropy(y.reshape(-1, 3),
                                                     labels.repeat_interleave(y[0].numel() // 3),
                                                     reduction="sum") / 4
    else:
        def loss(y):
            target = labels.float().reshape(4, *([1] * (y.dim() - labels.dim())),
                                            *labels.shape[1:]).expand_as(y)
            per = torch.nn.functional.binary_cross_entropy_with_logits(y, target,
                                                                       reduction="none")
            return (per.mean(-1) if task == "multilabel" else per).sum() / 4
    expected = (loss(output.prediction) + loss(output.shared_logit)
                + loss(output.homogeneous.logits) + loss(output.heterogeneous.logits))
    assert terms["task"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_class_weights_weigh_the_task_term():
    config = tiny_config(*TASKS["multiclass"][0])
    heavy = tiny_config(*TASKS["multiclass"][0], "class_weights=[1, 1, 3]")
    torch.manual_seed(0)
    model = DHMD(config).eval()
    batch = task_batch("multiclass", config)
    output = model(batch)
    plain = dhmd_objective(output, batch, config)["task"]
    weighted = dhmd_objective(output, batch, heavy)["task"]
    # Samples 1 and 3 are class 2: their terms count three times.
    keep = batch.labels == 2
    part = sum(task_loss(y[keep], batch.labels[keep], present, task="multiclass")
               for y, present in ((output.prediction, None), (output.shared_logit, None),
                                  (output.homogeneous.logits, output.present[keep]),
                                  (output.heterogeneous.logits, output.present[keep])))
    assert weighted.item() == pytest.approx(plain.item() + 2 * part.item() * 2 / 4, rel=1e-5)


@pytest.mark.parametrize("task, labels", [
    ("multiclass", torch.tensor([0, 3, 1, 2])),  # class 3 of a 3-class model
    ("multiclass", torch.tensor([0.0, 1.0, 1.0, 2.0])),  # float scores
    ("multilabel", torch.ones(4, 3)),  # 3 labels for a 4-label model
    ("binary", torch.tensor([0, 1, 2, 0])),
    ("regression", torch.tensor([0, 1, 2, 0])),  # class indices for a regression model
])
def test_labels_of_another_task_are_a_clear_error(task, labels):
    config = tiny_config(*TASKS[task][0])
    batch = make_batch(config, LENGTHS)
    batch.labels = labels
    with pytest.raises(DatasetError, match=f"labels do not fit the model's task '{task}'"):
        DHMD(config)(batch)


def test_task_presets_build_their_task():
    expected = {"iemocap4": ("multilabel", 4), "iemocap6": ("multiclass", 6),
                "mosei_emotions": ("multilabel", 6), "humour": ("binary", None),
                "sarcasm": ("binary", None), "mosei": ("regression", None)}
    for name, (task, classes) in expected.items():
        config = preset(name)
        assert (config.task, config.num_classes) == (task, classes)
    assert "task='multiclass', num_classes=6" in repr(DHMD(tiny_config(
        "task=multiclass", "num_classes=6")))
