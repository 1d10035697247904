"""The ``dhmd`` command line: parse, call, print, exit codes.

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in
:func:`build_parser`. Heavy imports (torch, PyG) happen inside the subcommands so
that ``dhmd --help`` and argument errors stay fast, and so that :func:`main` can choose
the OpenMP wait policy first (:mod:`dhmd_graph.openmp`).

Errors reach the user through one table, :data:`EXIT_TABLE`, as a one-line message
on stderr and an exit status, never as a traceback:

=========================================================  ======  ==================
error                                                      status  message starts
=========================================================  ======  ==================
``KeyboardInterrupt`` (Ctrl-C) or ``SIGTERM``              1       ``interrupted``
:class:`~dhmd_graph.train.NonFiniteLossError`              1       ``error``
:class:`MemoryError`, ``torch.OutOfMemoryError``           1       ``out of memory``
:class:`OSError` ``ENOSPC``/``EDQUOT`` (disk full)         1       ``disk full``
any other :class:`OSError` (a path missing, not writable)  2       ``error``
:class:`ValueError`: bad data (``DatasetError``), bad      2       ``error``
configuration, bad checkpoint (``CheckpointError``), bad
run folder (``RunFolderError``, ``RunLockedError``), a
device this machine lacks
=========================================================  ======  ==================

Usage errors exit with status 2 from :mod:`argparse`. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dhmd_graph.openmp import openmp_defaults

if TYPE_CHECKING:  # annotations only: the subcommands import torch when they run
    from pathlib import Path

    from dhmd_graph.config import DHMDConfig
    from dhmd_graph.train import TrainConfig

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
SENTIMENT_PRESETS = ("mosi", "mosei", "sims")
TASK_PRESETS = ("iemocap4", "iemocap6", "mosei_emotions", "humour", "sarcasm")
"""The classification presets, each also a synthetic task profile (written without torch
loaded, so named here; ``dhmd_graph.config.PRESETS`` holds both)."""

EXIT_TABLE = (
    # (module, exception class, errno values or None for any, exit status, label),
    # first match wins. A class is looked up only if its module is already imported
    # (otherwise it cannot have been raised), so `dhmd describe` never imports torch.
    ("builtins", "KeyboardInterrupt", None, EXIT_FAILED, "interrupted"),
    ("dhmd_graph.train.trainer", "NonFiniteLossError", None, EXIT_FAILED, "error"),
    ("builtins", "MemoryError", None, EXIT_FAILED, "out of memory"),
    ("torch", "OutOfMemoryError", None, EXIT_FAILED, "out of memory"),
    ("builtins", "OSError", (errno.ENOSPC, errno.EDQUOT), EXIT_FAILED, "disk full"),
    ("builtins", "OSError", None, EXIT_BAD_INPUT, "error"),
    ("builtins", "ValueError", None, EXIT_BAD_INPUT, "error"),
)


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
    describe.add_argument("--verify", action="store_true",
                          help="for a cache, also check every file's checksum and every value "
                          "(reads every byte once; the pickle readers always check values)")
    describe.set_defaults(func=_cmd_describe)

    synth = commands.add_parser(
        "synth", help="write a synthetic MMSA or MulT pickle with planted structure",
        description="Write a synthetic dataset with the feature widths, lengths, split sizes "
        "and label distributions of a real dataset and a documented planted structure: "
        "sentiment scores in the MMSA pickle layout (mosi, mosei, sims; see "
        "dhmd_graph.data.synthetic), emotion classes, emotion labels, humour or sarcasm in "
        "MulT's layout (see dhmd_graph.data.synthetic_tasks).")
    synth.add_argument("out", metavar="OUT.pkl", help="the pickle to write")
    synth.add_argument("--profile", choices=SENTIMENT_PRESETS + TASK_PRESETS, default="mosei",
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

    print(describe(load_dataset(args.path, verify=args.verify)))
    if args.verify:
        print(f"verified: {args.path}")
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
    from dhmd_graph.data.synthetic_tasks import write_synthetic_task

    write = write_synthetic_task if args.profile in TASK_PRESETS else write_synthetic
    path = write(args.out, args.profile, not args.unaligned, args.sizes, args.seed)
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
    train.add_argument("--preset", choices=SENTIMENT_PRESETS + TASK_PRESETS,
                       help="model preset and metrics (default: the --config file's, or "
                       "mosei); the task (regression, multiclass, multilabel, binary) and "
                       "the number of classes come from the data's labels")
    train.add_argument("--unaligned", action="store_true",
                       help="unaligned data (default: aligned; CH-SIMS is unaligned only)")
    train.add_argument("--reference", choices=("dmd",),
                       help="train the DMD reference mode instead of DHMD: the preset's "
                       "preset(..., reference='dmd') and the schedule TrainConfig.preset('dmd') "
                       "(mosi and mosei; README 'DMD, exactly')")
    train.add_argument("--config", metavar="FILE.json", help="a JSON file as a run's "
                       "config.json: optional keys preset, aligned, data, model, train")
    train.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+",
                       action="extend", default=[],
                       help="dotted overrides, checked together once all are applied, e.g. "
                       "train.lr=3e-4 model.width=40 model.num_heads=8 train.device=cuda:1")
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
    _add_device(evaluate)
    evaluate.set_defaults(func=_cmd_eval)

    predict = commands.add_parser(
        "predict", help="per-sample predictions of a trained run as a CSV file",
        description="Write one CSV row per sample of a split: its id, the prediction, the "
        "label, the per-modality logits of the homogeneous and heterogeneous spaces and the "
        "distillation edge weights of both graphs (see dhmd_graph.inspect.predictions). The "
        "run's model is checked against the data before anything is written.")
    predict.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                         help="a run folder (its first seed, or --seed), a seed folder, or a "
                         ".pt file")
    predict.add_argument("--data", metavar="PATH",
                         help="the dataset (default: the one the run was trained on)")
    predict.add_argument("--out", metavar="CSV", default="predictions.csv",
                         help="the CSV file to write; an existing one is kept unless "
                         "--overwrite (default: predictions.csv)")
    predict.add_argument("--split", default="test",
                         help="the split to predict (default: test)")
    predict.add_argument("--present", type=_names, metavar="NAMES",
                         help="the observed modalities, e.g. text,audio (the others are "
                         "treated as missing; default: all)")
    predict.add_argument("--seed", type=int,
                         help="the seed folder of a multi-seed run (default: the first)")
    predict.add_argument("--last", action="store_true",
                         help="use the last epoch's checkpoint instead of the best one")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace an existing CSV file at --out")
    _add_device(predict)
    predict.set_defaults(func=_cmd_predict)


def _experiment(args: argparse.Namespace) -> dict:
    """The run's configuration from ``--config``, the preset, ``--set`` and ``--seeds``."""
    import dataclasses

    from dhmd_graph.config import apply_overrides, config_from_dict, preset
    from dhmd_graph.runs import read_experiment
    from dhmd_graph.train import TrainConfig

    file = read_experiment(args.config) if args.config else {}
    name = args.preset or file.get("preset", "mosei")
    aligned = False if args.unaligned else file.get("aligned", True)
    if args.reference and "model" in file:
        raise ValueError(f"--reference {args.reference} builds the model from the preset, but "
                         f"{args.config} has a 'model' section: drop one of the two.")
    model = (config_from_dict(file["model"]) if "model" in file
             else preset(name, aligned, reference=args.reference))
    train = TrainConfig.from_dict(file.get("train", {}))  # refuses unknown keys, bad values
    if args.reference:  # the reference's schedule, with the file's train keys on top
        train = dataclasses.replace(TrainConfig.preset(args.reference), **file.get("train", {}))
    overrides: dict[str, list[str]] = {"model": [], "train": []}
    for item in args.overrides:
        section, _, rest = item.partition(".")
        if section not in overrides or not rest:
            raise ValueError(f"--set {item!r}: keys start with 'model.' or 'train.', "
                             "e.g. --set model.width=48 train.lr=3e-4")
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
    monitor_chosen = "monitor" in file.get("train", {}) or any(
        item.startswith("train.monitor=") for item in args.overrides)
    return {"preset": name, "aligned": aligned, "model": model, "train": train,
            "data": args.data or file.get("data"), "monitor_chosen": monitor_chosen}


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.resume and (args.config or args.overrides or args.seeds or args.preset
                        or args.unaligned or args.reference):
        raise ValueError("--resume continues a run with the configuration saved in "
                         "RUN_DIR/config.json; drop --config/--set/--seeds/--preset/--unaligned/"
                         "--reference.")
    out = Path(args.out or f"runs/{args.preset or 'mosei'}-"
               f"{args.reference + '-' if args.reference else ''}"
               f"{'unaligned' if args.unaligned else 'aligned'}")
    if args.resume:
        from dhmd_graph.runs import RunFolder

        run = RunFolder(out)
        run.read_config()  # refuses a missing folder or config.json before anything is written
        args.config = str(run.config_path)
    experiment = _experiment(args)  # every field checked, naming the field or file

    import dataclasses

    from dhmd_graph.config import config_to_dict
    from dhmd_graph.data import collate
    from dhmd_graph.data.loading import load_for_task
    from dhmd_graph.metrics import default_monitor, task_metric_kind, task_metrics
    from dhmd_graph.model import DHMD
    from dhmd_graph.train import format_table, run_seeds
    from dhmd_graph.train.distributed import teardown_distributed

    main_process = int(os.environ.get("RANK", "0")) == 0
    data = experiment["data"] or _default_data(experiment, main_process)
    splits = load_for_task(data, experiment["model"].task)
    # nothing is written before the model is known to fit the data and train.monitor is
    # one of the metrics reported (a ValueError here exits with status 2)
    model_config = _fit_model(experiment["model"], splits, data, args)
    task = (model_config.task, model_config.num_classes, experiment["preset"])
    metrics = task_metrics(*task, label_names=splits["train"].label_names)
    train_config = experiment["train"]
    if not experiment["monitor_chosen"]:  # select on the task's metric
        train_config = dataclasses.replace(train_config,
                                           monitor=default_monitor(task_metric_kind(*task)))
    valid_labels = splits["valid"].labels  # the metrics reported, to check train.monitor
    train_config.check_monitor(metrics(valid_labels, valid_labels))
    if main_process:
        _say_what_runs(data, splits, model_config, train_config, out)
    meta = {"preset": experiment["preset"], "aligned": experiment["aligned"],
            "data": str(data), "model": config_to_dict(model_config)}
    try:
        results = run_seeds(
            lambda: DHMD(model_config), splits, train_config, out, metrics=metrics,
            collate_fn=collate, meta=meta, resume=args.resume, overwrite=args.overwrite,
        )
    finally:
        teardown_distributed()
    if main_process:
        print(format_table(results))
        print(f"results: {out / 'results.json'}")
    return 0


