r"""Does the dynamic graph route by the sample? Evidence on data where it must.

Question: on :mod:`~dhmd_graph.data.synthetic_routing` (continuous per-sample reliability
per modality, an unreliable modality pointing to a wrong label, reliability visible only
in the temporal structure of the noise except in 40 % of the samples, where a visible
context decides), do the GD-Units' learned edge weights :math:`E` follow the teachers'
reliability, and what does each stage and routing switch add to the test error?

Per arm and seed (the same data, schedule and small model; selection on valid, the test
split once with the selected checkpoint), on the test split:

- test ``MAE``, ``Corr``, ``Non0_acc_2``;
- per space (homogeneous, heterogeneous) and teacher: the Pearson correlation over the
  samples between the teacher's outgoing learned weight (the sum of :math:`E` over its
  edges in the sample) and its reliability :math:`\rho`, for the trained scorer, for an
  **untrained-scorer control** (the trained model with its GD-Units' parameters freshly
  drawn: the representations are the trained ones, the scorer never trained) and, where
  there is a prior, the prior alone (constant per edge type, so no correlation: its
  routing accuracy is given);
- **routing accuracy**: how often a sample's top teacher (largest outgoing :math:`E`) is
  its most reliable modality (chance 1/3), also apart for the samples with and without a
  visible context.

Arms: ``default`` (the library's defaults: since this script's evidence, the routing
switches), ``reference_switches`` (every routing switch at the DMD reference's behaviour:
the defaults before), ``dmd_structure`` (DMD's structure: no
dictionary, GD-Units as losses only, DMD's fusion), ``no_distillation`` (no GD loss or
output and no dictionary; DHMD's fusion kept), ``routing`` (every routing switch of ours
on: pair-wise scorer on temporal statistics, edge target from the teachers' errors, the GD
losses not training :math:`w`, the prior annealed, the label-aware contrastive loss on the
representations, cross-modal in the homogeneous space only), and ``routing`` with one
switch or stage undone at a time (``-target``, ``-pairwise``, ``-statistics``,
``-anneal``, ``+w_grad``, ``-contrastive``, ``sample_contrastive``: the default
contrastive loss on the reconstructions).

Run ``nice -n 10 python benchmarks/routing_evidence.py`` (all arms, 3 seeds); ``--arms``
for a subset, ``--quick`` for a smoke run whose numbers mean nothing. Writes
``benchmarks/results/routing_evidence.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from common import format_table, markdown_table, write_results

from dhmd_graph.config import DHMDConfig, GraphConfig, apply_overrides
from dhmd_graph.data import load_mmsa
from dhmd_graph.data.batch import MultimodalDataset, collate
from dhmd_graph.data.safe_pickle import load_pickle
from dhmd_graph.data.synthetic import RELIABILITY_KEY
from dhmd_graph.data.synthetic_routing import (
    CONTEXT_KEY,
    ROUTING_SIZES,
    RoutingStructure,
    default_routing_dataset_path,
)
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset
from dhmd_graph.train import TrainConfig, run_seeds

SPACES = ("homogeneous", "heterogeneous")
MODALITIES = ("text", "audio", "vision")
SEEDS = [1111, 1112, 1113]
METRICS = ("MAE", "Corr", "Non0_acc_2")

SCHEDULE = TrainConfig(lr=2e-3, batch_size=64, accumulation_steps=1, max_epochs=16,
                       lr_patience=3, early_stop_patience=16, seeds=SEEDS, progress=False)
"""Adam at 2e-3 on batches of 64 for 16 epochs (no early stop), selection on valid."""


def base_overrides(structure: RoutingStructure) -> list[str]:
    """The small model of every arm, on the ``mosei`` preset: the data's widths, kernel
    3 everywhere, width 16, one layer per encoder, 16 atoms."""
    dims = [f"modalities.{m}.input_dim={d}" for m, d in zip(MODALITIES, structure.dims,
                                                               strict=True)]
    kernels = [f"modalities.{m}.kernel_size=3" for m in MODALITIES]
    return [*dims, *kernels, "width=16", "num_heads=2", "encoder.num_layers=1",
            "encoder.memory_layers=1", "dictionary.atoms=16"]


def _both(key: str, value: str) -> tuple[str, str]:
    return (f"homogeneous_graph.{key}={value}", f"heterogeneous_graph.{key}={value}")


LOSS_ONLY = _both("propagate", "false")
SWITCHES = {
    "target": _both("edge_target", "teacher_error"),
    "pairwise": _both("scorer", "pairwise"),
    "statistics": _both("scorer_input", "statistics"),
    "anneal": _both("prior_schedule", "linear"),  # prior_anneal_steps: set per schedule
    "no_w_grad": _both("loss_trains_weights", "false"),
    "contrastive": ("dictionary.contrastive_input=representation",
                    "dictionary.contrastive_positives=label",
                    "dictionary.contrastive_cross_modal=homogeneous"),
}
"""Each routing switch of ours as model overrides."""


def _routing(*, drop: Sequence[str] = (), add: Sequence[str] = ()) -> tuple[str, ...]:
    return tuple(o for name, values in SWITCHES.items() if name not in drop for o in values
                 ) + tuple(add)


REFERENCE_SWITCHES = tuple(
    override for name in ("scorer", "scorer_input", "edge_target", "loss_trains_weights",
                          "prior_schedule")
    for override in _both(name, str(GraphConfig.__dataclass_fields__[name].default).lower())
) + ("dictionary.contrastive_input=reconstruction", "dictionary.contrastive_positives=sample",
     "dictionary.contrastive_cross_modal=both")
"""Every routing switch back at the DMD reference's behaviour (the presets' defaults before
the evidence of this script made the routing switches theirs)."""

ARMS: dict[str, tuple[str, ...]] = {
    "default": (),
    "reference_switches": REFERENCE_SWITCHES,
    "dmd_structure": ("dictionary.atoms=0", "fusion=dmd", *LOSS_ONLY),
    "no_distillation": ("dictionary.atoms=0", *_both("weight", "0"), *LOSS_ONLY),
    "routing": _routing(),
    "routing-target": _routing(drop=["target"]),
    "routing-pairwise": _routing(drop=["pairwise"]),
    "routing-statistics": _routing(drop=["statistics"]),
    "routing-anneal": _routing(drop=["anneal"]),
    "routing+w_grad": _routing(drop=["no_w_grad"]),
    "routing-contrastive": _routing(add=["dictionary.weight=0"]),
    "routing_sample_contrastive": _routing(drop=["contrastive"]),
}


@torch.no_grad()
def outgoing_weights(model: DHMD, dataset: MultimodalDataset, batch_size: int = 200
                     ) -> dict[str, dict[str, np.ndarray]]:
    r"""Per space ``{"learned": (N, M), "prior": (N, M) or None}``: every teacher's
    outgoing learned weight :math:`\sum_j E_{i \rightarrow j}` (and prior weight) per
    sample, in evaluation mode."""
    model.eval()
    num_modalities = len(model.modalities)
    out: dict[str, dict[str, list]] = {s: {"learned": [], "prior": []} for s in SPACES}
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size,
                                                                len(dataset)))])
        output = model(batch)
        for space, values in output.spaces.items():
            teacher = values.edges.edge_index[0]
            for part in ("learned", "prior"):
                weight = getattr(values.edges, part)
                if weight is None:
                    continue
                total = torch.zeros(len(batch) * num_modalities, dtype=weight.dtype)
                total.index_add_(0, teacher, weight)
                out[space][part].append(total.view(len(batch), num_modalities).numpy())
    return {space: {part: np.concatenate(v) if v else None for part, v in parts.items()}
            for space, parts in out.items()}


def untrained_scorer(model: DHMD, seed: int) -> DHMD:
    """A copy of ``model`` whose GD-Units' parameters are freshly drawn (the control)."""
    control = copy.deepcopy(model)
    torch.manual_seed(seed)
    for space in control.spaces.values():
        space.graph.reset_parameters()
    return control


