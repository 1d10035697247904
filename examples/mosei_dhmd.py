"""Train DHMD on CMU-MOSEI-profile data and compare it with the trivial baselines.

The main path of the library, end to end: a dataset on disk -> one
``MultimodalDataset`` per split -> the ``mosei`` preset of ``DHMDConfig`` -> ``DHMD``
-> the generic ``Trainer`` (one run per seed, model selection on the validation split,
the test split evaluated once with the selected checkpoint) -> the metrics table
(mean ± std over seeds) next to two baselines computed on the same test split:

- predict the training mean (its ``MAE``), and
- predict the majority sign of the non-zero training labels (its ``Non0_acc_2``).

Usage::

    python examples/mosei_dhmd.py                      # embedded synthetic data, minutes
    python examples/mosei_dhmd.py --data aligned_50.pkl  # a real MMSA pickle or cache
    python examples/mosei_dhmd.py --quick              # seconds: tiny sizes, one epoch

Without ``--data`` the data is the embedded synthetic MOSEI-profile generator
(:func:`~dhmd_graph.data.synthetic.default_dataset_path`: real feature widths, 50
aligned steps, the real label distribution, planted shared and modality-exclusive
factors), generated once into ``$DHMD_CACHE`` (default ``~/.cache/dhmd_graph``).
The default run is sized to finish in a few minutes on 2 CPU cores, which the
reference schedule (DMD's: lr 1e-4, 16 x 10 accumulated batches, up to 100 epochs,
5 seeds, on 16,326 samples) cannot do. Its choices, all in ``DEMO`` below:

- 1,500 / 300 / 600 train / valid / test samples (not 16,326 / 1,871 / 4,659);
- 3 epochs, 2 seeds (1111, 1112) instead of early stopping over up to 100 epochs, 5 seeds;
- batches of 32 without accumulation and learning rate 1e-3 (not 16 x 10 and 1e-4), so
  that 3 epochs hold enough optimiser steps (about 140) to learn.

The model itself is the unchanged ``mosei`` preset (width 30, 6 heads, kernels L5 A1
V3, 4 layers, reference priors), its input widths taken from the data. With ``--data``
the reference schedule is used (``TrainConfig()`` defaults).
"""

from __future__ import annotations

import os

from dhmd_graph.allocator import keep_freed_memory
from dhmd_graph.openmp import openmp_defaults

# A passive OpenMP wait unless OMP_WAIT_POLICY / OMP_NUM_THREADS are set: this must happen
# before torch is imported (a busy machine otherwise slows training many times over).
os.environ.update(openmp_defaults())

import argparse
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dhmd_graph import MultimodalDataset
from dhmd_graph.config import config_to_dict
from dhmd_graph.data import collate, load_dataset
from dhmd_graph.data.loading import modality_inputs
from dhmd_graph.data.synthetic import DEMO_SIZES, default_dataset_path
from dhmd_graph.experiment import fit_inputs
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset
from dhmd_graph.train import TrainConfig, format_table, run_seeds
from dhmd_graph.train.distributed import resolve_device

# The default run on synthetic data: sizes (DEMO_SIZES, 1,500 / 300 / 600) and schedule
# chosen for a few CPU minutes.
DEMO = TrainConfig(lr=1e-3, batch_size=32, accumulation_steps=1, max_epochs=3,
                   seeds=[1111, 1112])
# --quick: a smoke test that finishes in seconds (the numbers mean nothing).
QUICK_SIZES = {"train": 32, "valid": 16, "test": 16}
QUICK = TrainConfig(lr=1e-3, batch_size=16, accumulation_steps=1, max_epochs=1, seeds=[1111])
EXPECTED_MINUTES = 4
"""The default run's wall time on a quiet 2-core machine, data generation included
(``benchmarks/quickstart_time.py``)."""


