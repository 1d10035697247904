"""Train DHMD on an emotion, humour or sarcasm task and compare it with trivial baselines.

The classification side of the library, end to end, for every task family:

============================  ==========  ============================================
``--task``                    model task  metrics (selection metric)
============================  ==========  ============================================
``iemocap4`` (default)        multilabel  MulT's IEMOCAP protocol: per-emotion accuracy
                                          and F1 of neutral, happy, sad, angry
                                          (``Avg_F1``)
``iemocap6``                  multiclass  6-class accuracy (WAcc), UAcc, weighted F1
                                          (``F1_weighted``), macro F1
``mosei_emotions``            multilabel  CMU-MOSEI's six emotions: per-emotion weighted
                                          accuracy and F1 (``Avg_WAcc``)
``humour`` / ``sarcasm``      binary      accuracy (``Acc`` / ``F1_weighted``), F1
============================  ==========  ============================================

A dataset on disk (MulT's pickle layout) -> one ``MultimodalDataset`` per split -> the
task's preset of ``DHMDConfig`` with its inputs and task taken from the data
(``fit_inputs``, ``fit_task``) and balanced class weights -> ``DHMD`` -> the generic
``Trainer`` (model selection on the task's validation metric, the test split evaluated
once with the selected checkpoint) -> the metrics table (mean ± std over seeds) and,
on the same test split, two predictors that ignore the features:

- ``majority``: the majority class (``multiclass``, ``binary``) or, per label, its
  majority (``multilabel``: present when more than half of the training samples have it);
- ``label priors``: a random guess with the training frequencies (a class drawn with its
  training share; each label present with its training rate), seed 0.

Usage::

    python examples/emotion_dhmd.py                         # IEMOCAP-4, synthetic, minutes
    python examples/emotion_dhmd.py --task mosei_emotions   # or iemocap6, humour, sarcasm
    python examples/emotion_dhmd.py --quick                 # seconds: tiny sizes, one epoch

``--data FILE`` trains on your own file instead (a MulT-layout pickle, e.g. one written by
``dhmd synth FILE --profile iemocap6``, or a cache folder).

Without ``--data`` the data is the task's synthetic profile
(:func:`~dhmd_graph.data.synthetic_tasks.default_task_dataset_path`: the real feature
widths and aligned lengths, the real class or label frequencies, planted factors that
each modality sees differently), generated once into ``$DHMD_CACHE`` (default
``~/.cache/dhmd_graph``). As ``examples/mosei_dhmd.py``, the default run is sized for a
few CPU minutes, all in ``DEMO`` and ``DEMO_SIZES`` below: 1,500 / 300 / 600 samples for
IEMOCAP's 20 steps, 800 / 200 / 400 for the 50 steps of the other profiles (a sample costs
2.5 times as much), 3 epochs, one seed (1111), batches of 32 and learning rate 1e-3. The model is the task's preset unchanged
(width 30, 6 heads, 4 layers). With ``--data`` the reference schedule is used
(``TrainConfig()`` defaults, the task's selection metric).
"""

from __future__ import annotations

import os

from dhmd_graph.allocator import keep_freed_memory
from dhmd_graph.openmp import openmp_defaults

# A passive OpenMP wait unless OMP_WAIT_POLICY / OMP_NUM_THREADS are set: this must happen
# before torch is imported (a busy machine otherwise slows training many times over).
os.environ.update(openmp_defaults())

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dhmd_graph import MultimodalDataset
from dhmd_graph.config import DHMDConfig, config_to_dict
from dhmd_graph.data import collate
from dhmd_graph.data.loading import modality_inputs
from dhmd_graph.data.synthetic import DEMO_SIZES as IEMOCAP_SIZES  # 1,500 / 300 / 600
from dhmd_graph.data.synthetic_tasks import PROFILES, default_task_dataset_path
from dhmd_graph.experiment import fit_inputs, fit_task, load_splits
from dhmd_graph.metrics import default_monitor, format_table, task_metric_kind, task_metrics
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset
from dhmd_graph.train import TrainConfig, run_seeds
from dhmd_graph.train import format_table as seeds_table

# The default run on synthetic data: sizes and schedule chosen for a few CPU minutes.
DEMO_SIZES = {"iemocap4": IEMOCAP_SIZES, "iemocap6": IEMOCAP_SIZES,
              "mosei_emotions": {"train": 800, "valid": 200, "test": 400}}
DEMO_SIZES["humour"] = DEMO_SIZES["sarcasm"] = DEMO_SIZES["mosei_emotions"]
DEMO = TrainConfig(lr=1e-3, batch_size=32, accumulation_steps=1, max_epochs=3, seeds=[1111])
# --quick: a smoke test that finishes in seconds (the numbers mean nothing).
QUICK_SIZES = {"train": 32, "valid": 16, "test": 16}
QUICK = TrainConfig(lr=1e-3, batch_size=16, accumulation_steps=1, max_epochs=1, seeds=[1111])


