"""The routing switches wired through DHMD and its objective."""

import pytest
import torch

from dhmd_graph.config import DictionaryConfig, GraphConfig
from dhmd_graph.losses import edge_target_loss, supervised_contrastive_loss, task_errors
from dhmd_graph.model import DHMD, dhmd_objective
from dhmd_graph.nn import modality_graph

from .test_model import check_training_step, make_batch, tiny_config

LENGTHS = {"text": [5, 4, 6], "audio": [4, 3, 5], "vision": [3, 6, 2]}
SPACES = ("homogeneous", "heterogeneous")


def _both(key, value):
    return [f"{space}_graph.{key}={value}" for space in SPACES]


ROUTING = [*_both("scorer", "pairwise"), *_both("scorer_input", "statistics"),
           *_both("edge_target", "error_gain"), *_both("loss_trains_weights", "false"),
           *_both("prior_schedule", "linear"), *_both("prior_anneal_steps", "4"),
           "dictionary.contrastive_input=representation",
           "dictionary.contrastive_positives=label",
           "dictionary.contrastive_cross_modal=homogeneous"]


def test_every_switch_on_trains_every_parameter():
    torch.manual_seed(0)
    config = tiny_config(*ROUTING)
    model = DHMD(config)
    batch = make_batch(config, LENGTHS)
    logs = check_training_step(model, batch)
    for space in SPACES:
        assert f"edge/{space}/target" in logs
        assert model.spaces[space].graph.scorer == "pairwise"
        assert model.spaces[space].graph.context_channels == 3 * (
            config.width if space == "homogeneous" else 2 * config.width)


def test_objective_adds_the_switched_terms_with_their_weights():
    torch.manual_seed(0)
    config = tiny_config(*ROUTING, *_both("edge_target_weight", "0.7"))
    model = DHMD(config).eval()
    batch = make_batch(config, LENGTHS)
    output = model(batch)
    scales = {"homogeneous": 0.25, "heterogeneous": 1.0}
    terms = dhmd_objective(output, batch, config, prior_scales=scales)
    graph = modality_graph(3, 3)
    expected = terms["task"] + 0.1 * (terms["reconstruction"] + terms["cycle"]) \
        + 0.01 * terms["orthogonality"]
    for space, values in output.spaces.items():
        expected = expected + 0.05 * (terms[f"gd/{space}/logit"]
                                      + 10 * terms.get(f"gd/{space}/repr", 0)
                                      + 10 * scales[space] * terms[f"gd/{space}/reg"])
        errors = task_errors(values.logits, batch.labels).flatten()
        edges = values.edges
        target = edge_target_loss(edges.learned, errors, edges.edge_index,
                                  graph.batch[edges.edge_index[1]], 3, graph.batch,
                                  "error_gain", 0.5)
        torch.testing.assert_close(terms[f"edge/{space}/target"], target)
        contrastive = supervised_contrastive_loss(
            values.representation, batch.labels, output.present, 0.1, 0.5,
            cross_modal=space == "homogeneous")
        torch.testing.assert_close(terms[f"ctr/{space}"], contrastive)
        expected = expected + 0.7 * target + 0.05 * contrastive
    torch.testing.assert_close(terms["loss"], expected)


@pytest.mark.parametrize("trains", [True, False])
def test_loss_trains_weights_decides_whether_gd_loss_reaches_the_scorer(trains):
    torch.manual_seed(0)
    config = tiny_config(*_both("loss_trains_weights", str(trains).lower()))
    model = DHMD(config)
    batch = make_batch(config, LENGTHS)
    terms = dhmd_objective(model(batch), batch, config)
    scorer = model.spaces["homogeneous"].graph.lin_edge.weight
    (grad,) = torch.autograd.grad(terms["gd/homogeneous/logit"], scorer, allow_unused=True)
    assert (grad is not None and grad.abs().sum() > 0) == trains


def test_linear_prior_fades_over_training_batches_and_is_saved():
    torch.manual_seed(0)
    config = tiny_config(*_both("prior_schedule", "linear"), *_both("prior_anneal_steps", "2"))
    model = DHMD(config)
    batch = make_batch(config, LENGTHS)
    weights = []
    for _ in range(3):
        assert "training_batches" in model.state_dict()
        scale = float(model.prior_scales()["homogeneous"])
        out = model.eval()(batch)
        edges = out.homogeneous.edges
        torch.testing.assert_close(edges.weight, edges.learned + scale * edges.prior)
        weights.append(scale)
        model.train().training_step(batch)
    assert weights == [1.0, 0.5, 0.0]
    assert int(model.training_batches) == 3 and float(model.prior_scales()["homogeneous"]) == 0
    # the default keeps its state dict: no counter
    assert "training_batches" not in DHMD(tiny_config()).state_dict()
    assert DHMD(tiny_config()).prior_scales() == {"homogeneous": 1.0, "heterogeneous": 1.0}


@pytest.mark.parametrize("cls, field, value", [
    (GraphConfig, "scorer", "mlp"), (GraphConfig, "scorer_input", "variance"),
    (GraphConfig, "edge_target", "agreement"), (GraphConfig, "prior_schedule", "cosine"),
    (GraphConfig, "prior_anneal_steps", 0), (GraphConfig, "edge_target_temperature", 0.0),
    (GraphConfig, "loss_trains_weights", "no"),
    (DictionaryConfig, "contrastive_input", "features"),
    (DictionaryConfig, "contrastive_positives", "class"),
    (DictionaryConfig, "contrastive_cross_modal", "heterogeneous"),
    (DictionaryConfig, "contrastive_label_tolerance", -1.0),
])
def test_bad_switch_values_name_the_field(cls, field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        cls(**{field: value})
