"""The trainer's two gradient accumulations, and the DMD reference schedule."""

import pytest

from dhmd_graph.train import TrainConfig


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
