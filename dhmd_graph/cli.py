"""The ``dhmd`` command line: parse, call, print, exit codes.

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in
:func:`build_parser`. Heavy imports (torch, PyG) happen inside the subcommands so
that ``dhmd --help`` and argument errors stay fast. Bad data or configuration
(:class:`~dhmd_graph.data.errors.DatasetError`, :class:`ValueError` from configs)
exits with status 2 and a one-paragraph message, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dhmd", description="Decoupled Hierarchical Multimodal Distillation (DHMD) tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert a dataset once into a memory-mapped cache")
    convert.add_argument("source", help="an MMSA .pkl file, a MISA folder (train/dev/test.pkl), "
                         "a plain-arrays folder (labels.csv, <modality>.npy) or a .json "
                         "alignment recipe of .csd files")
    convert.add_argument("cache_dir", help="the cache folder to create")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace a cache of another source at CACHE_DIR")
    convert.set_defaults(func=_cmd_convert)

    describe = commands.add_parser("describe", help="summarise a dataset: sizes, shapes, labels")
    describe.add_argument("path", help="any dataset 'dhmd convert' reads, or a cache folder")
    describe.set_defaults(func=_cmd_describe)

    synth = commands.add_parser(
        "synth", help="write a synthetic MMSA pickle with planted structure",
        description="Write a synthetic dataset in the MMSA pickle layout, with the feature "
        "widths, lengths, split sizes and label distributions of a real dataset and a "
        "documented planted structure (see dhmd_graph.data.synthetic).")
    synth.add_argument("out", metavar="OUT.pkl", help="the pickle to write")
    synth.add_argument("--profile", choices=("mosi", "mosei", "sims"), default="mosei",
                       help="the dataset to imitate (default: mosei)")
    synth.add_argument("--unaligned", action="store_true",
                       help="unaligned layout (default: aligned; CH-SIMS is unaligned only)")
    synth.add_argument("--sizes", type=_split_sizes, metavar="TRAIN,VALID,TEST",
                       help="samples per split, e.g. 200,50,50 (default: the real sizes)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.set_defaults(func=_cmd_synth)

    _add_train_and_eval(commands)
    _add_inspect(commands)
    return parser


def _cmd_convert(args: argparse.Namespace) -> int:
    from dhmd_graph.data import convert_to_cache

    cache_dir = convert_to_cache(args.source, args.cache_dir, overwrite=args.overwrite)
    print(f"cache of {args.source} at {cache_dir}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from dhmd_graph.data.loading import describe, load_dataset

    print(describe(load_dataset(args.path)))
    return 0


def _split_sizes(text: str) -> dict[str, int]:
    """``"200,50,50"`` to ``{'train': 200, 'valid': 50, 'test': 50}``."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected three positive integers TRAIN,VALID,TEST such as 200,50,50, found {text!r}")
    return dict(zip(("train", "valid", "test"), map(int, parts), strict=True))


def _cmd_synth(args: argparse.Namespace) -> int:
    from dhmd_graph.data.synthetic import write_synthetic

    try:
        path = write_synthetic(args.out, args.profile, not args.unaligned, args.sizes, args.seed)
    except ValueError as error:  # e.g. an aligned CH-SIMS
        print(f"dhmd synth: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _add_train_and_eval(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train DHMD, one run per seed, and test each selected checkpoint once",
        description="Train DHMD with model selection on the validation split; the test split "
        "is evaluated once per seed, with the selected checkpoint. Works the same under "
        "torchrun (data-parallel).")
    train.add_argument("--data", metavar="PATH", help="an MMSA .pkl file, a cache folder or a "
                       "MISA folder (default: the embedded synthetic dataset of the preset)")
    train.add_argument("--preset", choices=("mosi", "mosei", "sims"),
                       help="model preset and metrics (default: the --config file's, or mosei)")
    train.add_argument("--unaligned", action="store_true",
                       help="unaligned data (default: aligned; CH-SIMS is unaligned only)")
    train.add_argument("--config", metavar="FILE.json", help="a JSON file as a run's "
                       "config.json: optional keys preset, aligned, data, model, train")
    train.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+",
                       action="extend", default=[],
                       help="dotted overrides, e.g. train.lr=3e-4 model.width=40")
    train.add_argument("--seeds", help="comma-separated seeds (default: train.seeds)")
    train.add_argument("--out", metavar="RUN_DIR",
                       help="the run folder (default: runs/<preset>-<aligned|unaligned>)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in RUN_DIR with its saved configuration")
    again.add_argument("--overwrite", action="store_true", help="replace the run in RUN_DIR")
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser(
        "eval", help="metrics of a trained run or checkpoint on one split")
    evaluate.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                          help="a run folder (every seed), a seed folder, or a .pt file")
    evaluate.add_argument("--data", metavar="PATH",
                          help="the dataset (default: the one the run was trained on)")
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default="test",
                          help="the split to evaluate (default: test)")
    evaluate.add_argument("--subsets", action="store_true",
                          help="also the metrics of every non-empty subset of modalities "
                          "(the others removed as missing), averaged over seeds")
    evaluate.set_defaults(func=_cmd_eval)