def routing_stats(weights: np.ndarray, reliability: np.ndarray, context: np.ndarray
                  ) -> dict:
    """Per-teacher correlations of ``weights`` ``(N, M)`` with ``reliability`` and the
    routing accuracy (all samples, visible context, hidden)."""
    corr = {}
    for m, name in enumerate(MODALITIES):
        spread = weights[:, m].std()
        corr[name] = (float(np.corrcoef(weights[:, m], reliability[:, m])[0, 1])
                      if spread > 1e-6 else float("nan"))
    hit = weights.argmax(axis=1) == reliability.argmax(axis=1)
    visible = context >= 0
    return {"corr": corr, "routing_acc": float(hit.mean()),
            "routing_acc_context": float(hit[visible].mean()),
            "routing_acc_hidden": float(hit[~visible].mean()),
            "mean_weight": {name: float(weights[:, m].mean())
                            for m, name in enumerate(MODALITIES)}}


def evaluate_routing(model: DHMD, seed: int, test: MultimodalDataset,
                     context: np.ndarray) -> dict:
    """Trained, untrained-control and prior-alone :func:`routing_stats` per space."""
    reliability = np.asarray(test.extras[RELIABILITY_KEY])
    trained = outgoing_weights(model, test)
    control = outgoing_weights(untrained_scorer(model, seed), test)
    result = {}
    for space in SPACES:
        result[space] = {"trained": routing_stats(trained[space]["learned"], reliability,
                                                  context),
                         "untrained": routing_stats(control[space]["learned"], reliability,
                                                    context)}
        if trained[space]["prior"] is not None:
            result[space]["prior"] = routing_stats(trained[space]["prior"], reliability,
                                                   context)
    return result


def _mean_std(values: Sequence[float]) -> str:
    array = np.asarray(values, dtype=float)
    return f"{np.nanmean(array):.3f} ± {np.nanstd(array):.3f}"


