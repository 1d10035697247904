"""Data-parallel training: helpers in one process, and a real 2-process ``torchrun`` run.

Run as a script (``torchrun ... test_distributed.py OUT_DIR BATCH_SIZE``), this file
trains the ``BoringModel`` of ``test_trainer.py`` with :func:`run_seeds`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from boring import BoringModel, random_splits, tiny_config

from dhmd_graph.data import collate
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.train import run_seeds
from dhmd_graph.train.distributed import (
    DistributedContext,
    TrainingStep,
    all_gather_rows,
    setup_distributed,
    teardown_distributed,
    wrap_for_training,
)

# Per-process batch 4 on 2 processes = batch 8 in one process; 48/24/24 samples split
# evenly, so no sampler padding. Gradients and metrics agree up to float rounding.
TOLERANCE = 1e-4


def train(out_dir: str, batch_size: int) -> dict:
    config = tiny_config(batch_size=batch_size, max_epochs=3, seeds=[7])
    return run_seeds(lambda: BoringModel(dropout=0.0), random_splits(), config, out_dir,
                     metrics=regression_metrics, collate_fn=collate)


def test_single_process_context(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = setup_distributed("cpu")
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert not context.is_distributed
    rows = torch.arange(6.0).reshape(3, 2)
    assert all_gather_rows(rows, context) is rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_gpu_on_a_machine_without_one_is_a_clear_error(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match="device: .*CUDA is not available"):
            setup_distributed(device)


def test_training_step_module_is_the_models_step():
    model = BoringModel(dropout=0.0)
    batch = collate([random_splits()["train"][i] for i in range(4)])
    step = wrap_for_training(model, DistributedContext(0, 1, torch.device("cpu")))
    assert isinstance(step, TrainingStep)
    assert step(batch)["loss"] == model.training_step(batch)["loss"]
    assert list(step.parameters()) == list(model.parameters())


def test_torchrun_two_processes_match_one(tmp_path):  # about 13 s: two processes start
    here = Path(__file__).parents  # tests/ for boring.py, then the checkout's package
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{here[1]}{os.pathsep}{here[2]}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, str(tmp_path / "ddp"), "4"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    seed_dir = tmp_path / "ddp" / "seed_7"
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        ".dhmd.lock", "config.json", "results.json", "seed_7"]
    assert sorted(p.name for p in seed_dir.iterdir()) == [
        "best.pt", "last.pt", "log.jsonl", "metrics.json"]
    assert len((seed_dir / "log.jsonl").read_text().splitlines()) == 3  # one writer

    single = train(str(tmp_path / "single"), 8)
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert ddp["seeds"][0]["best_epoch"] == single["seeds"][0]["best_epoch"]
    for name, value in single["mean"].items():
        assert ddp["mean"][name] == pytest.approx(value, abs=TOLERANCE), name
    ddp_log = [json.loads(line) for line in (seed_dir / "log.jsonl").read_text().splitlines()]
    single_log = [json.loads(line) for line in
                  (tmp_path / "single" / "seed_7" / "log.jsonl").read_text().splitlines()]
    for a, b in zip(ddp_log, single_log, strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], abs=TOLERANCE)


@pytest.mark.slow
def test_torchrun_dhmd_train_command(tmp_path):
    """``dhmd train`` itself under torchrun: DHMD under DDP, one set of outputs."""
    from dhmd_graph.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "tiny.pkl", "mosei",
                           sizes={"train": 16, "valid": 8, "test": 8})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "dhmd_graph.cli", "train", "--data", str(data),
               "--out", str(tmp_path / "run"), "--seeds", "3", "--set", "model.width=8",
               "model.num_heads=2", "model.encoder.num_layers=1",
               "model.encoder.memory_layers=1", "model.dictionary.atoms=4",
               "train.max_epochs=2", "train.batch_size=4", "train.accumulation_steps=2"]
    done = subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("mean ± std") == 1  # rank 0 alone prints
    assert sorted(p.name for p in (tmp_path / "run" / "seed_3").iterdir()) == [
        "best.pt", "last.pt", "log.jsonl", "metrics.json"]
    log = (tmp_path / "run" / "seed_3" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2]


if __name__ == "__main__":
    train(sys.argv[1], int(sys.argv[2]))
    teardown_distributed()