def _default_data(experiment: dict, main_process: bool) -> Path:
    """Without ``--data``: the preset's synthetic profile at the example's size, said first."""
    from dhmd_graph.data.synthetic import DEMO_SIZES, default_dataset_path
    from dhmd_graph.data.synthetic_tasks import default_task_dataset_path

    if main_process:
        print(f"dhmd train: no --data given: using synthetic {experiment['preset']}-profile "
              f"data of {'/'.join(map(str, DEMO_SIZES.values()))} train/valid/test samples "
              "(generated once; see README 'Synthetic data'). Pass --data PATH for your "
              f"own data, or write the full-size synthetic set with 'dhmd synth OUT.pkl "
              f"--profile {experiment['preset']}' and pass it.", flush=True)
    default = (default_task_dataset_path if experiment["preset"] in TASK_PRESETS
               else default_dataset_path)
    return default(experiment["preset"], experiment["aligned"], sizes=DEMO_SIZES)


def _fit_model(config: DHMDConfig, splits: dict, data: str | Path,
               args: argparse.Namespace) -> DHMDConfig:
    """The model configuration with every input width and vocabulary size
    (:func:`~dhmd_graph.config.fit_inputs`) and the task
    (:func:`~dhmd_graph.config.fit_task`) from the data, checked by one training step on
    two samples.

    ``--set model.modalities.NAME.input_dim/vocab_size`` and ``model.task`` /
    ``model.num_classes`` values are kept and checked; a resumed run, or a ``--config``
    file with a model, keeps (and checks) what its model was built with.

    Raises:
        ValueError: If the model does not fit the data (a :class:`DatasetError` naming
            the file when the model fails on the batch).
    """
    import json
    from pathlib import Path

    import torch

    from dhmd_graph.config import INPUT_FIELDS, TASK_FIELDS, fit_inputs, fit_task
    from dhmd_graph.data import DatasetError, collate
    from dhmd_graph.data.loading import modality_inputs
    from dhmd_graph.model import DHMD

    if args.resume:
        kept = [f"modalities.{name}.{field}" for name in config.modality_names
                for field in INPUT_FIELDS]
    else:
        kept = [item.removeprefix("model.") for item in args.overrides
                if item.startswith("model.")]
    config = fit_inputs(config, modality_inputs(splits), kept)
    train = splits["train"]
    if args.resume or (args.config and "model" in json.loads(Path(args.config).read_text())):
        kept = list(TASK_FIELDS)
    config = fit_task(config, train.label_kind, train.num_classes, kept)
    batch = collate([train[i] for i in range(min(2, len(train)))])
    try:
        with torch.no_grad():
            DHMD(config).eval().training_step(batch)
    except ValueError:
        raise
    except Exception as error:  # a shape or index error deep inside: name it, no traceback
        raise DatasetError(
            "the model cannot run on the data", file=data, split="train",
            expected="a model configuration that fits the data (dhmd describe shows its "
            "modalities, widths and token ids)", found=f"{type(error).__name__}: {error}",
            fix="Check the --set model.* overrides against the data") from error
    return config