def balanced_class_weights(dataset: MultimodalDataset, task: str) -> list[float]:
    """Class weights that balance the training labels: per class ``N / (C N_c)``
    (``multiclass``), per label ``N_neg / N_pos`` (the BCE's positive weight; one value
    for ``binary``). A class or label without samples gets weight 1."""
    labels = np.asarray(dataset.labels)
    if task == "multiclass":
        counts = np.bincount(labels, minlength=dataset.num_classes)
        weights = len(labels) / (len(counts) * np.maximum(counts, 1))
    else:
        positive = labels.reshape(len(labels), -1).sum(axis=0)
        weights = (len(labels) - positive) / np.maximum(positive, 1)
    return [float(w) if w > 0 else 1.0 for w in weights]


def baselines(splits: Mapping[str, MultimodalDataset], config: DHMDConfig, metrics
              ) -> dict[str, dict[str, float]]:
    """The test metrics of ``majority`` and ``label priors`` (module docstring)."""
    train, test = np.asarray(splits["train"].labels), np.asarray(splits["test"].labels)
    rng = np.random.default_rng(0)
    if config.task == "multilabel":
        rate = train.mean(axis=0)  # (C,)
        majority = np.tile(rate > 0.5, (len(test), 1)).astype(np.float32)
        priors = (rng.random(test.shape) < rate).astype(np.float32)
    else:
        count = 2 if config.task == "binary" else config.num_classes
        share = np.bincount(train, minlength=count) / len(train)
        majority = np.full(len(test), share.argmax())
        priors = rng.choice(count, size=len(test), p=share)
    return {"majority": metrics(majority, test), "label priors": metrics(priors, test)}


def summary_keys(metrics: Mapping[str, float]) -> list[str]:
    """The keys that summarise all classes or labels (``Avg_F1``, ``F1_micro``, ``Acc``,
    ...), not the per-label ``<name>_F1``, ``<name>_WAcc``, ``<name>_acc``."""
    return [key for key in metrics if key.split("_")[0] in ("Avg", "F1", "Acc", "UAcc")]


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()  # freed activations stay in the heap for the next step
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(PROFILES), default="iemocap4",
                        help="the task and its preset (default: iemocap4)")
    parser.add_argument("--data", help="a MulT-layout .pkl file or a cache folder (default: "
                        "the task's synthetic profile)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch")
    parser.add_argument("--out", help="keep the run folder here (default: a temporary one)")
    parser.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    args = parser.parse_args(argv)

    sizes, train_config = (QUICK_SIZES, QUICK) if args.quick else (DEMO_SIZES[args.task], DEMO)
    if args.data:
        data = Path(args.data)
        train_config = QUICK if args.quick else TrainConfig()
    else:
        data = default_task_dataset_path(args.task, aligned=True, sizes=sizes, seed=0)
    model_config = preset(args.task)
    splits = load_splits(data, model_config)
    train = splits["train"]
    # The task's preset; input widths, the task and the number of classes from the data.
    model_config = fit_task(fit_inputs(model_config, modality_inputs(splits)),
                            train.label_kind, train.num_classes)
    model_config = dataclasses.replace(
        model_config, class_weights=balanced_class_weights(train, model_config.task))
    task = (model_config.task, model_config.num_classes, args.task)
    metrics = task_metrics(*task, label_names=train.label_names)
    train_config = dataclasses.replace(train_config,
                                       monitor=default_monitor(task_metric_kind(*task)))
    meta = {"preset": args.task, "aligned": True, "data": str(data),
            "model": config_to_dict(model_config)}

    with tempfile.TemporaryDirectory(prefix="emotion_dhmd_") as scratch:
        results = run_seeds(lambda: DHMD(model_config), splits, train_config,
                            args.out or scratch, metrics=metrics, collate_fn=collate, meta=meta,
                            overwrite=args.overwrite)

    sizes_seen = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    seeds = ", ".join(str(seed) for seed in train_config.seeds)
    print(f"DHMD ({model_config.task}, {args.task}) on {data.name} ({sizes_seen}); test "
          f"metrics over seeds {seeds}, selected on valid {train_config.monitor}:")
    print(seeds_table(results))
    rows = {"DHMD (mean)": results["mean"], **baselines(splits, model_config, metrics)}
    keys = summary_keys(results["mean"])
    print("\nDHMD and the trivial baselines on the same test split:")
    print(format_table({name: {key: values[key] for key in keys} for name, values in rows.items()}))
    monitor = train_config.monitor
    better = [name for name in ("majority", "label priors")
              if rows["DHMD (mean)"][monitor] > rows[name][monitor]]
    print(f"DHMD beats {len(better)} of 2 baselines on {monitor}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
