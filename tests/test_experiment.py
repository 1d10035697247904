"""The experiment layer from the command line: runs that do not depend on the directory they
were started in, and exit statuses that tell a bug from bad input."""

import json
import os
from pathlib import Path

import pytest

from dhmd_graph.cli import main
from dhmd_graph.experiment import Experiment

TINY = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
        "model.encoder.memory_layers=1", "model.dictionary.atoms=4", "train.max_epochs=1",
        "train.batch_size=8", "train.accumulation_steps=1", "train.progress=false"]


@pytest.fixture
def tiny_data(tmp_path):
    from dhmd_graph.data.synthetic import write_synthetic

    return write_synthetic(tmp_path / "start" / "tiny.pkl", "mosei",
                           sizes={"train": 16, "valid": 8, "test": 8})


def test_a_run_resumes_evaluates_and_predicts_from_another_directory(tiny_data, tmp_path,
                                                                     monkeypatch, capsys):
    start, elsewhere = tiny_data.parent, tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(start)  # relative paths, as typed in the run's own directory
    assert main(["train", "--data", "tiny.pkl", "--out", "run", "--seeds", "3,4",
                 "--set", *TINY]) == 0
    saved = json.loads((start / "run" / "config.json").read_text())
    assert saved["data"] == str(tiny_data.resolve())  # stored resolved
    (start / "run" / "seed_4" / "metrics.json").unlink()  # seed 4 must be trained again
    results = json.loads((start / "run" / "results.json").read_text())

    monkeypatch.chdir(elsewhere)
    run = os.path.relpath(start / "run")
    same_file = os.path.relpath(start / "." / "tiny.pkl")  # another spelling of the data
    assert main(["train", "--out", run, "--resume", "--data", same_file]) == 0
    assert json.loads((start / "run" / "results.json").read_text()) == results
    assert main(["eval", run]) == 0
    assert f"{results['mean']['MAE']:.4f}" in capsys.readouterr().out
    assert main(["predict", run, "--out", "predictions.csv"]) == 0
    assert (elsewhere / "predictions.csv").read_text().count("\n") == 1 + 8
    other = tmp_path / "other.pkl"
    other.write_bytes(tiny_data.read_bytes())  # the same bytes, another file: refused
    capsys.readouterr()
    assert main(["train", "--out", run, "--resume", "--data", str(other)]) == 2
    assert "was written with data" in capsys.readouterr().err


def test_an_injected_bug_exits_1_with_its_traceback(tiny_data, tmp_path, monkeypatch, capsys):
    from dhmd_graph.nn.distill import DynamicGraphDistill

    def broken(self, *args, **kwargs):
        raise ValueError("an injected bug inside a layer")

    monkeypatch.setattr(DynamicGraphDistill, "forward", broken)
    status = main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
                   "--seeds", "3", "--set", *TINY])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" in err and "an injected bug inside a layer" in err
    assert "internal error (ValueError): this is a bug" in err and "report it" in err
    assert not (tmp_path / "run").exists()  # it failed while checking the model on the data


def test_bad_input_still_exits_2_without_a_traceback(tiny_data, tmp_path, capsys):
    status = main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
                   "--set", "model.widht=8"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "unknown key 'widht'" in err


def test_assemble_records_the_keys_the_user_set(tmp_path):
    file = tmp_path / "experiment.json"
    file.write_text(json.dumps({"preset": "mosi", "train": {"lr": 3e-4}}))
    experiment = Experiment.assemble(file=file, overrides=["model.modalities.0.kernel_size=3",
                                                           "train.monitor=Corr"],
                                     seeds=[7], data="x/../d.pkl")
    assert experiment.preset == "mosi" and experiment.model.modalities[0].kernel_size == 3
    assert experiment.explicit == {"preset", "train.lr", "model.modalities.text.kernel_size",
                                   "train.monitor", "train.seeds"}
    assert experiment.data == str((Path.cwd() / "d.pkl").resolve())  # resolved, as typed
