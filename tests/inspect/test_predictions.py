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
    text = ("id", "predicted_class", "predicted_labels")
    values = {name: np.array([float(v) if v else np.nan for v in column])
              for name, column in columns.items()
              if name not in text and not any(";" in v for v in column)}  # 7;8: seeds
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
        ["id", "seed", "prediction", "label"]
        + [f"logit/{s}/{m}" for s in spaces for m in MODALITIES]
        + [f"edge/{s}/{MODALITIES[t]}->{MODALITIES[u]}" for s in spaces for t, u in EDGES])
    assert list(table["id"]) == test.ids and (table["seed"] == 7).all()
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
    assert out.read_text().startswith("id,seed,prediction,label,")
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temporary left


CLASSES = ("calm", "tense", "upbeat")


def softmax_of_forward(run_dir, dataset, seed):
    model = TrainedRun.load(run_dir, seed=seed).model
    return torch.softmax(forward(model, dataset)[1].prediction, dim=-1).numpy()  # (N, 3)


def test_an_unlabelled_folder_of_test_samples_gives_classes_and_probabilities(class_run,
                                                                             tmp_path):
    out = tmp_path / "p.csv"
    assert main(["predict", str(class_run["run_dir"]), "--data", str(class_run["folder"]),
                 "--out", str(out), "--device", "cpu"]) == 0
    header, table = read_csv(out)
    probability = [f"probability_{name}" for name in CLASSES]
    assert header[:9] == ["id", "seed", *(f"prediction_{n}" for n in CLASSES),
                          "predicted_class", *probability]
    assert not any(name.startswith("label") for name in header)  # no labels in the data
    assert list(table["id"]) == [f"new{i}" for i in range(5)] and (table["seed"] == 7).all()
    expected = softmax_of_forward(class_run["run_dir"], class_run["dataset"], 7)
    found = np.stack([table[name] for name in probability], axis=1)  # (N, 3)
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found.sum(axis=1), 1.0, rtol=1e-6)
    with open(out, newline="") as file:
        classes = [row["predicted_class"] for row in csv.DictReader(file)]
    assert classes == [CLASSES[k] for k in expected.argmax(axis=1)]


def test_a_chosen_seed_and_the_ensemble_are_written_with_their_seeds(class_run, tmp_path):
    command = ["predict", str(class_run["run_dir"]), "--data", str(class_run["folder"]),
               "--device", "cpu", "--out"]
    assert main([*command, str(tmp_path / "eight.csv"), "--seed", "8"]) == 0
    assert main([*command, str(tmp_path / "mean.csv"), "--ensemble"]) == 0
    _, eight = read_csv(tmp_path / "eight.csv")
    header, mean = read_csv(tmp_path / "mean.csv")
    with open(tmp_path / "mean.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["seed"] for row in rows} == {"7;8"} and (eight["seed"] == 8).all()
    assert "seed" in header
    seven_p = softmax_of_forward(class_run["run_dir"], class_run["dataset"], 7)
    eight_p = softmax_of_forward(class_run["run_dir"], class_run["dataset"], 8)
    np.testing.assert_allclose(eight["probability_tense"], eight_p[:, 1], rtol=1e-5, atol=1e-6)
    found = np.stack([mean[f"probability_{n}"] for n in CLASSES], axis=1)
    np.testing.assert_allclose(found, (seven_p + eight_p) / 2, rtol=1e-5, atol=1e-6)
    assert [row["predicted_class"] for row in rows] == [
        CLASSES[k] for k in ((seven_p + eight_p) / 2).argmax(axis=1)]
    assert not any(name.startswith(("logit/", "edge/")) for name in header)  # one model's


def test_probabilities_of_each_task():
    from dhmd_graph.inspect.predictions import probabilities

    logits = np.array([[0.0, np.log(3.0)], [2.0, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(probabilities("multiclass", logits)[0], [0.25, 0.75], rtol=1e-6)
    np.testing.assert_allclose(probabilities("multilabel", logits)[0], [0.5, 0.75], rtol=1e-6)
    np.testing.assert_allclose(probabilities("binary", np.log([3.0], dtype=np.float32)),
                               [[0.25, 0.75]], rtol=1e-6)
    assert probabilities("regression", logits) is None


def test_nan_weights_exit_1_naming_the_checkpoint_and_write_nothing(tiny_run, tmp_path,
                                                                    capsys):
    import shutil

    from dhmd_graph.checkpoint import load_checkpoint, save_checkpoint

    run = shutil.copytree(tiny_run["run_dir"], tmp_path / "run")
    best = run / "seed_7" / "best.pt"
    state = load_checkpoint(best, keys=("model", "meta"))
    state["model"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    save_checkpoint(state, best)
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--out", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"'{best}' predicts NaN or infinity for 8 of 8 samples" in err
    assert not out.exists() and not list(tmp_path.glob(".p.csv*"))


def test_a_second_writer_of_the_same_file_is_refused(tiny_run, tmp_path, capsys):
    from dhmd_graph.errors import FileLockedError
    from dhmd_graph.files import exclusive_lock

    out = tmp_path / "p.csv"
    command = ["predict", str(tiny_run["run_dir"]), "--out", str(out), "--device", "cpu"]
    with exclusive_lock(tmp_path / ".p.csv.lock", FileLockedError):  # another writer's
        assert main(command) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "is being written by another process" in err and str(out) in err
        assert not out.exists()
    assert main(command) == 0  # once the other writer is done
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]  # the lock is removed
    assert main(command) == EXIT_BAD_INPUT  # and a finished file is kept
    assert main([*command, "--overwrite"]) == 0


def test_eval_of_an_unlabelled_folder_says_to_predict(class_run, capsys):
    assert main(["eval", str(class_run["run_dir"]), "--data", str(class_run["folder"]),
                 "--device", "cpu"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "no labels" in err and "dhmd predict" in err and "Traceback" not in err


def test_eval_and_inspect_give_per_class_metrics_and_the_confusion_matrix(class_run, tmp_path,
                                                                          capsys, check_figure):
    from dhmd_graph.metrics import confusion_matrix

    run_dir, data = str(class_run["run_dir"]), str(class_run["labelled"])
    assert main(["eval", run_dir, "--data", data, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "test per class (mean over 2 checkpoint(s)" in out and "predicted upbeat" in out
    expected = sum(confusion_matrix(forward(TrainedRun.load(run_dir, seed=s).model,
                                            class_run["test"])[1].prediction.numpy(),
                                    class_run["test"].labels, num_classes=3) for s in (7, 8))
    lines = out.split("confusion matrix:\n")[1].splitlines()[1:4]
    assert [[int(v) for v in line.split()[2:]] for line in lines] == expected.tolist()
    assert main(["inspect", run_dir, "--data", data, "--pca", "--device", "cpu", "--out",
                 str(tmp_path / "inspect")]) == 0
    report = (tmp_path / "inspect" / "seed_7" / "report.md").read_text()  # one per seed
    assert "## Per class" in report and "| true calm |" in report
    check_figure(tmp_path / "inspect" / "seed_7" / "confusion.png")
