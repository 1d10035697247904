"""Atomic checkpoints, readable with ``weights_only=True``, and the random state in them."""

import random

import numpy as np
import pytest
import torch
from boring import make_trainer, random_splits, tiny_config

from dhmd_graph.train import load_checkpoint, save_checkpoint
from dhmd_graph.train.seeds import rng_state, set_rng_state


def test_round_trip_with_weights_only(tmp_path):
    state = {"weights": torch.arange(6.0).reshape(2, 3), "epoch": 4, "config": {"lr": 1e-4},
             "history": [{"valid/MAE": 0.5, "improved": True}], "best": None}
    path = save_checkpoint(state, tmp_path / "sub" / "c.pt")
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 4 and loaded["history"] == state["history"]
    assert torch.equal(loaded["weights"], state["weights"])
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary left


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    def broken_save(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")


def test_trainer_checkpoints_load_with_weights_only(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(max_epochs=2), random_splits(),
                           meta={"model": {"width": 30}})
    trainer.fit()
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["meta"] == {"model": {"width": 30}}
    assert last["train_config"]["lr"] == trainer.config.lr
    assert {"model", "optimizer", "scheduler", "rng", "history", "best_value", "best_epoch",
            "bad_epochs"} <= set(last)
    assert last["optimizer"]["state"]  # Adam's moments are there
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == best["best_epoch"] == trainer.best_epoch


def test_rng_state_restores_every_generator():
    state = rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
