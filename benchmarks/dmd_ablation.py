r"""Ablation of the DMD reference switches: does each of our defaults earn its place?

Question: for every switch where our default differs from the DMD reference code
(docs/guide/dmd.md), does the reference behaviour train better or worse than ours?

Each arm trains the synthetic default of ``examples/mosei_dhmd.py``: the same data (the
embedded synthetic MOSEI-profile dataset at the example's sizes, aligned), the same
schedule (the example's ``DEMO`` :class:`~dhmd_graph.train.TrainConfig`) and the ``mosei``
preset with :data:`BASE_OVERRIDES` (or ``--base``), on 3 seeds (1111-1113), and the test
split is evaluated once per seed with the checkpoint selected on validation. The arm ``ours`` is that baseline; every other
arm changes **one** switch to the reference's behaviour (its MOSEI values where the
reference has per-dataset values) and keeps everything else ours. The flatten head and the
flatten margin embedding need the padded lengths (50 steps per modality in this file).

Summed accumulation is the same as averaged when a step takes one batch, as in the
example's schedule (batches of 32, no accumulation); for that switch both arms use
batches of 16 accumulated over 2 (the same 32 samples per step) instead.

Prints, per arm, test ``MAE``, ``Corr``, ``Non0_acc_2`` and ``Mult_acc_7`` as mean ± std
over the seeds, and for each reference arm the difference of its mean from ours; writes
``benchmarks/results/dmd_ablation.json``. Keep ours where it is not worse or where it
removes a limitation (any sequence length); otherwise the reference behaviour should
become the default.

Run ``python benchmarks/dmd_ablation.py`` (about 70 CPU-minutes: 14 arms x 3 seeds, about
5 minutes per arm on one thread; on 2 cores, split the switches over two processes with
``OMP_NUM_THREADS=1``). ``--switches`` runs a subset, ``--quick`` a smoke run whose numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import QUICK_OVERRIDES, format_table, markdown_table, measured_line, write_results

from dhmd_graph.config import DHMDConfig, apply_overrides
from dhmd_graph.data import collate, load_dataset
from dhmd_graph.data.synthetic import default_dataset_path
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset
from dhmd_graph.train import TrainConfig, run_seeds

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mosei_dhmd.py"
SEEDS = [1111, 1112, 1113]
METRICS = ("MAE", "Corr", "Non0_acc_2", "Mult_acc_7")
MODALITIES = ("text", "audio", "vision")
PADDED = [f"modalities.{name}.sequence_length=50" for name in MODALITIES]
"""The padded lengths of the aligned synthetic file, which the flatten variants need."""


@dataclasses.dataclass(frozen=True)
class Switch:
    """One switch: the model overrides that give the reference's behaviour, and the
    training-config changes both of its arms use (none: the example's schedule)."""

    reference: tuple[str, ...]
    train: tuple[tuple[str, object], ...] = ()
    reference_train: tuple[tuple[str, object], ...] = ()


SWITCHES: dict[str, Switch] = {
    "positional_encoding": Switch(("encoder.positional_encoding=fairseq",)),
    "readout": Switch(("encoder.pooling=last",)),
    "homogeneous_head": Switch(("encoder.homogeneous_head=flatten", *PADDED)),
    "margin_embedding": Switch(("loss.margin_embedding=flatten", *PADDED)),
    "margin_reduction": Switch(("loss.margin_reduction=anchor",)),
    "repr_reduction": Switch(("heterogeneous_graph.repr_reduction=batch_means",)),
    "cross_modal_norm": Switch(("encoder.cross_modal_norm=shared",)),
    "causal_alignment": Switch(("encoder.causal_alignment=shifted",)),
    "length_mask": Switch(tuple(f"modalities.{name}.length_mask=false" for name in MODALITIES)),
    "input_dropout": Switch(("modalities.text.input_dropout=0.3",)),
    "attention_dropout": Switch(("encoder.attention_dropout=0.4",
                                 "modalities.audio.attention_dropout=0.0",
                                 "modalities.vision.attention_dropout=0.0")),
    "accumulation": Switch((), train=(("batch_size", 16), ("accumulation_steps", 2)),
                           reference_train=(("accumulation", "summed"),)),
}
"""Every switch where our default differs from the DMD reference (docs/guide/dmd.md table, rows
1-5 and 7-12; row 6, the representation weight, is the reference's in both)."""


def _example():
    """The example script as a module: its data sizes and schedules are the ablation's."""
    spec = importlib.util.spec_from_file_location("mosei_dhmd", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASE_OVERRIDES = ("loss.use_margin=true", "loss.margin_reduction=triplet")
"""The base every arm of the docs/guide/dmd.md table was measured on (``--base``'s default): the
``mosei`` preset with DMD's margin loss on (off in our defaults since the DHMD ablation), so
that the margin switches compare two margin losses, and with our former margin averaging,
which this ablation handed to the reference (the default since), so that the script
reproduces the table."""


def arms(switches: Sequence[str]) -> list[tuple[str, str, list[str], dict, dict]]:
    """``(switch, behaviour, model overrides, schedule, reference schedule changes)`` of
    every arm to train: ``ours`` once on the example's schedule (where a switch uses it),
    then the reference behaviour of each switch (and, for a switch with a schedule of its
    own, ours on that schedule first). Arms with the same ``schedule`` compare with the
    same ``ours``."""
    shared = any(not SWITCHES[name].train for name in switches)
    result = [("-", "ours", [], {}, {})] if shared else []
    for name in switches:
        switch = SWITCHES[name]
        schedule = dict(switch.train)
        if schedule:
            result.append((name, "ours", [], schedule, {}))
        result.append((name, "reference", list(switch.reference), schedule,
                       dict(switch.reference_train)))
    return result


def _cell(results: dict, metric: str) -> str:
    return f"{results['mean'][metric]:.4f} ± {results['std'][metric]:.4f}"


def example_setup(quick: bool) -> tuple[dict, TrainConfig, Path, dict]:
    """The example's sizes and schedule (3 seeds, or its quick ones), the path of its
    synthetic data and the loaded splits: what every arm of an ablation trains on."""
    example = _example()
    sizes, schedule = ((example.QUICK_SIZES, example.QUICK) if quick
                       else (example.DEMO_SIZES, dataclasses.replace(example.DEMO, seeds=SEEDS)))
    schedule = dataclasses.replace(schedule, progress=False)
    data = default_dataset_path("mosei", aligned=True, sizes=sizes, seed=0)
    return sizes, schedule, data, load_dataset(data)


def result_row(results: dict, **fields) -> dict:
    """A row of an ablation table: ``fields``, each metric as ``mean ± std`` over the
    seeds of :func:`~dhmd_graph.train.run_seeds`' ``results``, and the raw numbers."""
    return {**fields, **{metric: _cell(results, metric) for metric in METRICS},
            "mean": results["mean"], "std": results["std"],
            "seeds": [record["seed"] for record in results["seeds"]]}


def add_delta(row: dict, baseline: dict, key: str) -> None:
    """Adds to ``row`` the difference of its means from the ``baseline`` means, as
    ``key`` and as the printed ``ΔMAE`` and ``ΔNon0_acc_2`` columns."""
    row[key] = {m: row["mean"][m] - baseline[m] for m in METRICS}
    row["ΔMAE"] = f"{row[key]['MAE']:+.4f}"
    row["ΔNon0_acc_2"] = f"{row[key]['Non0_acc_2']:+.4f}"


def markdown_report(rows: list[dict], machine: dict, settings: dict,
                    measured_at: dict | None = None) -> str:
    """The rows as a Markdown table of the docs: per arm (switch and behaviour, and the
    schedule it changes), each metric as mean ± std over the seeds, and the difference of
    the test MAE from ours on the same schedule."""
    def arm(row: dict) -> str:
        name = "ours" if row["switch"] == "-" else f"{row['switch']}: {row['behaviour']}"
        train = ", ".join(f"{key} {value}" for key, value in row.get("train", {}).items())
        return name + (f" ({train})" if train else "")
    seeds = ", ".join(str(seed) for seed in settings["schedule"]["seeds"])
    return "\n".join([
        measured_line(machine, measured_at),
        f"test split, seeds {seeds}, base `{settings['base']}`.", "",
        markdown_table([("arm", arm), *((metric, lambda r, m=metric: r[m]) for metric in METRICS),
                        ("ΔMAE vs ours", lambda r: r.get("ΔMAE", ""))], rows, right=False)])


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny data, tiny model, one epoch, one seed (a smoke run)")
    parser.add_argument("--switches", default=",".join(SWITCHES),
                        help=f"comma-separated subset of {', '.join(SWITCHES)} (default: all)")
    parser.add_argument("--base", nargs="*", default=list(BASE_OVERRIDES), metavar="KEY=VALUE",
                        help="model overrides of every arm, on the mosei preset (default: "
                        f"{' '.join(BASE_OVERRIDES)}; none: the preset as it is)")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary one)")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    switches = [name.strip() for name in args.switches.split(",") if name.strip()]
    unknown = sorted(set(switches) - set(SWITCHES))
    if unknown:
        parser.error(f"unknown switch(es) {unknown}; choose from {', '.join(SWITCHES)}")

    sizes, schedule, data, splits = example_setup(args.quick)
    base: DHMDConfig = apply_overrides(preset("mosei", aligned=True), args.base)
    if args.quick:
        base = apply_overrides(base, QUICK_OVERRIDES)

    rows, baselines = [], {}
    with tempfile.TemporaryDirectory(prefix="dmd_ablation_") as scratch:
        root = Path(args.out or scratch)
        for index, (switch, behaviour, overrides, shared, extra) in enumerate(arms(switches)):
            model_config = apply_overrides(base, overrides)
            train = shared | extra
            train_config: TrainConfig = dataclasses.replace(schedule, **train)
            results = run_seeds(lambda config=model_config: DHMD(config), splits, train_config,
                                root / f"{index:02d}_{switch}_{behaviour}",
                                metrics=regression_metrics, collate_fn=collate, overwrite=True,
                                meta={"switch": switch, "behaviour": behaviour})
            row = result_row(results, switch=switch, behaviour=behaviour,
                             overrides=overrides, train=train)
            key = tuple(sorted(shared.items()))  # arms on one schedule share one baseline
            if behaviour == "ours":
                baselines[key] = results["mean"]
            else:
                add_delta(row, baselines[key], "delta_vs_ours")
            rows.append(row)
            print(f"[{index + 1}] {switch} {behaviour}: MAE {row['MAE']}", flush=True)

    print(f"\nOne switch at a time, reference behaviour vs ours; {data.name}, "
          f"seeds {', '.join(map(str, schedule.seeds))}, test split:")
    print(format_table(rows, ["switch", "behaviour", *METRICS, "ΔMAE", "ΔNon0_acc_2"]))
    settings = {"quick": args.quick, "data": data.name, "sizes": sizes,
                "schedule": dataclasses.asdict(schedule), "switches": switches,
                "base": f"preset('mosei', aligned=True) + {args.base}"
                + (f" + {QUICK_OVERRIDES}" if args.quick else "")}
    path = write_results("dmd_ablation_quick" if args.quick else "dmd_ablation", rows,
                         settings=settings, output_dir=args.output_dir, report=markdown_report)
    print(f"\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main()
