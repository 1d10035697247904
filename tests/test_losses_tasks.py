"""The task losses of the classification tasks and the softened KL, by hand."""

import math

import pytest
import torch

from dhmd_graph.losses import graph_distillation_loss, margin_loss, softened_kl, task_loss


def test_softened_kl_softmax_by_hand():
    student = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [2.0, 0.0]])
    # Row 0: p_t = (3/4, 1/4), p_s = (1/2, 1/2): KL = 3/4 log(3/2) + 1/4 log(1/2).
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert softened_kl(student, teacher).tolist() == pytest.approx([expected, 0.0], abs=1e-6)
    # tau = 2 on doubled logits gives the same distributions, times tau^2 = 4.
    assert softened_kl(2 * student, 2 * teacher, temperature=2.0)[0].item() == pytest.approx(
        4 * expected, abs=1e-6)
    # A shift shared by all logits costs nothing.
    assert softened_kl(student + 5.0, student)[0].item() == pytest.approx(0.0, abs=1e-6)


def test_softened_kl_sigmoid_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # sigma = 3/4 and 1/2
    # Label 0: Bernoulli(3/4) vs Bernoulli(1/2); label 1: equal. Mean over the two labels.
    label0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    value = softened_kl(student, teacher, activation="sigmoid").item()
    assert value == pytest.approx(label0 / 2, abs=1e-6)
    with pytest.raises(ValueError, match="activation must be one of"):
        softened_kl(student, teacher, activation="tanh")


def test_graph_distillation_kl_uses_the_temperature():
    values = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # node 0 teaches node 1
    edge_index, weight, batch = torch.tensor([[0], [1]]), torch.tensor([0.5]), torch.tensor([0, 0])
    loss = graph_distillation_loss(values, edge_index, weight, batch, "kl", temperature=1.0)
    expected = 0.5 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_task_loss_multiclass_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # (B=2, C=2)
    labels = torch.tensor([1, 0])
    # -log(1/2) and -log(3/4), averaged over the batch.
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert task_loss(logits, labels, task="multiclass").item() == pytest.approx(expected)
    weighted = task_loss(logits, labels, task="multiclass", class_weights=torch.tensor([1.0, 2.0]))
    assert weighted.item() == pytest.approx((2 * math.log(2.0) - math.log(0.75)) / 2)
    # Per modality (B, M, C), modality 1 absent in sample 0.
    per_modality = torch.stack([logits, logits], dim=1)
    present = torch.tensor([[True, False], [True, True]])
    value = task_loss(per_modality, labels, present, task="multiclass").item()
    assert value == pytest.approx((math.log(2.0) - 2 * math.log(0.75)) / 2)


def test_task_loss_multilabel_and_binary_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # sigma = 1/2 and 3/4
    labels = torch.tensor([[1.0, 0.0]])
    # -log(1/2) and -log(1/4), mean over the 2 labels; pos_weight 2 doubles the first.
    assert task_loss(logits, labels, task="multilabel").item() == pytest.approx(
        (math.log(2.0) + math.log(4.0)) / 2)
    assert task_loss(logits, labels, task="multilabel",
                     class_weights=torch.tensor([2.0, 5.0])).item() == pytest.approx(
        (2 * math.log(2.0) + math.log(4.0)) / 2)
    binary = task_loss(torch.tensor([math.log(3.0), 0.0]), torch.tensor([1, 0]), task="binary")
    assert binary.item() == pytest.approx((-math.log(0.75) + math.log(2.0)) / 2)


def test_margin_loss_on_label_vectors():
    embeddings = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]])  # (B=3, M=1, 2)
    one_hot = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Anchors 0 and 1 (positives of each other) have negative 2, two apart: hinge
    # 0.15 * 2 - 1 + 0 < 0, so zero; moving the negative onto them gives 0.3 each.
    assert margin_loss(embeddings, one_hot).item() == pytest.approx(0.0)
    same_place = torch.ones(3, 1, 2)
    assert margin_loss(same_place, one_hot).item() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="task: expected one of"):
        task_loss(torch.zeros(2), torch.zeros(2), task="ordinal")
