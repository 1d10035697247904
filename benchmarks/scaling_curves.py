r"""How the DHMD training step scales with batch size, sequence length and modalities.

Question: how does the time of one training step (as in ``train_step.py``: forward,
objective, backward, clipping, Adam) grow with

* the **batch size** (MOSEI preset, aligned lengths 50/50/50),
* the **sequence length** (MOSEI preset, batch 16, text 50 steps, audio and vision
  from 50, the aligned length, to 500, the unaligned one),
* the **number of modalities** :math:`M = 2 \dots 6` (custom configurations: the
  MOSEI widths, modality ``m`` with 32 input features and kernel 1, all ``M (M-1)``
  edges, no prior; batch 16, 50 steps each)?

The heterogeneous branch has one cross-modal transformer per ordered pair, so its
cost grows as :math:`M (M-1)`; attention grows quadratically with the length.

Prints one table per sweep, writes ``results/scaling_curves.json`` and the plot
``benchmarks/scaling_curves.png``. Run ``python benchmarks/scaling_curves.py``
(``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import (
    QUICK_OVERRIDES,
    format_table,
    markdown_table,
    measured_line,
    time_function,
    write_results,
)
from train_step import TrainingStep, random_batch

from dhmd_graph.config import DHMDConfig, ModalityConfig, apply_overrides
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset

BATCH_SIZES = (1, 4, 16, 64)
SEQUENCE_LENGTHS = (50, 100, 200, 500)
NUM_MODALITIES = (2, 3, 4, 5, 6)
PLOT = Path(__file__).resolve().parent / "scaling_curves.png"


def modality_config(num_modalities: int, overrides: list[str]) -> DHMDConfig:
    """The MOSEI widths with ``num_modalities`` generic modalities of 32 features."""
    base = preset("mosei")
    config = DHMDConfig(
        modalities=[ModalityConfig(f"m{i}", input_dim=32) for i in range(num_modalities)],
        width=base.width,
        num_heads=base.num_heads,
    )
    return apply_overrides(config, overrides)


def step_time(config: DHMDConfig, batch_size: int, steps: tuple[int, ...],
              repeats: int) -> dict:
    torch.manual_seed(0)
    step = TrainingStep(DHMD(config))
    batch = random_batch(config, batch_size, steps)
    timing = time_function(lambda: step(batch), warmup=1, repeats=repeats, min_run_time=0)
    return {"step_ms": timing.median * 1e3, "step_iqr_ms": timing.iqr * 1e3,
            "samples_per_s": batch_size / timing.median}


def plot(sweeps: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_keys = (("batch_size", "batch size B (MOSEI aligned)"),
                 ("length", "audio/vision length T (MOSEI, B=16)"),
                 ("modalities", "modalities M (B=16, T=50)"))
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, (key, label) in zip(axes, axes_keys, strict=True):
        rows = sweeps[key]
        xs = [row[key] for row in rows]
        ys = [row["step_ms"] for row in rows]
        errors = [row["step_iqr_ms"] / 2 for row in rows]
        axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3)
        axis.set_xlabel(label)
        axis.set_ylabel("training step (ms, median)")
        if key != "modalities":
            axis.set_xscale("log")
            axis.set_yscale("log")
        axis.set_xticks(xs, [str(x) for x in xs])
        axis.minorticks_off()
        axis.grid(True, alpha=0.3)
    threads = torch.get_num_threads()
    figure.suptitle(f"DHMD training step on CPU ({threads} thread{'s' if threads > 1 else ''}; "
                    "bars: IQR)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


SWEEP_LABELS = {"batch_size": "batch size", "length": "audio/vision length",
                "modalities": "modalities (edges)"}


def markdown_report(rows: list[dict], machine: dict, measured_at: dict | None = None) -> str:
    """The rows as the Markdown table of ``benchmarks/README.md``: per sweep, the value
    swept, the step time (median and IQR, ms) and the training samples/s."""
    def value(row: dict) -> str:
        if row["sweep"] == "modalities":
            return f"{row['modalities']} ({row['edges']})"
        return str(row["batch_size" if row["sweep"] == "batch_size" else "length"])
    return "\n".join([measured_line(machine, measured_at), "", markdown_table([
        ("sweep", lambda r: SWEEP_LABELS.get(r["sweep"], r["sweep"])), ("value", value),
        ("step ms (median)", lambda r: f"{r['step_ms']:.0f}"),
        ("IQR ms", lambda r: f"{r['step_iqr_ms']:.0f}"),
        ("samples/s", lambda r: f"{r['samples_per_s']:.1f}"),
    ], rows)])


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sweeps, one layer")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--lengths", type=int, nargs="+", default=list(SEQUENCE_LENGTHS))
    parser.add_argument("--modalities", type=int, nargs="+", default=list(NUM_MODALITIES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--override", nargs="*", default=[])
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--plot", type=Path, default=None,
                        help=f"the PNG to write (default: {PLOT.name} next to this script)")
    args = parser.parse_args(argv)
    overrides = list(args.override)
    text_steps = 50
    if args.quick:
        args.batch_sizes, args.lengths, args.modalities = [2, 4], [8, 16], [2, 3]
        args.repeats, text_steps = 1, 8
        overrides += QUICK_OVERRIDES
    torch.set_num_threads(args.threads)
    mosei = apply_overrides(preset("mosei"), overrides)

    sweeps: dict[str, list[dict]] = {"batch_size": [], "length": [], "modalities": []}
    for batch_size in args.batch_sizes:
        steps = (text_steps,) * 3
        sweeps["batch_size"].append(
            {"batch_size": batch_size, **step_time(mosei, batch_size, steps, args.repeats)})
        print(sweeps["batch_size"][-1], flush=True)
    for length in args.lengths:
        steps = (text_steps, length, length)
        sweeps["length"].append({"length": length, **step_time(mosei, 16 if not args.quick
                                                               else 2, steps, args.repeats)})
        print(sweeps["length"][-1], flush=True)
    for m in args.modalities:
        config = modality_config(m, overrides)
        sweeps["modalities"].append(
            {"modalities": m, "edges": m * (m - 1),
             **step_time(config, 16 if not args.quick else 2, (text_steps,) * m, args.repeats)})
        print(sweeps["modalities"][-1], flush=True)

    for name, rows in sweeps.items():
        print(f"\ntraining step vs {name}")
        print(format_table(rows))
    plot_path = args.plot or (Path(args.output_dir) / PLOT.name if args.output_dir else PLOT)
    plot(sweeps, plot_path)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k != "output_dir"}
    settings["override"] = overrides
    rows = [{"sweep": name, **row} for name, sweep in sweeps.items() for row in sweep]
    path = write_results("scaling_curves_quick" if args.quick else "scaling_curves", rows,
                         settings=settings, output_dir=args.output_dir,
                         extra={"plot": plot_path.name}, report=markdown_report)
    print(f"wrote {path} and {plot_path}")
    return sweeps


if __name__ == "__main__":
    main()
