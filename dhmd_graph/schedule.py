r"""The schedule of a run: the small-data recipe, and the header that says what will run.

* :func:`small_data_reason` says whether a dataset is in the small-data regime: its
  train split has at most :attr:`SmallDataRecipe.max_train_samples` samples, or every
  modality has one step (``(N, d)`` inputs, no time axis).
* :func:`apply_small_data_recipe` then gives the model and the schedule the values of
  :class:`~dhmd_graph.config.SmallDataRecipe` (a smaller, more regularised model; a
  learning rate and batch size such that an epoch has enough optimiser steps), except
  the fields the user set, and returns one line saying what it changed and why.
* :func:`steps_per_epoch` and :func:`schedule_header` give the optimiser steps per epoch
  and the header printed before training (learning rate, batch, accumulation, steps per
  epoch, device), with a warning when an epoch has fewer than
  :attr:`SmallDataRecipe.min_steps_per_epoch` steps; :class:`EpochTimer` prints the
  seconds per epoch once the first epoch is done.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping

from dhmd_graph import fields
from dhmd_graph.config import DHMDConfig, SmallDataRecipe
from dhmd_graph.train.config import TrainConfig

__all__ = ["EpochTimer", "apply_small_data_recipe", "schedule_header", "small_data_reason",
           "steps_per_epoch"]

PAPER_SCHEDULE_FLAG = "--paper-schedule"


def small_data_reason(train_samples: int, steps: Mapping[str, int],
                      recipe: SmallDataRecipe | None = None) -> str | None:
    """Why the data is small, in words, or :obj:`None` if it is not.

    Args:
        train_samples (int): Samples of the train split.
        steps (Mapping[str, int]): Per modality the longest sequence
            (:func:`~dhmd_graph.data.loading.modality_steps`).
        recipe (SmallDataRecipe, optional): The threshold; :obj:`None` uses the defaults.
    """
    recipe = recipe or SmallDataRecipe()
    reasons = []
    if train_samples <= recipe.max_train_samples:
        reasons.append(f"the train split has {train_samples} samples, at most "
                       f"{recipe.max_train_samples}")
    if steps and all(length == 1 for length in steps.values()):
        reasons.append("every modality has one step")
    return "; ".join(reasons) or None


def recipe_batch_size(recipe: SmallDataRecipe, train_samples: int, world_size: int = 1) -> int:
    """The recipe's batch size for ``train_samples``: at most ``recipe.batch_size``, and
    small enough that an epoch has ``recipe.min_steps_per_epoch`` optimiser steps (one
    sample per batch at least)."""
    per_step = recipe.min_steps_per_epoch * recipe.accumulation_steps * world_size
    return max(1, min(recipe.batch_size, train_samples // per_step))


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def apply_small_data_recipe(model: DHMDConfig, train: TrainConfig, *, train_samples: int,
                            token_modalities: Collection[str], explicit: Collection[str],
                            reason: str, world_size: int = 1,
                            recipe: SmallDataRecipe | None = None
                            ) -> tuple[DHMDConfig, TrainConfig, str]:
    r"""``model`` and ``train`` with the small-data recipe, and one line saying what changed.

    A field the user set (its dotted key in ``explicit``: ``"model.width"``,
    ``"train.lr"``; ``"model"`` for a whole model from a file) is kept; ``width`` and
    ``num_heads`` go together (set one and the recipe changes neither). A modality of
    ``token_modalities`` (not BERT tokens) gets the recipe's ``bag_of_words`` and
    ``token_dropout``, and, without word vectors, its ``embedding_dim``.

    Args:
        model (DHMDConfig): The preset's model (before fitting to the data).
        train (TrainConfig): The schedule.
        train_samples (int): Samples of the train split.
        token_modalities (Collection[str]): The modalities whose data are token ids.
        explicit (Collection[str]): The keys the user set.
        reason (str): Why the data is small (:func:`small_data_reason`).
        world_size (int, optional): Processes of the run. (default: ``1``)
        recipe (SmallDataRecipe, optional): :obj:`None` uses the defaults.

    Returns:
        tuple: The model, the schedule, and the line (empty when nothing changed).

    Raises:
        ConfigError: A value of the recipe does not fit a value the user set.
    """
    recipe = recipe or SmallDataRecipe()
    wanted_model: dict[str, object] = {}
    if "model" not in explicit:
        if not {"model.width", "model.num_heads"} & set(explicit):
            wanted_model |= {"width": recipe.width, "num_heads": recipe.num_heads}
        wanted_model |= {
            "encoder.num_layers": recipe.num_layers, "encoder.memory_layers": recipe.memory_layers,
            "encoder.dropout": recipe.dropout, "encoder.output_dropout": recipe.dropout,
            "encoder.embed_dropout": recipe.embed_dropout,
            "modality_dropout": recipe.modality_dropout}
        for modality in model.modalities:
            if modality.name not in token_modalities or modality.bert_path is not None:
                continue
            wanted_model[f"modalities.{modality.name}.bag_of_words"] = recipe.bag_of_words
            wanted_model[f"modalities.{modality.name}.input_dropout"] = recipe.token_dropout
            if modality.word_vectors is None:
                wanted_model[f"modalities.{modality.name}.embedding_dim"] = recipe.embedding_dim
    wanted_train = {
        "lr": recipe.lr, "weight_decay": recipe.weight_decay,
        "batch_size": recipe_batch_size(recipe, train_samples, world_size),
        "accumulation_steps": recipe.accumulation_steps, "max_epochs": recipe.max_epochs,
        "early_stop_patience": recipe.early_stop_patience, "lr_patience": recipe.lr_patience}
    changes = []
    results = []
    for prefix, config, wanted in (("model", model, wanted_model), ("train", train, wanted_train)):
        current = fields.to_dict(config)
        overrides = []
        for key, value in wanted.items():
            if f"{prefix}.{key}" in explicit:
                continue
            old = _lookup(current, key, config)
            if old != value:
                overrides.append(f"{key}={json.dumps(value)}")
                changes.append(f"{prefix}.{key} {_shown(old)} -> {_shown(value)}")
        results.append(fields.apply_overrides(config, overrides)[0] if overrides else config)
    line = (f"small data ({reason}): the small-data recipe (SmallDataRecipe) sets "
            f"{', '.join(changes)}; {PAPER_SCHEDULE_FLAG} keeps the preset's model and "
            "schedule" if changes else "")
    return results[0], results[1], line


def _lookup(data: Mapping, key: str, config: object) -> object:
    """The value of a dotted ``key`` in ``to_dict`` data (modalities by name)."""
    parts = key.split(".")
    if parts[0] == "modalities":
        names = [m["name"] for m in data["modalities"]]
        data = data["modalities"][names.index(parts[1])]
        parts = parts[2:]
    for part in parts:
        data = data[part]
    return data


def steps_per_epoch(train: TrainConfig, train_samples: int, world_size: int = 1) -> int:
    """The optimiser steps of one epoch: batches per process (the sampler pads the split
    to a multiple of ``world_size``), one step per ``accumulation_steps`` batches, the last
    partial window stepped (``"averaged"``) or dropped (``"summed"``)."""
    batches = math.ceil(math.ceil(train_samples / world_size) / train.batch_size)
    if train.accumulation == "summed":
        return batches // train.accumulation_steps
    return math.ceil(batches / train.accumulation_steps)


def schedule_header(train: TrainConfig, train_samples: int, device: str, *,
                    world_size: int = 1, recipe: SmallDataRecipe | None = None) -> str:
    """The schedule line printed before training, and a warning line when an epoch has
    fewer than ``recipe.min_steps_per_epoch`` optimiser steps."""
    recipe = recipe or SmallDataRecipe()
    steps = steps_per_epoch(train, train_samples, world_size)
    processes = f" x {world_size} processes" if world_size > 1 else ""
    line = (f"optimiser: lr {train.lr:g}, batch {train.batch_size}{processes}, accumulation "
            f"{train.accumulation_steps} ({train.accumulation}), {steps} optimiser "
            f"step{'s' if steps != 1 else ''} per epoch ({train_samples} training samples), weight decay {train.weight_decay:g}, "
            f"device {device}")
    if steps < recipe.min_steps_per_epoch:
        batch = recipe_batch_size(recipe, train_samples, world_size)
        line += (f"\nwarning: only {steps} optimiser step{'s' if steps != 1 else ''} per epoch "
                 f"(fewer than {recipe.min_steps_per_epoch}): the model learns little per "
                 f"epoch and selection sees few updates. Fix: --set train.batch_size={batch} "
                 "train.accumulation_steps=1 (or more data)")
    return line


class EpochTimer:
    """A :class:`~dhmd_graph.train.Trainer` callback that prints, once per run, the seconds
    the first epoch it sees took and what that means for the whole run."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self, trainer, record: Mapping) -> None:
        if self.done or not trainer.context.is_main:
            return
        self.done = True
        seconds, epochs = float(record["time_s"]), trainer.config.max_epochs
        print(f"seconds per epoch: {seconds:.1f} s (epoch {record['epoch']} of seed "
              f"{trainer.seed}); at most {epochs} epochs: up to {seconds * epochs / 60:.1f} min "
              "per seed", flush=True)
