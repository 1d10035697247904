"""Training curves from a log: the loss terms, the validation metrics, the selected epoch."""

import numpy as np
import pytest

from dhmd_graph.inspect.curves import plot_training_curves, training_curves
from dhmd_graph.inspect.edges import edge_history

LOG = [
    {"epoch": 1, "lr": 1e-3, "train/task": 2.0, "train/loss": 3.0, "train/gd/homogeneous/logit":
     0.5, "train/edge/homogeneous/text->audio": 0.4, "valid/MAE": 1.2, "valid/Corr": 0.1,
     "improved": True, "time_s": 2.0},
    {"epoch": 2, "lr": 1e-3, "train/task": 1.5, "train/loss": 2.2,
     "train/edge/homogeneous/text->audio": 0.5, "valid/MAE": 1.0, "valid/Corr": 0.3,
     "improved": True, "time_s": 2.0},
    {"epoch": 3, "lr": 5e-4, "train/task": 1.4, "train/loss": 2.1, "train/gd/homogeneous/logit":
     0.4, "train/edge/homogeneous/text->audio": 0.6, "valid/MAE": 1.1, "valid/Corr": 0.2,
     "improved": False, "time_s": 2.0},
]


def test_training_curves_reads_losses_and_metrics_not_edges_or_bookkeeping():
    curves = training_curves(LOG)
    assert list(curves.losses) == ["loss", "task", "gd/homogeneous/logit"]  # the total first
    np.testing.assert_array_equal(curves.epochs, [1, 2, 3])
    np.testing.assert_array_equal(curves.losses["task"], [2.0, 1.5, 1.4])
    np.testing.assert_array_equal(curves.losses["gd/homogeneous/logit"], [0.5, np.nan, 0.4])
    assert set(curves.valid) == {"MAE", "Corr"}
    np.testing.assert_array_equal(curves.valid["MAE"], [1.2, 1.0, 1.1])
    assert curves.best_epoch == 2


def test_training_curves_of_an_empty_log():
    curves = training_curves([])
    assert curves.losses == {} and curves.valid == {} and curves.best_epoch is None


@pytest.mark.parametrize("with_edges", [True, False])
def test_plot_training_curves_panels(with_edges):
    curves = training_curves(LOG)
    figure = plot_training_curves(curves, "MAE", edge_history(LOG) if with_edges else None)
    axes = figure.get_axes()
    assert len(axes) == (3 if with_edges else 2)
    assert axes[0].get_yscale() == "log"  # every loss is positive
    assert "MAE" in axes[1].get_title()
    assert [line.get_label() for line in axes[0].get_lines()][:3] == [
        "loss", "task", "gd/homogeneous/logit"]
    selected = [line for line in axes[1].get_lines() if line.get_label() == "selected epoch"]
    assert len(selected) == 1 and list(selected[0].get_xdata()) == [2, 2]


def test_plot_training_curves_says_when_the_monitor_is_missing():
    figure = plot_training_curves(training_curves(LOG), "Accuracy")
    assert "not in the log" in figure.get_axes()[1].get_title()
