"""The trainer's two gradient accumulations, and the DMD reference schedule."""

import copy

import pytest
import torch
from boring import BoringModel, make_trainer, random_splits, tiny_config
from torch.utils.data import DistributedSampler

from dhmd_graph.data import collate
from dhmd_graph.train import TrainConfig, seed_everything


def test_dmd_schedule():
    config = TrainConfig.preset("dmd")
    assert (config.lr, config.batch_size, config.accumulation_steps) == (1e-4, 16, 10)
    assert (config.accumulation, config.clip_value, config.weight_decay) == ("summed", 0.6, 0.0)
    assert (config.lr_factor, config.lr_patience, config.early_stop_patience) == (0.5, 5, 10)
    assert config.seeds == [1111, 1112, 1113, 1114, 1115]
    assert TrainConfig.preset("default") == TrainConfig()
    assert TrainConfig().accumulation == "averaged"
    with pytest.raises(ValueError, match="TrainConfig.preset: expected one of"):
        TrainConfig.preset("mult")
    with pytest.raises(ValueError, match="TrainConfig.accumulation: expected one of"):
        TrainConfig(accumulation="mean")
    assert TrainConfig().with_overrides(["accumulation=summed"]).accumulation == "summed"


def _reference_epoch(model, splits, config, seed):
    """The reference's loop (trains/singleTask/DMD.py:61-195), written out: at the start
    of each window zero the gradients; after every batch's backward value-clip the
    running sum; step after ``accumulation_steps`` batches; the last partial window of
    the epoch never steps. The data order is the trainer's (one shuffled pass)."""
    sampler = DistributedSampler(splits["train"], num_replicas=1, rank=0, shuffle=True,
                                 seed=seed)
    sampler.set_epoch(1)
    order = list(sampler)
    batches = [collate([splits["train"][i] for i in order[start:start + config.batch_size]])
               for start in range(0, len(order), config.batch_size)]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    left = config.accumulation_steps
    for batch in batches:
        if left == config.accumulation_steps:
            optimizer.zero_grad()
        left -= 1
        model.training_step(batch)["loss"].backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), config.clip_value)
        if left == 0:
            optimizer.step()
            left = config.accumulation_steps
    return len(batches)


def test_summed_accumulation_is_the_references(tmp_path):
    # 9 batches, windows of 4: two steps, the ninth batch is dropped. The clip value is
    # small enough to clip the running sums.
    splits = random_splits(sizes=(36, 8, 8))
    config = tiny_config(batch_size=4, accumulation_steps=4, accumulation="summed",
                         clip_value=0.05, max_epochs=1)
    seed_everything(3)
    model = BoringModel(dropout=0.0)
    reference = copy.deepcopy(model)
    trainer = make_trainer(tmp_path / "summed", config, splits, model=model, seed=5)
    trainer.fit()
    assert _reference_epoch(reference, splits, config, seed=5) == 9
    assert trainer.step == 2
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)
    # Averaged accumulation (ours) takes three steps, the last over the ninth batch alone,
    # and ends elsewhere.
    seed_everything(3)
    averaged = BoringModel(dropout=0.0)
    trainer = make_trainer(tmp_path / "averaged", tiny_config(
        batch_size=4, accumulation_steps=4, clip_value=0.05, max_epochs=1), splits,
        model=averaged, seed=5)
    trainer.fit()
    assert trainer.step == 3
    assert not torch.allclose(averaged.heads["text"].weight, model.heads["text"].weight)