def summary_rows(arm: str, records: Sequence[Mapping]) -> list[dict]:
    """One table row per space: correlations per teacher (per seed), routing accuracy."""
    rows = []
    for space in SPACES:
        row: dict = {"arm": arm, "space": space[:3]}
        for name in MODALITIES:
            values = [r["routing"][space]["trained"]["corr"][name] for r in records]
            control = [r["routing"][space]["untrained"]["corr"][name] for r in records]
            row[f"r({name[0]})"] = "/".join(f"{v:+.2f}" for v in values)
            row[f"ctl({name[0]})"] = "/".join(f"{v:+.2f}" for v in control)
        row["route_acc"] = _mean_std([r["routing"][space]["trained"]["routing_acc"]
                                      for r in records])
        row["hidden"] = _mean_std([r["routing"][space]["trained"]["routing_acc_hidden"]
                                   for r in records])
        row["ctl_acc"] = _mean_std([r["routing"][space]["untrained"]["routing_acc"]
                                    for r in records])
        if "prior" in records[0]["routing"][space]:
            row["prior_acc"] = f"{records[0]['routing'][space]['prior']['routing_acc']:.3f}"
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny data, two epochs, one seed (a smoke run)")
    parser.add_argument("--arms", default=",".join(ARMS),
                        help=f"comma-separated subset of {', '.join(ARMS)} (default: all)")
    parser.add_argument("--epochs", type=int, default=SCHEDULE.max_epochs)
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="how many of the seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--name", default=None, help="results file stem")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.arms.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ARMS))
    if unknown or not names:
        parser.error(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    torch.set_num_threads(args.threads)

    sizes = {"train": 96, "valid": 32, "test": 64} if args.quick else dict(ROUTING_SIZES)
    epochs = 2 if args.quick else args.epochs
    schedule = dataclasses.replace(SCHEDULE, max_epochs=epochs, early_stop_patience=epochs,
                                   seeds=SEEDS[:1] if args.quick else SEEDS[:args.seeds])
    path = default_routing_dataset_path(sizes, seed=0)
    splits = load_mmsa(path)
    context = np.asarray(load_pickle(path)["test"][CONTEXT_KEY])
    batches = -(-sizes["train"] // schedule.batch_size) * schedule.max_epochs
    anneal = [*_both("prior_anneal_steps", str(max(1, batches // 2)))]
    base: DHMDConfig = apply_overrides(preset("mosei"), base_overrides(RoutingStructure()))

    arms, rows, table = {}, [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="routing_evidence_") as scratch:
        for index, arm in enumerate(names):
            overrides = list(ARMS[arm]) + anneal
            config = apply_overrides(base, overrides)
            models: list[DHMD] = []

            def build(config=config, models=models) -> DHMD:
                models.append(DHMD(config))
                return models[-1]

            results = run_seeds(build, splits, schedule, Path(scratch) / f"{index:02d}",
                                metrics=regression_metrics, collate_fn=collate, overwrite=True, meta={"arm": arm})
            records = []
            for model, record in zip(models, results["seeds"], strict=True):
                records.append({"seed": record["seed"], "best_epoch": record["best_epoch"],
                                "test": record["test"],
                                "routing": evaluate_routing(model, record["seed"],
                                                            splits["test"], context)})
            arms[arm] = {"overrides": list(ARMS[arm]), "mean": results["mean"],
                         "std": results["std"], "seeds": records}
            row = {"arm": arm, **{m: f"{results['mean'][m]:.4f} ± {results['std'][m]:.4f}"
                                  for m in METRICS},
                   "best_epochs": "/".join(str(r["best_epoch"]) for r in records)}
            rows.append(row)
            table += summary_rows(arm, records)
            print(f"[{index + 1}/{len(names)}] {arm}: MAE {row['MAE']}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

    print(f"\nTest metrics, seeds {', '.join(map(str, schedule.seeds))}:")
    print(format_table(rows))
    print("\nRouting on the test split: per teacher (t, a, v) the correlation of its outgoing "
          "E with its reliability, per seed; ctl = untrained-scorer control; route_acc = top "
          "teacher is the most reliable (chance 0.333), hidden = samples without context:")
    print(format_table(table))
    settings = {"quick": args.quick, "data": path.name, "sizes": sizes,
                "schedule": dataclasses.asdict(schedule), "arms": names, "threads": args.threads,
                "base": "preset('mosei') + " + " ".join(base_overrides(RoutingStructure())),
                "anneal": anneal, "wall_s": round(time.perf_counter() - started, 1)}
    name = args.name or ("routing_evidence_quick" if args.quick else "routing_evidence")
    out = write_results(name, rows, settings=settings, output_dir=args.output_dir,
                        extra={"routing_rows": table, "arms": arms},
                        report=markdown_report(rows, table))
    print(f"\nwritten to {out}")
    return arms


def markdown_report(rows: Sequence[Mapping[str, str]],
                    routing_rows: Sequence[Mapping[str, str]]) -> str:
    """The test metrics and the routing table as the Markdown of the model guide."""
    def table(records: Sequence[Mapping[str, str]]) -> str:
        return markdown_table([(column, lambda row, column=column: row[column])
                               for column in records[0]], records)
    return f"{table(rows)}\n\n{table(routing_rows)}"


if __name__ == "__main__":
    main()
