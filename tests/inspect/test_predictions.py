"""``dhmd predict`` and its library: every column against the model and ``dhmd eval``'s loop."""

import csv
import pickle

import numpy as np
import pytest
import torch

from dhmd_graph.cli import EXIT_BAD_INPUT, main
from dhmd_graph.data import DatasetError, collate, load_dataset
from dhmd_graph.inspect.missing import present_mask
from dhmd_graph.inspect.predictions import predict_table
from dhmd_graph.inspect.spaces import dense_edge_weights
from dhmd_graph.model import DHMD
from dhmd_graph.train import predict
from dhmd_graph.train.distributed import setup_distributed
from dhmd_graph.trained import TrainedRun, check_data

MODALITIES = ("text", "audio", "vision")
EDGES = [(t, s) for t in range(3) for s in range(3) if t != s]


def read_csv(path) -> tuple[list[str], dict[str, np.ndarray]]:
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    header, body = rows[0], rows[1:]
    columns = {name: [row[i] for row in body] for i, name in enumerate(header)}
    values = {name: np.array([float(v) if v else np.nan for v in column])
              for name, column in columns.items() if name != "id"}
    return header, {"id": np.array(columns["id"])} | values


def forward(model, dataset, present=None):
    """The model's own outputs on the whole split, as one batch."""
    batch = collate([dataset[i] for i in range(len(dataset))])
    mask = None if present is None else present_mask(MODALITIES, present, len(batch))
    with torch.no_grad():
        return batch, model(batch, mask)