def _experiment(args: argparse.Namespace) -> dict:
    """The run's configuration from ``--config``, the preset, ``--set`` and ``--seeds``."""
    import dataclasses
    import json
    from pathlib import Path

    from dhmd_graph.config import apply_overrides, config_from_dict, preset
    from dhmd_graph.train import TrainConfig

    file = json.loads(Path(args.config).read_text()) if args.config else {}
    name = args.preset or file.get("preset", "mosei")
    aligned = False if args.unaligned else file.get("aligned", True)
    model = config_from_dict(file["model"]) if "model" in file else preset(name, aligned)
    train = TrainConfig.from_dict(file.get("train", {}))
    overrides: dict[str, list[str]] = {"model": [], "train": []}
    for item in args.overrides:
        section, _, rest = item.partition(".")
        if section not in overrides or not rest:
            raise ValueError(f"--set {item!r}: keys start with 'model.' or 'train.', "
                             "e.g. --set model.width=40 train.lr=3e-4")
        overrides[section].append(rest)
    model = apply_overrides(model, overrides["model"])
    train = train.with_overrides(overrides["train"])
    if args.seeds:
        try:
            seeds = [int(seed) for seed in args.seeds.split(",")]
        except ValueError:
            raise ValueError(f"--seeds: expected comma-separated integers such as 1111,1112, "
                             f"found {args.seeds!r}") from None
        train = dataclasses.replace(train, seeds=seeds)
    return {"preset": name, "aligned": aligned, "model": model, "train": train,
            "data": args.data or file.get("data")}