def _say_what_runs(data: str | Path, splits: dict, model_config: DHMDConfig,
                   train_config: TrainConfig, out: Path) -> None:
    """One paragraph before training: the data, the model's inputs, the schedule, the folder."""
    sizes = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    inputs = ", ".join(
        f"{m.name} BERT tokens (bert_path={m.bert_path})" if m.bert_path is not None
        else f"{m.name} input_dim={m.input_dim}" if m.input_dim is not None
        else f"{m.name} token ids (vocab_size={m.vocab_size})" for m in model_config.modalities)
    seeds = train_config.seeds
    print(f"data: {data} ({sizes})\nmodel inputs (from the data): {inputs}\n"
          f"schedule: up to {train_config.max_epochs} epochs (early stop after "
          f"{train_config.early_stop_patience} without improvement) for each of {len(seeds)} "
          f"seed(s) {', '.join(map(str, seeds))}, device {train_config.device}\n"
          f"run folder: {out}", flush=True)


def _cmd_eval(args: argparse.Namespace) -> int:
    from dhmd_graph.data import collate
    from dhmd_graph.data.loading import load_for_task
    from dhmd_graph.metrics import task_metrics
    from dhmd_graph.runs import find_checkpoints, load_model
    from dhmd_graph.train import format_table, predict, summarize
    from dhmd_graph.train.distributed import setup_distributed

    checkpoints = find_checkpoints(args.target)  # a .pt file, a seed folder or a run folder
    context = setup_distributed(args.device)  # a device this machine lacks: exit status 2
    datasets: dict[str, dict] = {}
    records, subsets = [], []
    for path in checkpoints:
        model, meta = load_model(path)
        data = args.data or meta["data"]
        if data is None:
            raise ValueError(f"'{path}' does not name the dataset it was trained on; pass --data")
        if data not in datasets:
            datasets[data] = load_for_task(data, model.config.task)
        split = datasets[data][args.split]
        metrics = task_metrics(model.config.task, model.config.num_classes, meta["preset"],
                               split.label_names)
        prediction, label = predict(model.to(context.device), split, context, collate_fn=collate)
        records.append({"seed": meta["seed"], args.split: metrics(prediction, label)})
        if args.subsets:  # every non-empty subset of modalities, the others missing
            from dhmd_graph.inspect.missing import evaluate_subsets

            subsets.append(evaluate_subsets(model, split, metrics=metrics))
    print(format_table(summarize(records, args.split)))
    if args.subsets:
        from dhmd_graph.inspect.missing import mean_table
        from dhmd_graph.metrics import format_table as metrics_table

        print(f"\n{args.split} metrics by present modalities (mean over {len(subsets)} "
              "checkpoint(s)):")
        print(metrics_table(mean_table(subsets)))
    return 0


