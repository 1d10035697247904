"""Data-parallel training: helpers in one process, and a real 2-process ``torchrun`` run.

Run as a script (``torchrun ... test_distributed.py OUT_DIR BATCH_SIZE [MODE]``), this
file trains the ``BoringModel`` of ``test_trainer.py`` with :func:`run_seeds`; the modes of
the slow tests train :class:`RankRandomModel` and ``freeze`` rank 1 or ``kill`` rank 0 after
epoch 1's checkpoint, or ``resume`` such a run.
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


class RankRandomModel(BoringModel):
    """``BoringModel`` whose loss is scaled by one random number per valid step of its
    batch (as dropout on packed sequences draws), so that ranks, which see other lengths,
    draw different amounts and their random states part."""

    def training_step(self, batch):
        out = super().training_step(batch)
        steps = int(sum(int(lengths.sum()) for lengths in batch.lengths.values()))
        out["loss"] = out["loss"] * (1 + 0.5 * torch.rand(steps).mean())
        return out


def train_mode(out_dir: str, mode: str) -> dict:
    """The slow tests' runs: 3 epochs of :class:`RankRandomModel` with dropout; ``freeze``
    stops rank 1 (SIGSTOP, its pid written to OUT_DIR.pid) and ``kill`` kills rank 0
    (SIGKILL) after epoch 1's checkpoint; ``resume`` continues such a run."""
    import signal

    rank = int(os.environ.get("RANK", "0"))

    def interrupt(trainer, record):
        if record["epoch"] == 1 and mode == "freeze" and rank == 1:
            Path(f"{out_dir}.pid").write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGSTOP)
        if record["epoch"] == 1 and mode == "kill" and rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    config = tiny_config(batch_size=4, max_epochs=3, seeds=[7])
    return run_seeds(lambda: RankRandomModel(dropout=0.5), random_splits(), config, out_dir,
                     metrics=regression_metrics, collate_fn=collate,
                     resume=mode == "resume", callbacks=[interrupt])


def _torchrun(out_dir, mode, timeout=300, **env):
    here = Path(__file__).parents  # tests/ for boring.py, then the checkout's package
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{here[1]}{os.pathsep}{here[2]}",
               **env)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, str(out_dir), "4", mode]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_torchrun_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path):
    """Rank 0 killed (SIGKILL) after epoch 1's checkpoint, then --resume: every weight and
    metric equals the uninterrupted run's, because each rank restores its own random
    state (with rank 0's everywhere, rank 1's dropout would differ)."""
    assert _torchrun(tmp_path / "whole", "whole").returncode == 0
    assert _torchrun(tmp_path / "cut", "kill").returncode != 0
    done = _torchrun(tmp_path / "cut", "resume")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("best.pt", "last.pt"):
        whole = torch.load(tmp_path / "whole" / "seed_7" / name, weights_only=True)
        cut = torch.load(tmp_path / "cut" / "seed_7" / name, weights_only=True)
        assert whole["epoch"] == cut["epoch"]
        for key, tensor in whole["model"].items():
            assert torch.equal(tensor, cut["model"][key]), (name, key)
    results = [json.loads((tmp_path / run / "results.json").read_text())["mean"]
               for run in ("whole", "cut")]
    assert results[0] == results[1]


@pytest.mark.slow
def test_torchrun_a_frozen_rank_ends_the_run_within_the_timeout(tmp_path):
    """Rank 1 stopped (SIGSTOP) after epoch 1: rank 0 waits at most the process group's
    timeout, then the run ends with one message naming it, the epoch-1 checkpoint kept."""
    import signal
    import time

    start = time.monotonic()
    try:
        done = _torchrun(tmp_path / "run", "freeze", timeout=120,
                         DHMD_PROCESS_GROUP_TIMEOUT="5")
    finally:
        pid = tmp_path / "run.pid"
        if pid.exists():  # the stopped rank, if torchrun left it
            try:
                os.kill(int(pid.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert time.monotonic() - start < 90
    assert done.returncode != 0
    assert "another process of the run stopped answering within 5 s" in done.stderr
    assert torch.load(tmp_path / "run" / "seed_7" / "last.pt", weights_only=True)["epoch"] == 1


def test_process_group_timeout_setting(monkeypatch):
    from dhmd_graph.train.distributed import PROCESS_GROUP_TIMEOUT, process_group_timeout

    monkeypatch.delenv("DHMD_PROCESS_GROUP_TIMEOUT", raising=False)
    assert process_group_timeout() == PROCESS_GROUP_TIMEOUT
    monkeypatch.setenv("DHMD_PROCESS_GROUP_TIMEOUT", "2.5")
    assert process_group_timeout() == 2.5
    for bad in ("0", "soon", "inf"):
        monkeypatch.setenv("DHMD_PROCESS_GROUP_TIMEOUT", bad)
        with pytest.raises(ValueError, match="DHMD_PROCESS_GROUP_TIMEOUT: expected a positive"):
            process_group_timeout()


def test_peer_failures_become_one_error_and_ranks_restore_their_own_state():
    from dhmd_graph.train.distributed import PeerTimeoutError, own_rng_state, peer_timeout

    two = DistributedContext(rank=1, world_size=2, device=torch.device("cpu"))
    with pytest.raises(PeerTimeoutError, match="rank 1 of 2: another process"):
        with peer_timeout(two):
            raise RuntimeError("[gloo] Timed out waiting 5000ms for recv operation to complete")
    with pytest.raises(RuntimeError, match="shape"):  # other errors pass unchanged
        with peer_timeout(two):
            raise RuntimeError("shape mismatch")
    state = {"rng": "rank 0", "rng_ranks": ["rank 0", "rank 1"]}
    assert own_rng_state(state, two) == "rank 1"
    assert own_rng_state({"rng": "rank 0"}, two) == "rank 0"  # a checkpoint from before
    one = DistributedContext(rank=0, world_size=1, device=torch.device("cpu"))
    assert own_rng_state(state, one) == "rank 0"


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
    if len(sys.argv) > 3:
        train_mode(sys.argv[1], sys.argv[3])
    else:
        train(sys.argv[1], int(sys.argv[2]))
    teardown_distributed()
