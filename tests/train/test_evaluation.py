import pytest
import torch
from torch import nn

from dhmd_graph.train import evaluating


@pytest.mark.parametrize("training", [True, False])
def test_evaluating_sets_eval_without_gradients_and_restores_the_mode(training):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.train(training)
    x = torch.ones(1, 2, requires_grad=True)
    with evaluating(model) as inside:
        assert inside is model
        assert not model.training and not model[1].training
        assert not torch.is_grad_enabled() and not model(x).requires_grad
    assert model.training == training and model[1].training == training
    assert torch.is_grad_enabled()


def test_evaluating_restores_the_mode_when_the_block_raises():
    model = nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError, match="inside"), evaluating(model):
        raise RuntimeError("inside")
    assert model.training and torch.is_grad_enabled()