def _cmd_train(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    if args.resume and (args.config or args.overrides or args.seeds or args.preset
                        or args.unaligned):
        print("dhmd train: error: --resume continues a run with the configuration saved in "
              "RUN_DIR/config.json; drop --config/--set/--seeds/--preset/--unaligned.",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out or f"runs/{args.preset or 'mosei'}-"
               f"{'unaligned' if args.unaligned else 'aligned'}")
    if args.resume and (out / "config.json").is_file():
        args.config = str(out / "config.json")
    try:
        experiment = _experiment(args)
    except (ValueError, OSError) as error:  # name the field or file, and the fix
        print(f"dhmd train: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    from dhmd_graph.config import config_to_dict
    from dhmd_graph.data import DatasetError, load_dataset
    from dhmd_graph.data.synthetic import default_dataset_path
    from dhmd_graph.metrics import metrics_for
    from dhmd_graph.model import DHMD
    from dhmd_graph.train import NonFiniteLossError, RunExistsError, format_table, run_seeds
    from dhmd_graph.train.distributed import teardown_distributed

    data = experiment["data"] or default_dataset_path(experiment["preset"], experiment["aligned"])
    model_config = experiment["model"]
    meta = {"preset": experiment["preset"], "aligned": experiment["aligned"],
            "data": str(data), "model": config_to_dict(model_config)}
    splits = load_dataset(data)
    expected = {m.name: m.input_dim for m in model_config.modalities}
    if splits["train"].feature_dims != expected:
        raise DatasetError(
            "the data does not fit the model configuration", file=data,
            expected=f"modalities and feature widths {expected}",
            found=str(splits["train"].feature_dims),
            fix="Pass the dataset's --preset, or --set model.modalities.NAME.input_dim=WIDTH")
    try:
        results = run_seeds(
            lambda: DHMD(model_config), splits, experiment["train"], out,
            metrics=metrics_for(experiment["preset"]), meta=meta, resume=args.resume,
            overwrite=args.overwrite,
        )
    except RunExistsError as error:
        print(f"dhmd train: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NonFiniteLossError as error:
        print(f"dhmd train: error: {error}", file=sys.stderr)
        return 1
    finally:
        teardown_distributed()
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_table(results))
        print(f"results: {out / 'results.json'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dhmd_graph.data import load_dataset
    from dhmd_graph.inspect.report import load_run_model
    from dhmd_graph.metrics import metrics_for
    from dhmd_graph.train import format_table, predict, summarize
    from dhmd_graph.train.distributed import setup_distributed

    target = Path(args.target)
    if target.is_file():
        checkpoints = [target]
    elif (target / "best.pt").is_file():
        checkpoints = [target / "best.pt"]
    else:
        checkpoints = sorted(target.glob("seed_*/best.pt"))
    if not checkpoints:
        print(f"dhmd eval: error: no checkpoint at '{target}'; give a .pt file, a seed folder "
              "with best.pt, or a run folder with seed_*/best.pt.", file=sys.stderr)
        return EXIT_BAD_INPUT
    context = setup_distributed()
    datasets: dict[str, dict] = {}
    records, subsets = [], []
    for path in checkpoints:
        try:
            model, meta = load_run_model(path)
        except ValueError as error:
            print(f"dhmd eval: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        data = args.data or meta["data"]
        if data not in datasets:
            datasets[data] = load_dataset(data)
        prediction, label = predict(model.to(context.device), datasets[data][args.split],
                                    context)
        records.append({"seed": meta["seed"],
                        args.split: metrics_for(meta["preset"])(prediction, label)})
        if args.subsets:  # every non-empty subset of modalities, the others missing
            from dhmd_graph.inspect.missing import evaluate_subsets

            subsets.append(evaluate_subsets(model, datasets[data][args.split],
                                            metrics=metrics_for(meta["preset"])))
    print(format_table(summarize(records, args.split)))
    if args.subsets:
        from dhmd_graph.inspect.missing import mean_table
        from dhmd_graph.metrics import format_table as metrics_table

        print(f"\n{args.split} metrics by present modalities (mean over {len(subsets)} "
              "checkpoint(s)):")
        print(metrics_table(mean_table(subsets)))
    return 0


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="figures and a report of a trained run: edge weights, feature spaces, "
        "dictionary activations, missing modalities",
        description="Write PNG figures and a Markdown report (report.md) of the selected "
        "checkpoint of a run on one split: the distillation graphs, their evolution during "
        "training, the homogeneous and heterogeneous feature spaces, the dictionary "
        "activations and the metrics of every subset of modalities.")
    inspect.add_argument("run_dir", metavar="RUN_DIR",
                         help="a run folder of 'dhmd train' (its first seed) or a seed folder")
    inspect.add_argument("--data", metavar="PATH",
                         help="the dataset (default: the one the run was trained on)")
    inspect.add_argument("--split", choices=("train", "valid", "test"), default="valid",
                         help="the split to inspect (default: valid)")
    inspect.add_argument("--out", metavar="DIR",
                         help="where to write (default: <seed folder>/inspect-<split>)")
    inspect.add_argument("--pca", action="store_true",
                         help="embed the feature spaces with PCA instead of t-SNE")
    inspect.add_argument("--seed", type=int,
                         help="the seed folder of a multi-seed run (default: the first)")
    inspect.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from dhmd_graph.inspect import inspect_run

    try:
        report = inspect_run(args.run_dir, data=args.data, split=args.split, out_dir=args.out,
                             method="pca" if args.pca else "tsne", seed=args.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"dhmd inspect: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and usage errors exit here, before torch
    from dhmd_graph.data.errors import DatasetError

    try:
        return int(args.func(args) or 0)
    except DatasetError as error:
        print(f"dhmd {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