def _names(text: str) -> list[str]:
    """``--present text,audio`` as a list of names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated modality names such as "
                                         f"text,audio, found {text!r}")
    return names


def _cmd_predict(args: argparse.Namespace) -> int:
    from dhmd_graph.inspect.predictions import predict_run

    out = predict_run(args.target, args.out, data=args.data, split=args.split,
                      present=args.present, seed=args.seed,
                      which="last" if args.last else "best", device=args.device,
                      overwrite=args.overwrite)
    print(f"predictions: {out}")
    return 0


def _add_device(command: argparse.ArgumentParser) -> None:
    command.add_argument("--device", default="auto",
                         help="where the model runs: auto (a GPU when there is one, else the "
                         "CPU), cpu, cuda or cuda:N (default: auto)")


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
    _add_device(inspect)
    inspect.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from dhmd_graph.inspect import inspect_run

    report = inspect_run(args.run_dir, data=args.data, split=args.split, out_dir=args.out,
                         method="pca" if args.pca else "tsne", seed=args.seed,
                         device=args.device)
    print(f"report: {report}")
    return 0


def exit_status(error: BaseException) -> tuple[int, str] | None:
    """The exit status and label of ``error`` in :data:`EXIT_TABLE`; :obj:`None` for a bug."""
    for module, name, codes, status, label in EXIT_TABLE:
        kind = getattr(sys.modules.get(module), name, None)
        if (kind is not None and isinstance(error, kind)
                and (codes is None or getattr(error, "errno", None) in codes)):
            return status, label
    return None


def _message(error: BaseException, label: str) -> str:
    """One line saying what happened and what to do (after ``dhmd COMMAND: ``)."""
    if label == "interrupted":
        text = (f"interrupted{f' by {error}' if str(error) else ''}; temporary files were "
                "removed, finished files and checkpoints kept (continue a run with --resume)")
    elif label == "disk full":
        where = f" writing '{error.filename}'" if getattr(error, "filename", None) else ""
        text = (f"disk full: no space left on the device{where}; nothing half-written was "
                "kept. Free some space and run the command again (--resume continues a run)")
    else:
        text = f"{label}: {error or type(error).__name__}"
    return " ".join(text.split())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.update(openmp_defaults())  # a passive OpenMP wait, set before torch loads
    args = build_parser().parse_args(argv)  # --help and usage errors exit here, before torch
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if in_main_thread:  # SIGTERM runs the same clean-up as Ctrl-C
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args) or 0)
    except BaseException as error:  # every error the user can act on, through EXIT_TABLE
        known = exit_status(error)
        if known is None:  # a bug (or SystemExit): keep the traceback
            raise
        status, label = known
        print(f"dhmd {args.command}: {_message(error, label)}", file=sys.stderr)
        return status
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
