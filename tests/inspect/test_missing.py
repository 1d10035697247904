import numpy as np
import pytest
import torch

from dhmd_graph.data import collate
from dhmd_graph.inspect.missing import (
    evaluate_subsets,
    mean_table,
    modality_subsets,
    predict_subsets,
    present_mask,
    subset_name,
)
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.train import predict
from dhmd_graph.train.distributed import setup_distributed


@pytest.mark.parametrize("count", [2, 3, 4])
def test_modality_subsets_are_every_non_empty_subset(count):
    names = ["text", "audio", "vision", "face"][:count]
    subsets = modality_subsets(names)
    assert len(subsets) == 2**count - 1
    assert len({frozenset(s) for s in subsets}) == len(subsets)
    assert subsets[0] == tuple(names)
    assert [len(s) for s in subsets] == sorted((len(s) for s in subsets), reverse=True)


def test_present_mask():
    mask = present_mask(["text", "audio", "vision"], ["vision", "text"], 2)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, False, True]] * 2
    with pytest.raises(ValueError, match="non-empty"):
        present_mask(["text", "audio"], ["face"], 2)
    with pytest.raises(ValueError, match="non-empty"):
        present_mask(["text", "audio"], [], 2)


def test_every_subset_is_a_row_and_the_full_set_matches_the_trainer(trained_model, loader):
    table = evaluate_subsets(trained_model, loader)
    assert list(table) == [subset_name(s) for s in modality_subsets(trained_model.modalities)]
    assert len(table) == 2**3 - 1
    # The full set is what the trainer's (and `dhmd eval`'s) prediction gives.
    prediction, label = predict(trained_model, loader.dataset, setup_distributed("cpu"),
                                collate_fn=collate, batch_size=5)
    assert table["text+audio+vision"] == regression_metrics(prediction, label)
    assert len({row["MAE"] for row in table.values()}) > 1, "subsets change the predictions"
    # A dataset is batched internally, with the same result.
    assert evaluate_subsets(trained_model, loader.dataset) == table


def test_mean_table():
    tables = [{"text": {"MAE": 1.0, "Corr": 0.5}}, {"text": {"MAE": 2.0, "Corr": 0.1}}]
    assert mean_table(tables) == {"text": {"MAE": 1.5, "Corr": pytest.approx(0.3)}}


def test_predictions_ignore_the_features_of_absent_modalities(trained_model, loader):
    subsets = [("text",), ("audio", "vision")]
    predictions, labels = predict_subsets(trained_model, loader, subsets)
    noisy = []
    for batch in loader:
        batch.features["vision"] = torch.randn_like(batch.features["vision"]) * 10
        noisy.append(batch)
    changed, _ = predict_subsets(trained_model, noisy, subsets)
    np.testing.assert_allclose(changed["text"], predictions["text"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(changed["audio+vision"], predictions["audio+vision"])
    assert labels.shape == (len(loader.dataset),)
