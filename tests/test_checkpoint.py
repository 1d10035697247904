"""Atomic checkpoints, readable with ``weights_only=True``, and the random state in them."""

import io
import os
import random
import zipfile

import numpy as np
import pytest
import torch
from boring import make_trainer, random_splits, tiny_config

from dhmd_graph.checkpoint import check_state_dict
from dhmd_graph.train import CheckpointError, load_checkpoint, save_checkpoint
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


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _written(obj, path):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _zip_of(path, records, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("make, found", [
    (lambda p, m: p.write_bytes(b""), "the file is empty"),
    (lambda p, m: p.write_text("not a checkpoint"), "a text file"),
    (lambda p, m: p.write_bytes(_written({"a": torch.ones(8)}, p).read_bytes()[:200]),
     "not a zip archive (truncated"),
    (lambda p, m: _written({"model": _Payload(m)}, p), "GLOBAL posix.system"),
    (lambda p, m: _zip_of(p, {"m/constants.pkl": b"", "m/data.pkl": b""}), "TorchScript"),
    (lambda p, m: _zip_of(p, {"m/data.pkl": b"\0" * 4096}, zipfile.ZIP_DEFLATED),
     "compressed records"),
    (lambda p, m: _zip_of(p, {"m/other": b""}), "without the data.pkl"),
    (lambda p, m: _written([1, 2], p), "holds a list"),
    (lambda p, m: _written({"model": {"w": 3}}, p), "not a state dict of named tensors"),
])
def test_untrusted_checkpoints_are_refused_naming_the_file(tmp_path, make, found):
    path, marker = tmp_path / "best.pt", tmp_path / "marker"
    make(path, marker)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert found in message and f"'{path}'" in message
    assert "weights_only" not in message and not marker.exists()


def test_required_entries_and_shapes(tmp_path):
    path = save_checkpoint({"model": {"weight": torch.zeros(2, 3)}}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"lacks the entries \['meta'\]"):
        load_checkpoint(path, keys=("model", "meta"))
    model = torch.nn.Linear(3, 2, bias=False)
    check_state_dict(model, load_checkpoint(path)["model"], path)
    with pytest.raises(CheckpointError, match=r"weight 'weight' has shape \(3, 2\)"):
        check_state_dict(model, {"weight": torch.zeros(3, 2)}, path)
    with pytest.raises(CheckpointError, match=r"missing \['weight'\], unexpected \['w'\]"):
        check_state_dict(model, {"w": torch.zeros(2, 3)}, path)
    with torch.device("meta"):  # a skeleton allocates nothing and still compares
        skeleton = torch.nn.Linear(3, 2, bias=False)
    check_state_dict(skeleton, {"weight": torch.zeros(2, 3)}, path)


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    splits = random_splits()
    make_trainer(tmp_path, tiny_config(max_epochs=1), splits, meta={"model": {"width": 8}}).fit()
    other = make_trainer(tmp_path, tiny_config(max_epochs=2), splits,
                         meta={"model": {"width": 16}})
    with pytest.raises(CheckpointError, match=r"another configuration \(meta model.width: 8 "
                                              r"instead of 16\)"):
        other.fit(resume=True)
    state = load_checkpoint(tmp_path / "last.pt")
    save_checkpoint(dict(state, epoch=5), tmp_path / "last.pt")  # history has 1 record
    again = make_trainer(tmp_path, tiny_config(max_epochs=6), splits,
                         meta={"model": {"width": 8}})
    with pytest.raises(CheckpointError, match="training state is inconsistent"):
        again.fit(resume=True)