def baselines(splits: Mapping[str, MultimodalDataset]) -> dict[str, float]:
    """The test-split scores of two predictors that ignore the features.

    ``MAE`` of always predicting the training mean, and ``Non0_acc_2`` of always
    predicting the majority sign of the non-zero training labels.
    """
    train, test = splits["train"].labels, splits["test"].labels
    mean = np.full_like(test, train.mean())
    majority = 1.0 if (train[train != 0] > 0).mean() >= 0.5 else -1.0
    return {
        "MAE": regression_metrics(mean, test)["MAE"],
        "Non0_acc_2": regression_metrics(np.full_like(test, majority), test)["Non0_acc_2"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()  # freed activations stay in the heap for the next step
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an MMSA .pkl file or a cache folder (default: "
                        "the embedded synthetic MOSEI-profile data)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch")
    parser.add_argument("--out", help="keep the run folder here (default: a temporary one)")
    parser.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    parser.add_argument("--results", metavar="FILE.json", help="also write the report, the "
                        "metrics and what they depend on (data checksum, versions, threads)")
    args = parser.parse_args(argv)

    sizes, train_config = (QUICK_SIZES, QUICK) if args.quick else (DEMO_SIZES, DEMO)
    if args.data:
        data = Path(args.data)
        train_config = QUICK if args.quick else TrainConfig()
    else:
        data = default_dataset_path("mosei", aligned=True, sizes=sizes, seed=0, generate=False)
        print(f"data: {data}" if data.exists() else
              f"data: generating the synthetic MOSEI-profile data once into {data}"
              + ("" if args.quick else " (about a minute)"), flush=True)
        data = default_dataset_path("mosei", aligned=True, sizes=sizes, seed=0)
    splits = load_dataset(data)
    # The mosei preset; each modality's input width (or vocabulary) comes from the data.
    model_config = fit_inputs(preset("mosei", aligned=True), modality_inputs(splits))
    meta = {"preset": "mosei", "aligned": True, "data": str(data),
            "model": config_to_dict(model_config)}
    parameters = sum(p.numel() for p in DHMD(model_config).parameters())
    print(f"model: the mosei preset, {parameters:,} parameters; schedule: "
          f"{train_config.max_epochs} epoch(s) x {len(train_config.seeds)} seed(s), batch "
          f"{train_config.batch_size}, lr {train_config.lr:g}; device "
          f"{resolve_device(train_config.device)}"
          + ("" if args.data or args.quick else
             f"; about {EXPECTED_MINUTES} minutes on 2 quiet CPU cores"), flush=True)

    with tempfile.TemporaryDirectory(prefix="mosei_dhmd_") as scratch:
        results = run_seeds(lambda: DHMD(model_config), splits, train_config,
                            args.out or scratch, metrics=regression_metrics, collate_fn=collate,
                            meta=meta, overwrite=args.overwrite)
    text = report(data.name, splits, results, baselines(splits), train_config.seeds)
    print(text)
    if args.results:
        write_results_file(Path(args.results), text, results, data, argv)
    return 0


def report(data_name: str, splits: Mapping[str, MultimodalDataset], results: dict,
           trivial: Mapping[str, float], seeds: Sequence[int]) -> str:
    """What the example prints after training: the test metrics over seeds (mean ± std
    and each seed's) and the two baselines of :func:`baselines` beside DHMD's."""
    sizes_seen = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    mean = results["mean"]
    won = [mean["MAE"] < trivial["MAE"], mean["Non0_acc_2"] > trivial["Non0_acc_2"]]
    return "\n".join([
        f"DHMD on {data_name} ({sizes_seen}); test metrics over seeds "
        f"{', '.join(map(str, seeds))}:",
        format_table(results),
        "",
        "Baselines on the same test split:",
        f"  predict the training mean     MAE         {trivial['MAE']:.4f}"
        f"   (DHMD {mean['MAE']:.4f})",
        f"  majority sign (non-zero)      Non0_acc_2  {trivial['Non0_acc_2']:.4f}"
        f"   (DHMD {mean['Non0_acc_2']:.4f})",
        f"DHMD beats {sum(won)} of 2 baselines.",
    ])


def write_results_file(path: Path, text: str, results: dict, data: Path,
                       argv: Sequence[str] | None) -> None:
    """``--results``: the printed report, the metrics and what they depend on (the
    command, the data file's SHA-256, torch and numpy versions, threads, CPU capability)."""
    import hashlib
    import json

    import torch

    payload = {
        "command": " ".join(["python", "examples/mosei_dhmd.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "report": text,
        "results": results,
        "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest() if data.is_file() else None,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
