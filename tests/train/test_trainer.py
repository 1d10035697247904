"""The generic trainer, run on a tiny linear model over random multimodal data."""

import json
import re

import numpy as np
import pytest
import torch
from boring import BoringModel, make_trainer, random_splits, read_log, stop_after, tiny_config

from dhmd_graph.data import collate
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.train import (
    NonFiniteLossError,
    RunExistsError,
    TrainConfig,
    format_table,
    load_checkpoint,
    run_seeds,
    seed_everything,
)
from dhmd_graph.train.config import MAX_WORKERS


def test_fit_logs_selects_on_validation_and_tests_once(tmp_path):
    splits = random_splits()
    trainer = make_trainer(tmp_path, tiny_config(), splits)
    selected = trainer.fit()
    log = read_log(tmp_path / "log.jsonl")

    assert [r["epoch"] for r in log] == list(range(1, 7))
    assert log[-1]["train/loss"] < 0.7 * log[0]["train/loss"]
    assert {"lr", "time_s", "improved", "train/task", "train/penalty", "valid/MAE",
            "valid/Non0_acc_2", "train/edge/homogeneous/text->audio"} <= set(log[0])
    assert log[0]["train/edge/homogeneous/text->audio"] == pytest.approx(0.25)
    maes = [r["valid/MAE"] for r in log]
    assert selected["best_epoch"] == int(np.argmin(maes)) + 1
    assert selected["valid"]["MAE"] == min(maes)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == selected["best_epoch"]

    model = trainer.model
    model.validated_ids.clear()
    test = trainer.test(splits["test"])
    assert sorted(model.validated_ids) == sorted(splits["test"].ids)  # each sample once
    # The best checkpoint is restored: re-evaluating validation gives the selected MAE.
    assert trainer.evaluate(splits["valid"])["MAE"] == pytest.approx(selected["valid"]["MAE"])
    assert set(test) >= {"MAE", "Corr", "Mult_acc_7"}
    with pytest.raises(RuntimeError, match="evaluated once"):
        trainer.test(splits["test"])


def test_early_stopping_and_plateau_schedule(tmp_path):
    # A learning rate this small leaves the (4-decimal) validation MAE unchanged; with a
    # plateau patience of 0 the rate halves after each bad epoch, and training stops after 2.
    config = tiny_config(lr=1e-6, max_epochs=50, lr_patience=0, early_stop_patience=2)
    trainer = make_trainer(tmp_path, config, random_splits())
    trainer.fit()
    log = read_log(tmp_path / "log.jsonl")
    bad = [not r["improved"] for r in log]
    assert len(log) < 50 and bad[-2:] == [True, True]
    assert log[-1]["lr"] < log[0]["lr"]


def test_accumulation_averages_batches(tmp_path):
    # Two batches of 4 accumulated = one batch of 8 (same data order, no clipping).
    splits = random_splits(sizes=(32, 8, 8))
    models = []
    for name, batch, steps in (("a", 4, 2), ("b", 8, 1)):
        config = tiny_config(batch_size=batch, accumulation_steps=steps, clip_value=None,
                             max_epochs=2)
        seed_everything(3)
        model = BoringModel(dropout=0.0)
        make_trainer(tmp_path / name, config, splits, model=model).fit()
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_resume_matches_uninterrupted_run(tmp_path):
    splits = random_splits()
    config = tiny_config()
    full = make_trainer(tmp_path / "full", config, splits)
    full.fit()
    full_test = full.test(splits["test"])

    make_trainer(tmp_path / "cut", config, splits, callbacks=[stop_after(3)]).fit()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 3
    # A new process: another initialisation, overwritten by the checkpoint.
    resumed = make_trainer(tmp_path / "cut", config, splits, model=BoringModel())
    resumed.fit(resume=True)

    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in full.history]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.history] == strip
    assert len(read_log(tmp_path / "cut" / "log.jsonl")) == 6
    assert resumed.test(splits["test"]) == full_test


def test_refuses_to_overwrite_a_run(tmp_path):
    splits = random_splits()
    config = tiny_config(max_epochs=1)
    make_trainer(tmp_path, config, splits).fit()
    with pytest.raises(RunExistsError, match="already holds"):
        make_trainer(tmp_path, config, splits).fit()

    run = tmp_path / "run"
    run_seeds(BoringModel, splits, config, run, metrics=regression_metrics, collate_fn=collate)
    with pytest.raises(RunExistsError, match="--resume.*--overwrite"):
        run_seeds(BoringModel, splits, config, run, metrics=regression_metrics, collate_fn=collate)
    (run / "seed_1" / "stale.txt").write_text("old")
    run_seeds(BoringModel, splits, config, run, metrics=regression_metrics, collate_fn=collate,
              overwrite=True)
    assert not (run / "seed_1" / "stale.txt").exists()


