r"""Small data: does ``dhmd train --data FOLDER``, with no ``--set``, beat a linear model?

Question: on the stand-in for a small real dataset (profile ``mosi_utterance`` of
:mod:`dhmd_graph.data.synthetic_utterances`: CMU-MOSI's 1284 / 229 / 686 utterances,
one-step audio and vision, token-id text whose words carry the sentiment), does DHMD with
the defaults ``dhmd train`` picks for small data (the small-data recipe,
:class:`~dhmd_graph.config.SmallDataRecipe`) beat the ridge baseline that every run
prints beside it, on test MAE and Corr, mean over 3 seeds? And how far is the preset's
own schedule (``--paper-schedule``) from both?

Each arm is one ``dhmd train`` call on the same folder (the cached stand-in of seed 0)
with ``--preset mosi --seeds 1111,1112,1113``: ``recipe`` (no other option; the recipe
reads the token ids as a TF-IDF bag of their embedding), ``sequence`` (the recipe with
the token ids read as a sequence, ``--set model.modalities.text.bag_of_words=false``) and
``paper`` (``--paper-schedule``); selection on valid only, the test split evaluated once
per seed. The baselines (training mean; ridge on audio + TF-IDF(text) + vision, alpha on
valid) are the ones the run fits on the same splits (``results.json``). Prints test
``MAE``, ``Corr`` and ``Non0_acc_2`` per arm and baseline (mean ± std over seeds for DHMD)
and each run's verdict line; writes ``benchmarks/results/small_data.json``.

Run ``python benchmarks/small_data.py`` (``recipe`` and ``sequence``, 3 seeds of up to 50
epochs each: about 5 and 20 minutes on 2 CPU cores; ``--arms recipe sequence paper`` adds
the preset's schedule, up to 100 epochs of the full-size model per seed, over an hour
there; ``--device cuda`` on a GPU; ``--quick`` for a smoke run on 60 / 20 / 20 samples and
one epoch, whose numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import format_table, markdown_table, measured_line, write_results

from dhmd_graph.cli import main as dhmd
from dhmd_graph.data.synthetic_utterances import default_utterance_dataset_path

ARMS = {"recipe": (), "sequence": ("--set", "model.modalities.text.bag_of_words=false"),
        "paper": ("--paper-schedule",)}
"""The ``dhmd train`` options of each arm."""
SEEDS = "1111,1112,1113"
METRICS = ("MAE", "Corr", "Non0_acc_2")
QUICK_SIZES = {"train": 60, "valid": 20, "test": 20}


def run_arm(data: Path, out: Path, options: Sequence[str], *, device: str, quick: bool
            ) -> dict:
    """One ``dhmd train`` run; its ``results.json``."""
    settings = [f"train.device={device}"] + (["train.max_epochs=1"] if quick else [])
    status = dhmd(["train", "--data", str(data), "--preset", "mosi", "--seeds", SEEDS,
                   "--out", str(out), *options, "--set", *settings])
    if status != 0:
        raise SystemExit(f"dhmd train exited with {status}")
    return json.loads((out / "results.json").read_text())


def rows_of(arm: str, results: dict) -> list[dict]:
    """The arm's row (mean ± std over seeds), then one row per baseline."""
    row = {"model": f"DHMD ({arm})"}
    for name in METRICS:
        row[name] = f"{results['mean'][name]:.3f} ± {results['std'][name]:.3f}"
    row["best_epochs"] = "/".join(str(seed["best_epoch"]) for seed in results["seeds"])
    rows = [row]
    for name, baseline in results["baselines"]["results"].items():
        rows.append({"model": f"{name} baseline", **{
            key: f"{baseline['test'][key]:.3f}" for key in METRICS}, "best_epochs": "–"})
    return rows


def markdown_report(rows: Sequence[dict], verdicts: dict, machine: dict, settings: dict
                    ) -> str:
    """The table of ``benchmarks/README.md`` and the small-data guide, with each arm's
    verdict line."""
    lead = (f"{measured_line(machine)} test metrics on the `mosi_utterance` stand-in "
            f"(1284 / 229 / 686), seeds {settings['seeds']}, mean ± std over seeds for "
            "DHMD, best_epochs the selected epoch of each seed:")
    table = markdown_table([(name, lambda row, name=name: row[name])
                            for name in ("model", *METRICS, "best_epochs")], rows)
    verdict_table = markdown_table([("arm", lambda item: item[0]),
                                    ("the run's verdict", lambda item: item[1])],
                                   list(verdicts.items()), right=False)
    return f"{lead}\n\n{table}\n\n{verdict_table}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=["recipe", "sequence"])
    parser.add_argument("--device", default="auto", help="train.device (default: auto)")
    parser.add_argument("--quick", action="store_true", help="a smoke run; numbers mean nothing")
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    data = default_utterance_dataset_path(sizes=QUICK_SIZES if args.quick else None)
    with tempfile.TemporaryDirectory() as scratch:
        results = {arm: run_arm(data, Path(scratch) / arm, ARMS[arm], device=args.device,
                                quick=args.quick) for arm in args.arms}
    write_report(results, data, device=args.device, quick=args.quick,
                 output_dir=args.output_dir)


def write_report(results: dict[str, dict], data: Path, *, device: str, quick: bool,
                 output_dir: Path | None) -> Path:
    """Prints the table and the verdicts of the arms' ``results.json`` and writes the
    results file."""
    rows = [rows_of(arm, found)[0] for arm, found in results.items()]
    rows += rows_of(*next(iter(results.items())))[1:]  # the baselines, once: the same splits
    verdicts = {arm: found["baselines"]["verdict"] for arm, found in results.items()}
    print(format_table(rows, ["model", *METRICS, "best_epochs"]))
    for arm, line in verdicts.items():
        print(f"{arm}: {line}")
    path = write_results("small_data_quick" if quick else "small_data", rows,
                         settings={"arms": list(results), "seeds": SEEDS, "data": str(data),
                                   "device": device, "quick": quick},
                         output_dir=output_dir, extra={"verdicts": verdicts},
                         report=markdown_report)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
