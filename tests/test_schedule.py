"""The small-data recipe (what it changes, what it keeps) and the schedule header."""

import pytest

from dhmd_graph.config import SmallDataRecipe
from dhmd_graph.errors import ConfigError
from dhmd_graph.presets import preset
from dhmd_graph.schedule import (
    apply_small_data_recipe,
    recipe_batch_size,
    schedule_header,
    small_data_reason,
    steps_per_epoch,
)
from dhmd_graph.train.config import TrainConfig


def test_small_or_one_step_data_is_named_with_the_reason():
    one_step = {"text": 1, "audio": 1}
    assert small_data_reason(1284, {"text": 50, "audio": 50}) == (
        "the train split has 1284 samples, at most 5000")
    assert small_data_reason(16000, one_step) == "every modality has one step"
    assert "; every modality has one step" in small_data_reason(1284, one_step)
    assert small_data_reason(16000, {"text": 50, "audio": 1}) is None
    assert small_data_reason(300, {"text": 50}, SmallDataRecipe(max_train_samples=200)) is None


def test_recipe_batch_gives_enough_optimiser_steps():
    recipe = SmallDataRecipe()  # batch 32, 20 steps per epoch
    assert recipe_batch_size(recipe, 1284) == 32
    assert recipe_batch_size(recipe, 200) == 10  # 20 steps of 10
    assert recipe_batch_size(recipe, 7) == 1
    assert recipe_batch_size(recipe, 1284, world_size=4) == 16  # 1284 / (20 x 4)
    assert steps_per_epoch(TrainConfig(batch_size=10, accumulation_steps=1), 200) == 20


def test_steps_per_epoch_counts_windows_processes_and_the_dropped_window():
    averaged = TrainConfig(batch_size=16, accumulation_steps=10)
    assert steps_per_epoch(averaged, 200) == 2  # 13 batches: windows of 10 and 3
    assert steps_per_epoch(TrainConfig(batch_size=16, accumulation_steps=10,
                                       accumulation="summed"), 200) == 1  # the 3 are dropped
    assert steps_per_epoch(TrainConfig(batch_size=16, accumulation_steps=1), 200, 2) == 7


def test_recipe_changes_what_the_user_did_not_set():
    model, train = preset("mosi"), TrainConfig()
    model2, train2, line = apply_small_data_recipe(
        model, train, train_samples=1284, token_modalities={"text"}, reason="small",
        explicit={"model.encoder.num_layers", "train.lr"})
    assert (model2.width, model2.num_heads, model2.encoder.memory_layers) == (32, 4, 2)
    assert model2.encoder.num_layers == model.encoder.num_layers  # the user's
    assert train2.lr == train.lr and train2.weight_decay == 1e-4
    assert (train2.batch_size, train2.accumulation_steps, train2.max_epochs) == (32, 1, 50)
    assert model2.modalities[0].embedding_dim == 64
    assert [m.embedding_dim for m in model2.modalities[1:]] == [300, 300]  # features
    assert [m.bag_of_words for m in model2.modalities] == [True, False, False]
    assert "model.modalities.text.bag_of_words False -> True" in line
    assert model2.modalities[0].input_dropout == 0.5
    assert [m.input_dropout for m in model2.modalities[1:]] == [0.0, 0.0]
    assert line.startswith("small data (small): the small-data recipe (SmallDataRecipe) sets ")
    assert "model.width 50 -> 32" in line and "train.lr " not in line
    assert "model.encoder.num_layers" not in line and "--paper-schedule" in line


def test_width_and_heads_go_together_and_a_whole_model_is_kept():
    model, train = preset("mosi"), TrainConfig()
    kept, _, _ = apply_small_data_recipe(model, train, train_samples=100, token_modalities=(),
                                         reason="r", explicit={"model.num_heads"})
    assert (kept.width, kept.num_heads) == (model.width, model.num_heads)
    whole, train2, line = apply_small_data_recipe(model, train, train_samples=100,
                                                  token_modalities=(), reason="r",
                                                  explicit={"model"})
    assert whole == model and train2.lr == 1e-3 and "model." not in line


def test_nothing_to_change_says_nothing():
    once = apply_small_data_recipe(preset("mosi"), TrainConfig(), train_samples=2000,
                                   token_modalities={"text"}, reason="r", explicit=())
    again = apply_small_data_recipe(once[0], once[1], train_samples=2000,
                                    token_modalities={"text"}, reason="r", explicit=())
    assert once[2] and again[2] == "" and again[:2] == once[:2]


def test_header_names_the_schedule_and_warns_below_twenty_steps():
    header = schedule_header(TrainConfig(), 200, "cpu")
    first, warning = header.split("\n")
    assert first == ("optimiser: lr 0.0001, batch 16, accumulation 10 (averaged), 2 optimiser "
                     "steps per epoch (200 training samples), weight decay 0, device cpu")
    assert warning.startswith("warning: only 2 optimiser steps per epoch (fewer than 20)")
    assert "--set train.batch_size=10 train.accumulation_steps=1" in warning
    assert "\n" not in schedule_header(TrainConfig(batch_size=8, accumulation_steps=1), 200, "cpu")


def test_recipe_values_are_checked():
    with pytest.raises(ConfigError, match="SmallDataRecipe.num_heads: expected a divisor"):
        SmallDataRecipe(width=30, num_heads=4)
    with pytest.raises(ConfigError, match="SmallDataRecipe.lr"):
        SmallDataRecipe(lr=0.0)


def test_recipe_bag_of_words_is_for_token_ids_and_kept_when_set():
    model, train = preset("mosi"), TrainConfig()
    kept, _, line = apply_small_data_recipe(
        model, train, train_samples=1284, token_modalities={"text"}, reason="small",
        explicit={"model.modalities.text.bag_of_words"})
    assert not kept.modalities[0].bag_of_words and "bag_of_words" not in line
    features, _, _ = apply_small_data_recipe(model, train, train_samples=1284,
                                             token_modalities=set(), reason="small",
                                             explicit=set())
    assert not any(m.bag_of_words for m in features.modalities)
