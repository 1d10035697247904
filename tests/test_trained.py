"""Runs as files: the checked run configuration (Experiment) and the trained model of a
checkpoint (TrainedRun)."""

import json

import pytest
import torch

from dhmd_graph.config import apply_overrides, config_to_dict
from dhmd_graph.experiment import Experiment
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset
from dhmd_graph.train import CheckpointError, RunFolderError, save_checkpoint
from dhmd_graph.train.run_folder import RunFolder
from dhmd_graph.trained import TrainedRun

TINY = ["width=8", "num_heads=2", "encoder.num_layers=1", "encoder.memory_layers=1",
        "dictionary.atoms=4"]


@pytest.fixture(scope="module")
def tiny():
    config = apply_overrides(preset("mosei"), TINY)
    torch.manual_seed(0)
    return config, DHMD(config)


def load_model(target):
    run = TrainedRun.load(target)
    return run.model, run.meta


def _run(path, config, model, meta=()):
    run = RunFolder(path)
    run.seed(1).path.mkdir(parents=True)
    saved = {"preset": "mosei", "aligned": True, "data": "d.pkl", "model": config_to_dict(config)}
    run.write_config({"train": {}, **saved})
    save_checkpoint({"model": model.state_dict(), "meta": {**saved, **dict(meta)}, "epoch": 3,
                     "seed": 1}, run.seed(1).best)
    return run


def test_load_model_of_a_run(tiny, tmp_path):
    config, model = tiny
    run = _run(tmp_path / "run", config, model)
    loaded, meta = load_model(run.path)
    assert not loaded.training and (meta["epoch"], meta["seed"], meta["data"]) == (3, 1, "d.pkl")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert load_model(run.seed(1).path)[1]["seed"] == 1


def test_a_checkpoint_declaring_another_model_than_its_run(tiny, tmp_path):
    config, model = tiny
    other = config_to_dict(apply_overrides(config, ["width=16", "num_heads=2"]))
    run = _run(tmp_path / "run", config, model, meta={"model": other})
    with pytest.raises(CheckpointError, match=r"model other than the run's config.json "
                                              r"\(width: 16 instead of 8\)"):
        load_model(run.path)


@pytest.mark.parametrize("meta, message", [
    ({"model": None}, "its meta has no model configuration"),
    ({"data": 5}, "its meta 'data' is 5"),
    ({"model": {"modalities": "x"}}, "its model configuration is invalid: DHMDConfig.modalities"),
])
def test_bad_meta(tiny, tmp_path, meta, message):
    config, model = tiny
    path = tmp_path / "alone.pt"
    full = {"preset": "mosei", "data": "d.pkl", "model": config_to_dict(config), **meta}
    save_checkpoint({"model": model.state_dict(), "meta": full}, path)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)
    with pytest.raises(RunFolderError, match="no checkpoint"):
        load_model(tmp_path / "nothing")


@pytest.mark.parametrize("content, message", [
    ({"preset": "mosei", "colour": 1}, r"unknown key\(s\) \['colour'\]"),
    ({"aligned": 1}, "key 'aligned': expected true or false, found 1"),
    ({"data": ["a"]}, "key 'data': expected a dataset path or null"),
    ({"train": {"lr": "0.1"}}, "TrainConfig.lr: expected a number"),
    ({"model": {"width": 8}}, "lacks the required key"),
    ([1], "expected a JSON object"),
])
def test_an_experiment_file_names_the_file_and_key(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        Experiment.assemble(file=path)
    assert str(path) in str(info.value)
    path.write_bytes(b"\xff")
    with pytest.raises(ValueError, match="not a JSON file"):
        Experiment.assemble(file=path)
