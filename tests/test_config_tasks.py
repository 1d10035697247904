"""The task fields of DHMDConfig and fit_task."""

import pytest

from dhmd_graph.config import apply_overrides, config_from_dict, config_to_dict
from dhmd_graph.experiment import fit_task
from dhmd_graph.presets import preset
from dhmd_graph.tasks import task_of_labels


@pytest.mark.parametrize("overrides, match", [
    (["task=ordinal"], "DHMDConfig.task: expected one of"),
    (["task=multiclass"], "DHMDConfig.num_classes: expected an integer >= 2"),
    (["task=multiclass", "num_classes=1"], "DHMDConfig.num_classes: expected an integer >= 2"),
    (["task=multilabel", "num_classes=0"], "DHMDConfig.num_classes: expected an integer >= 1"),
    (["num_classes=3"], r"DHMDConfig.num_classes: expected None for task='regression'"),
    (["task=binary", "num_classes=2"], r"expected None for task='binary'"),
    (["class_weights=[1, 2]"], r"DHMDConfig.class_weights: expected None for task='regression'"),
    (["task=multiclass", "num_classes=3", "class_weights=[1, 2]"],
     "DHMDConfig.class_weights: expected a list of 3 finite numbers > 0"),
    (["task=binary", "class_weights=[0]"], "expected a list of 1 finite numbers > 0"),
    (["homogeneous_graph.logit_metric=kl"],
     "DHMDConfig.homogeneous_graph.logit_metric: expected a distance other than 'kl'"),
    (["task=binary", "heterogeneous_graph.logit_temperature=0"],
     "GraphConfig.logit_temperature: expected a finite number > 0"),
])
def test_task_fields_are_validated(overrides, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(preset("mosi"), overrides)


def test_task_fields_round_trip_and_output_channels():
    config = apply_overrides(preset("mosi"), ["task=multilabel", "num_classes=6",
                                              "class_weights=[1, 2, 1, 1, 3, 1]",
                                              "heterogeneous_graph.logit_metric=kl"])
    assert config_from_dict(config_to_dict(config)) == config
    assert config.output_channels == 6
    assert preset("mosi").output_channels == preset("humour").output_channels == 1


def test_dmd_reference_stays_regression():
    assert preset("mosei", reference="dmd").task == "regression"


@pytest.mark.parametrize("kind, classes, task", [
    ("score", None, ("regression", None)), ("class", 2, ("binary", None)),
    ("class", 6, ("multiclass", 6)), ("multi_hot", 4, ("multilabel", 4))])
def test_the_task_comes_from_the_labels(kind, classes, task):
    assert task_of_labels(kind, classes) == task
    fitted = fit_task(preset("mosei"), kind, classes)
    assert (fitted.task, fitted.num_classes) == task


def test_fit_task_keeps_and_checks_the_users_choice():
    six = apply_overrides(preset("iemocap4"), ["task=multiclass", "num_classes=6"])
    with pytest.raises(ValueError, match=r"DHMDConfig.num_classes: expected 4 \(the data has "
                       r"4 classes\), found 6"):
        fit_task(six, "class", 4, ["num_classes=6"])
    with pytest.raises(ValueError, match=r"DHMDConfig.task: expected a task for the data's "
                       r"labels \(scores\): 'regression', found 'multiclass'"):
        fit_task(six, "score", None, ["task=multiclass"])
    # Not kept: taken from the data.
    assert fit_task(six, "class", 4).num_classes == 4
    # Two classes with C = 2 chosen: softmax over two logits instead of one logit.
    two = apply_overrides(preset("mosei"), ["task=multiclass", "num_classes=2"])
    assert fit_task(two, "class", 2, ["num_classes"]).task == "multiclass"
    weighted = apply_overrides(preset("iemocap6"), ["class_weights=[1, 1, 1, 1, 1, 2]"])
    with pytest.raises(ValueError, match="DHMDConfig.class_weights: expected 4 weights"):
        fit_task(weighted, "class", 4)