def test_non_finite_loss_names_the_term_and_keeps_checkpoints(tmp_path):
    class Exploding(BoringModel):
        calls = 0

        def training_step(self, batch):
            terms = super().training_step(batch)
            self.calls += 1
            if self.calls == 9:  # epoch 2 (6 batches per epoch), batch 3
                terms["penalty"] = terms["penalty"] * float("inf")
                terms["loss"] = terms["loss"] + terms["penalty"]
            return terms

    trainer = make_trainer(tmp_path, tiny_config(), random_splits(), model=Exploding())
    before = (tmp_path / "last.pt")
    with pytest.raises(NonFiniteLossError, match=r"'penalty' = inf .*epoch 2, batch 3"):
        trainer.fit()
    assert load_checkpoint(before, map_location="cpu")["epoch"] == 1
    assert len(read_log(tmp_path / "log.jsonl")) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_run_seeds_results_table_and_resume(tmp_path):
    splits = random_splits()
    config = tiny_config(max_epochs=2, seeds=[5, 6])
    built = []

    def build():
        built.append(1)
        return BoringModel()

    results = run_seeds(build, splits, config, tmp_path, metrics=regression_metrics,
                        collate_fn=collate, meta={"note": "boring"})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results and [r["seed"] for r in saved["seeds"]] == [5, 6]
    maes = [r["test"]["MAE"] for r in saved["seeds"]]
    assert saved["mean"]["MAE"] == pytest.approx(np.mean(maes))
    assert saved["std"]["MAE"] == pytest.approx(np.std(maes))
    assert maes[0] != maes[1]  # the seeds differ
    assert json.loads((tmp_path / "config.json").read_text())["note"] == "boring"
    table = format_table(results).splitlines()
    assert table[0].split()[:4] == ["metric", "mean", "±", "std"]
    assert any(line.startswith("MAE") and "±" in line for line in table)

    (tmp_path / "seed_6" / "metrics.json").unlink()
    again = run_seeds(build, splits, config, tmp_path, metrics=regression_metrics,
                      collate_fn=collate, resume=True)
    assert len(built) == 3  # seed 5 read back, seed 6 resumed from its last checkpoint
    assert again == results


def test_nan_predictions_stop_at_validation(tmp_path):
    class Diverged(BoringModel):
        def predict_step(self, batch):
            prediction, target = super().predict_step(batch)
            return prediction * float("nan"), target

    trainer = make_trainer(tmp_path, tiny_config(), random_splits(), model=Diverged())
    with pytest.raises(NonFiniteLossError, match="validation metric 'MAE' is NaN at epoch 1"):
        trainer.fit()
    assert not (tmp_path / "last.pt").exists()


def test_unknown_monitor_is_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(monitor="Acc"), random_splits())
    with pytest.raises(ValueError, match=r"TrainConfig.monitor: expected one of .*'MAE'"):
        trainer.fit()


def test_train_config_checks_and_overrides():
    with pytest.raises(ValueError, match=r"TrainConfig.accumulation_steps: expected"):
        TrainConfig(accumulation_steps=0)
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"learning_rate": 1.0})
    config = TrainConfig().with_overrides(
        ["lr=3e-4", "seeds=[1, 2]", "clip_value=none", "progress=false", "max_epochs=3"])
    assert (config.lr, config.seeds, config.clip_value) == (3e-4, [1, 2], None)
    assert (config.progress, config.max_epochs) == (False, 3)
    with pytest.raises(ValueError, match="TrainConfig.max_epochs: expected .*int.*'x'"):
        TrainConfig().with_overrides(["max_epochs=x"])
    with pytest.raises(ValueError, match="unknown key 'learning_rate'"):
        TrainConfig().with_overrides(["learning_rate=1"])


@pytest.mark.parametrize("settings, message", [
    ({"max_epochs": True}, "TrainConfig.max_epochs: expected an integer, found True"),
    ({"lr": "0.1"}, "TrainConfig.lr: expected a number, found '0.1'"),
    ({"seeds": "1111"}, "TrainConfig.seeds: expected a list of integers, found '1111'"),
    ({"seeds": [1, 1]}, "TrainConfig.seeds: expected a list of distinct integers"),
    ({"seeds": [-1]}, "TrainConfig.seeds: expected a list of distinct integers in [0"),
    ({"progress": "false"}, "TrainConfig.progress: expected true or false"),
    ({"num_workers": MAX_WORKERS + 1}, f"expected an integer in [0, {MAX_WORKERS}]"),
    ({"device": "gpu0"}, "TrainConfig.device: expected 'auto' or a torch device"),
    ({"clip_value": float("inf")}, "TrainConfig.clip_value: expected a positive number"),
    ({"monitor": " "}, "TrainConfig.monitor: expected the name of a validation metric"),
    ({"accumulation": 1}, "TrainConfig.accumulation: expected a string, found 1"),
    ({"monitor_mode": None}, "TrainConfig.monitor_mode: expected a string"),
])
def test_train_config_is_strict(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(settings)


def test_train_config_overrides_are_checked_like_the_file():
    with pytest.raises(ValueError, match="TrainConfig.seeds: expected a list of integers"):
        TrainConfig().with_overrides(["seeds=1111"])
    with pytest.raises(ValueError, match="TrainConfig.seeds: expected a list of integers"):
        TrainConfig().with_overrides(["seeds=[1, 2.5]"])
    TrainConfig(monitor="MAE").check_monitor({"MAE": 0.5, "Corr": 0.1})
    with pytest.raises(ValueError, match=r"monitor: expected one of the metrics \['Corr', "
                                         r"'MAE'\], found 'Foo'"):
        TrainConfig(monitor="Foo", monitor_mode="min").check_monitor({"MAE": 0.5, "Corr": 0.1})


# The `dhmd train` and `dhmd eval` commands, on a tiny DHMD and tiny synthetic data. ####

TINY_MODEL = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
              "model.encoder.memory_layers=1", "model.dictionary.atoms=4"]


