r"""Ablation of DHMD's parts: does each part of the published structure earn its place?

Question: on the synthetic data built to test it (per-sample modality reliability, so a
dynamic graph has something to route), how much does each part of DHMD as its framework
figure draws it add: the GD-Unit's feature output, the modality-shared dictionary, its
contrastive loss, distillation as a whole, and the modalities other than text; and is the
margin loss (not in the published figure) worth keeping?

Each arm trains the synthetic default of ``examples/mosei_dhmd.py``: the same data (the
embedded synthetic MOSEI-profile dataset at the example's sizes, aligned), the same
schedule (the example's ``DEMO`` :class:`~dhmd_graph.train.TrainConfig`) and the
``mosei`` preset, on 3 seeds (1111-1113); the test split is evaluated once per seed with
the checkpoint selected on validation. Arms (model overrides of the preset):

- ``full``: DHMD as published, our defaults (the preset unchanged);
- ``no_dictionary``: without the dictionaries, GD as in DMD (a loss only; DMD's fusion);
- ``gd_loss_only``: the GD-Units as losses only, their outputs not propagated (the
  dictionary and the fusion read each modality's own representation);
- ``no_contrastive``: the dictionaries without their contrastive loss (:math:`\lambda = 0`);
- ``no_distillation``: no GD-Unit loss or output and no dictionary (the DHMD fusion of
  the representations);
- ``text_only``: the full model with audio and vision absent for every sample, in
  training and test (the model's missing-modality path: no edges, masked inputs);
- ``margin``: the full model with DMD's margin loss (``loss.use_margin=true``; off by
  default since this ablation found no difference, see docs/guide/model.md).

Prints, per arm, test ``MAE``, ``Corr``, ``Non0_acc_2`` and ``Mult_acc_7`` as mean ± std
over the seeds and the difference of each arm's mean from ``full``; writes
``benchmarks/results/hmd_ablation.json``.

Run ``python benchmarks/hmd_ablation.py`` (7 arms x 3 seeds of the example's schedule;
``--arms`` for a subset, ``--quick`` for a smoke run whose numbers mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from common import QUICK_OVERRIDES, format_table, write_results
from dmd_ablation import METRICS, add_delta, example_setup, result_row
from torch import Tensor

from dhmd_graph.config import DHMDConfig, apply_overrides
from dhmd_graph.data.batch import MultimodalBatch, collate
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.model import DHMD, DHMDOutput
from dhmd_graph.presets import preset
from dhmd_graph.train import run_seeds

LOSS_ONLY = ("homogeneous_graph.propagate=false", "heterogeneous_graph.propagate=false")
"""The GD-Units as losses only: each space passes its representations on."""

ARMS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no_dictionary": ("dictionary.atoms=0", "fusion=dmd", *LOSS_ONLY),
    "gd_loss_only": LOSS_ONLY,
    "no_contrastive": ("dictionary.weight=0",),
    "no_distillation": ("dictionary.atoms=0", "homogeneous_graph.weight=0",
                        "heterogeneous_graph.weight=0", *LOSS_ONLY),
    "text_only": (),
    "margin": ("loss.use_margin=true",),
}
"""Every arm's model overrides of the ``mosei`` preset (``text_only`` also masks the
other modalities, see :class:`TextOnlyDHMD`)."""


class TextOnlyDHMD(DHMD):
    """DHMD that sees only the text: every other modality is absent for every sample."""

    def forward(self, batch: MultimodalBatch, present: Tensor | None = None) -> DHMDOutput:
        text = torch.zeros(len(batch), len(self.modalities), dtype=torch.bool,
                           device=batch.labels.device)  # (B, M)
        text[:, self.modalities.index("text")] = True
        return super().forward(batch, text if present is None else present & text)


def build(arm: str, config: DHMDConfig) -> DHMD:
    """The model of ``arm`` on ``config`` (its overrides already applied)."""
    return TextOnlyDHMD(config) if arm == "text_only" else DHMD(config)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny data, tiny model, one epoch, one seed (a smoke run)")
    parser.add_argument("--arms", default=",".join(ARMS),
                        help=f"comma-separated subset of {', '.join(ARMS)} (default: all)")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary one)")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.arms.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ARMS))
    if unknown or not names:
        parser.error(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")

    sizes, schedule, data, splits = example_setup(args.quick)
    base: DHMDConfig = preset("mosei", aligned=True)
    if args.quick:
        base = apply_overrides(base, QUICK_OVERRIDES)

    rows, full = [], None
    with tempfile.TemporaryDirectory(prefix="hmd_ablation_") as scratch:
        root = Path(args.out or scratch)
        for index, arm in enumerate(names):
            overrides = list(ARMS[arm])
            config = apply_overrides(base, overrides)
            results = run_seeds(lambda arm=arm, config=config: build(arm, config), splits,
                                schedule, root / f"{index:02d}_{arm}",
                                metrics=regression_metrics, collate_fn=collate, overwrite=True,
                                meta={"arm": arm})
            row = result_row(results, arm=arm, overrides=overrides)
            if arm == "full":
                full = results["mean"]
            elif full is not None:
                add_delta(row, full, "delta_vs_full")
            rows.append(row)
            print(f"[{index + 1}/{len(names)}] {arm}: MAE {row['MAE']}", flush=True)

    print(f"\nDHMD's parts, one at a time; {data.name}, seeds "
          f"{', '.join(map(str, schedule.seeds))}, test split:")
    print(format_table(rows, ["arm", *METRICS, "ΔMAE", "ΔNon0_acc_2"]))
    settings = {"quick": args.quick, "data": data.name, "sizes": sizes,
                "schedule": dataclasses.asdict(schedule), "arms": names,
                "base": "preset('mosei', aligned=True)"
                + (f" + {QUICK_OVERRIDES}" if args.quick else "")}
    path = write_results("hmd_ablation_quick" if args.quick else "hmd_ablation", rows,
                         settings=settings, output_dir=args.output_dir)
    print(f"\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main()