@pytest.fixture(scope="module")
def predicted(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "predictions.csv"
    assert main(["predict", str(tiny_run["run_dir"]), "--data", str(tiny_run["data"]),
                 "--out", str(out), "--device", "cpu"]) == 0
    return read_csv(out)


def test_every_column_matches_the_model_and_eval(tiny_run, predicted):
    header, table = predicted
    model = TrainedRun.load(tiny_run["run_dir"]).model
    test = load_dataset(tiny_run["data"])["test"]
    spaces = ("homogeneous", "heterogeneous")
    assert header == (
        ["id", "prediction", "label"]
        + [f"logit/{s}/{m}" for s in spaces for m in MODALITIES]
        + [f"edge/{s}/{MODALITIES[t]}->{MODALITIES[u]}" for s in spaces for t, u in EDGES])
    assert list(table["id"]) == test.ids
    # the predictions dhmd eval scores (the trainer's loop), and the labels
    prediction, label = predict(model, test, setup_distributed("cpu"), collate_fn=collate)
    np.testing.assert_allclose(table["prediction"], prediction, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table["label"], label)
    # a direct forward of the model: logits and edge weights of both spaces
    batch, output = forward(model, test)
    np.testing.assert_allclose(table["prediction"], output.prediction.numpy(), rtol=1e-5,
                               atol=1e-6)
    for space, values in output.spaces.items():
        weight = dense_edge_weights(values.edges.edge_index, values.edges.weight, len(batch), 3)
        for m, name in enumerate(MODALITIES):
            np.testing.assert_allclose(table[f"logit/{space}/{name}"], values.logits[:, m],
                                       rtol=1e-5, atol=1e-6)
        for t, s in EDGES:
            column = table[f"edge/{space}/{MODALITIES[t]}->{MODALITIES[s]}"]
            np.testing.assert_allclose(column, weight[:, t, s], rtol=1e-5, atol=1e-6)
            assert np.isfinite(column).all()


def test_missing_modalities(tiny_run, tmp_path):
    out = tmp_path / "text_audio.csv"
    assert main(["predict", str(tiny_run["run_dir"]), "--out", str(out), "--present",
                 "text,audio", "--device", "cpu"]) == 0  # the run's own data by default
    _, table = read_csv(out)
    model = TrainedRun.load(tiny_run["run_dir"]).model
    _, full = forward(model, load_dataset(tiny_run["data"])["test"])
    batch, output = forward(model, load_dataset(tiny_run["data"])["test"], ("text", "audio"))
    np.testing.assert_allclose(table["prediction"], output.prediction.numpy(), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(table["prediction"], full.prediction.numpy())
    for space, values in output.spaces.items():
        assert np.isnan(table[f"logit/{space}/vision"]).all()
        np.testing.assert_allclose(table[f"logit/{space}/text"], values.logits[:, 0], rtol=1e-5,
                                   atol=1e-6)
        for t, s in EDGES:
            column = table[f"edge/{space}/{MODALITIES[t]}->{MODALITIES[s]}"]
            assert np.isnan(column).all() == (2 in (t, s))
        # normalize="graph": the two edges left in each sample's graph share its weight
        np.testing.assert_allclose(table[f"edge/{space}/audio->text"]
                                   + table[f"edge/{space}/text->audio"], 1.0, rtol=1e-5)


def test_trained_run_and_predict_table(tiny_run):
    run = TrainedRun.load(tiny_run["seed_dir"])
    assert run.checkpoint == tiny_run["seed_dir"] / "best.pt" and run.meta["seed"] == 7
    table = predict_table(run.model, load_dataset(tiny_run["data"])["valid"], present=["text"])
    assert len(table["id"]) == 24 and np.isnan(table["logit/homogeneous/audio"]).all()
    assert np.isnan(table["edge/heterogeneous/text->audio"]).all()  # text alone: no edge
    with pytest.raises(ValueError, match="the run's modalities"):
        predict_table(run.model, load_dataset(tiny_run["data"])["valid"], present=["speech"])


def test_class_scores_become_one_column_per_class(tiny_run, monkeypatch):
    """A (B, C) prediction (a classification task) gives prediction_<class> columns."""
    run = TrainedRun.load(tiny_run["run_dir"])
    forward_of = DHMD.forward

    def three_scores(self, batch, present=None):
        output = forward_of(self, batch, present)
        return output._replace(prediction=torch.stack([output.prediction, -output.prediction,
                                                       2 * output.prediction], dim=1))

    monkeypatch.setattr(DHMD, "forward", three_scores)
    table = predict_table(run.model, load_dataset(tiny_run["data"])["test"])
    assert [c for c in table if c.startswith("prediction")] == [
        "prediction_0", "prediction_1", "prediction_2"]
    np.testing.assert_allclose(table["prediction_1"], -table["prediction_0"])


def test_data_that_does_not_fit_exits_2_and_writes_nothing(tiny_run, tmp_path, capsys):
    with open(tiny_run["data"], "rb") as file:
        data = pickle.load(file)
    for split in data.values():
        split["audio"] = np.concatenate([split["audio"], split["audio"][..., :1]], axis=-1)
    wider = tmp_path / "wider.pkl"
    wider.write_bytes(pickle.dumps(data))
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(tiny_run["run_dir"]), "--data", str(wider), "--out",
                 str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("dhmd predict: error: the data does not fit the trained model")
    assert "field 'audio'" in err and "input_dim=4" in err and "width 5" in err
    assert str(wider) in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [wider]
    with pytest.raises(DatasetError, match="lacks a modality"):
        config = TrainedRun.load(tiny_run["run_dir"]).model.config
        test = load_dataset(tiny_run["data"])["test"]
        del test.features["vision"]
        check_data(config, test, tiny_run["data"])


def test_unknown_present_and_split_exit_2(tiny_run, tmp_path, capsys):
    out = tmp_path / "p.csv"
    for extra, message in ((["--present", "text,speech"], "the run's modalities"),
                           (["--split", "dev"], "choose one of them with --split")):
        assert main(["predict", str(tiny_run["run_dir"]), "--out", str(out), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_file_is_kept_unless_overwrite(tiny_run, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    out.write_text("mine\n")
    command = ["predict", str(tiny_run["run_dir"]), "--out", str(out), "--device", "cpu"]
    assert main(command) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_text() == "mine\n"
    assert main([*command, "--overwrite"]) == 0
    assert out.read_text().startswith("id,prediction,label,")
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temporary left