@pytest.fixture(scope="module")
def tiny_mosei(tmp_path_factory):
    from dhmd_graph.data.synthetic import write_synthetic

    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    return write_synthetic(path, "mosei", sizes={"train": 24, "valid": 8, "test": 8})


def dhmd_train(data, out, *extra):
    from dhmd_graph.cli import main

    return main(["train", "--data", str(data), "--out", str(out), "--seeds", "3",
                 "--set", *TINY_MODEL, "train.max_epochs=2", "train.batch_size=8",
                 "train.accumulation_steps=1", *extra])


def test_cli_train_refuse_resume_and_eval(tiny_mosei, tmp_path, capsys):
    from dhmd_graph.cli import EXIT_BAD_INPUT, main

    run = tmp_path / "run"
    assert dhmd_train(tiny_mosei, run) == 0
    out = capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert f"MAE            {results['mean']['MAE']:.4f}" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["width"] == 8 and saved["train"]["max_epochs"] == 2
    assert saved["preset"] == "mosei" and saved["data"] == str(tiny_mosei)

    assert dhmd_train(tiny_mosei, run) == EXIT_BAD_INPUT
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume"]) == 0  # every seed is done
    assert json.loads((run / "results.json").read_text()) == results
    capsys.readouterr()

    assert main(["eval", str(run)]) == 0  # the test split, with the selected checkpoint
    assert f"{results['mean']['MAE']:.4f}" in capsys.readouterr().out
    assert main(["eval", str(run / "seed_3" / "best.pt"), "--split", "valid"]) == 0
    valid_mae = results["seeds"][0]["valid"]["MAE"]
    assert f"MAE            {valid_mae:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--set", "width=8"], "keys start with 'model.' or 'train.'"),
    (["--set", "train.lr=-1"], "TrainConfig.lr: expected a positive number"),
    (["--set", "model.widht=8"], "unknown key"),
    (["--seeds", "1,x"], "--seeds: expected comma-separated integers"),
])
def test_cli_train_bad_configuration_exits_2(tiny_mosei, tmp_path, capsys, extra, message):
    from dhmd_graph.cli import EXIT_BAD_INPUT

    assert dhmd_train(tiny_mosei, tmp_path / "run", *extra) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_train_bad_data_exits_2(tiny_mosei, tmp_path, capsys):
    from dhmd_graph.cli import EXIT_BAD_INPUT

    assert dhmd_train(tmp_path / "missing.pkl", tmp_path / "run") == EXIT_BAD_INPUT
    assert "unrecognised dataset path" in capsys.readouterr().err
    assert dhmd_train(tiny_mosei, tmp_path / "run", "--set",
                      "model.modalities.audio.input_dim=5") == EXIT_BAD_INPUT
    assert "audio.input_dim: expected 74 (the data holds features of width 74)" in (
        capsys.readouterr().err)
    assert not (tmp_path / "run").exists()  # nothing written


def test_dhmd_resume_matches_uninterrupted_run(tiny_mosei, tmp_path):
    # The real model draws dropout and modality-dropout masks from the global generator.
    from dhmd_graph.config import apply_overrides
    from dhmd_graph.data import load_dataset
    from dhmd_graph.model import DHMD
    from dhmd_graph.presets import preset

    model_config = apply_overrides(
        preset("mosei"), [item.removeprefix("model.") for item in TINY_MODEL]
        + ["modality_dropout=0.3"])
    splits = load_dataset(tiny_mosei)
    config = tiny_config(lr=1e-3, max_epochs=2)

    def trainer(out_dir, **kwargs):
        seed_everything(4)
        return make_trainer(out_dir, config, splits, model=DHMD(model_config), **kwargs)

    full = trainer(tmp_path / "full")
    full.fit()
    trainer(tmp_path / "cut", callbacks=[stop_after(1)]).fit()
    resumed = trainer(tmp_path / "cut")
    resumed.fit(resume=True)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in full.history]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.history] == strip
    assert resumed.test(splits["test"]) == full.test(splits["test"])
