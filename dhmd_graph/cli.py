"""The ``dhmd`` command line: parse, call, print, exit codes.

Each subcommand is a ``_cmd_<name>(args) -> int`` function that calls the library and
prints; the work lives in :mod:`dhmd_graph.experiment`, :mod:`dhmd_graph.trained`,
:mod:`dhmd_graph.data` and :mod:`dhmd_graph.inspect`. Heavy imports (torch, PyG) happen
inside the subcommands, so that ``dhmd --help`` and argument errors stay fast, and so that
:func:`main` can choose the OpenMP wait policy first (:mod:`dhmd_graph.openmp`).

Exit statuses (:func:`exit_status`):

=====================================================  ======  =======================
what happened                                          status  stderr
=====================================================  ======  =======================
bad input: a :class:`~dhmd_graph.errors.UserError`     2       one line: ``error: ...``
(data, configuration, checkpoint, run folder), a path
missing or not writable (:class:`OSError`), a usage
error (:mod:`argparse`)
Ctrl-C or ``SIGTERM``                                  1       ``interrupted ...``
a non-finite loss or prediction, out of memory, a      1       one line
full disk
anything else: a bug                                   1       the traceback, then a line
                                                               saying where to report it
=====================================================  ======  =======================
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Sequence

from dhmd_graph import __version__
from dhmd_graph.allocator import keep_freed_memory
from dhmd_graph.openmp import openmp_defaults
from dhmd_graph.protocols import PROTOCOLS

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
REPORT_BUGS = "https://github.com/dhmd-graph/dhmd_graph/issues"
PRESET_NAMES = tuple(PROTOCOLS)
DEVICE_HELP = ("where the model runs: auto (a GPU when there is one, else the CPU), cpu, cuda "
               "or cuda:N (default: auto)")
DATA_FORMATS = (
    # (dhmd_graph.data.FORMATS name, what a path of that format is); every reader once
    ("mmsa", "an MMSA .pkl (MOSI, MOSEI, CH-SIMS): score labels, or its 3-class labels "
     "with --set model.task=multiclass"),
    ("mult", "a MulT .pkl (IEMOCAP, MOSEI emotions): class or multi-hot labels"),
    ("misa", "a MISA folder of train.pkl, dev.pkl and test.pkl"),
    ("arrays", "a plain-arrays folder: labels.csv (id, split, then scores or classes in a "
     "'label' column, multi-hot 'label_<name>' columns, or no labels to predict on) and "
     "one <modality>.npy per modality; dataset.json may declare the kind and class names"),
    ("cache", "a cache folder (manifest.json) written by dhmd convert"),
    ("csd", "a .json alignment recipe of CMU-SDK .csd files"),
)
DATA_FORMATS_HELP = "data formats (every reader; see dhmd_graph.data.load_dataset):\n" + \
    "\n".join(textwrap.fill(text, 88, initial_indent=f"  {name:<7} ",
                             subsequent_indent=" " * 10) for name, text in DATA_FORMATS)
EXIT_TABLE = (
    # (module, exception class, errno values or None for any, exit status, label); first
    # match wins. A class is looked up only if its module is imported (else it was not
    # raised), so `dhmd describe` never imports torch.
    ("builtins", "KeyboardInterrupt", None, EXIT_FAILED, "interrupted"),
    ("dhmd_graph.errors", "NonFiniteLossError", None, EXIT_FAILED, "error"),
    ("dhmd_graph.errors", "NonFinitePredictionError", None, EXIT_FAILED, "error"),
    ("builtins", "MemoryError", None, EXIT_FAILED, "out of memory"),
    ("torch", "OutOfMemoryError", None, EXIT_FAILED, "out of memory"),
    ("dhmd_graph.train.distributed", "PeerTimeoutError", None, EXIT_FAILED, "error"),
    ("builtins", "OSError", (errno.ENOSPC, errno.EDQUOT), EXIT_FAILED, "disk full"),
    ("builtins", "OSError", None, EXIT_BAD_INPUT, "error"),
    ("dhmd_graph.errors", "UserError", None, EXIT_BAD_INPUT, "error"),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dhmd`` parser, one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="dhmd", description="Decoupled Hierarchical Multimodal Distillation (DHMD) tools.")
    parser.add_argument("--version", action="version", version=f"dhmd_graph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    readers = ("an MMSA or MulT .pkl file, a MISA folder (train/dev/test.pkl), a plain-arrays "
               "folder (labels.csv, <modality>.npy), a cache folder, or a .json alignment "
               "recipe of .csd files")

    convert = _command(commands, "convert", _cmd_convert,
                       "convert a dataset once into a memory-mapped cache")
    convert.add_argument("source", help=f"the dataset: {readers}")
    convert.add_argument("cache_dir", help="the cache folder to create")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace a cache of another source at CACHE_DIR")

    describe = _command(commands, "describe", _cmd_describe,
                        "summarise a dataset: sizes, shapes, labels")
    _list_formats(describe)
    describe.add_argument("path", help=f"the dataset: {readers}")
    describe.add_argument("--verify", action="store_true", help="for a cache, also check every "
                          "file's checksum and every value (reads every byte once)")

    synth = _command(commands, "synth", _cmd_synth, "write a synthetic MMSA or MulT pickle "
                     "with planted structure (see dhmd_graph.data.synthetic)")
    synth.add_argument("out", metavar="OUT.pkl", help="the pickle to write")
    synth.add_argument("--profile", choices=PRESET_NAMES, default="mosei",
                       help="the dataset to imitate (default: mosei)")
    synth.add_argument("--unaligned", action="store_true",
                       help="unaligned layout (default: aligned; CH-SIMS is unaligned only)")
    synth.add_argument("--sizes", type=_split_sizes, metavar="TRAIN,VALID,TEST",
                       help="samples per split, e.g. 200,50,50 (default: the real sizes)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    train = _command(commands, "train", _cmd_train, "train DHMD, one run per seed, and test "
                     "each selected checkpoint once (also under torchrun)")
    _list_formats(train)
    train.add_argument("--data", metavar="PATH", help=f"the dataset: {readers} (default: the "
                       "embedded synthetic dataset of the preset)")
    train.add_argument("--preset", choices=PRESET_NAMES, help="model preset and benchmark "
                       "protocol (default: the --config file's, or mosei); the task and the "
                       "classes come from the data's labels")
    train.add_argument("--unaligned", action="store_true",
                       help="unaligned data (default: aligned; CH-SIMS is unaligned only)")
    train.add_argument("--reference", choices=("dmd",), help="the DMD reference mode: its "
                       "model and schedule (mosi and mosei)")
    train.add_argument("--config", metavar="FILE.json", help="a JSON file as a run's "
                       "config.json: optional keys preset, aligned, data, model, train")
    train.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+",
                       action="extend", default=[], help="dotted overrides, checked together, "
                       "e.g. train.lr=3e-4 model.width=40 model.num_heads=8")
    train.add_argument("--seeds", help="comma-separated seeds (default: train.seeds)")
    train.add_argument("--out", metavar="RUN_DIR",
                       help="the run folder (default: runs/<preset>-<aligned|unaligned>)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in RUN_DIR with its saved configuration")
    again.add_argument("--overwrite", action="store_true", help="replace the run in RUN_DIR")
    train.add_argument("--paper-schedule", action="store_true", help="keep the preset's model "
                       "and schedule on small or one-step data (default: the small-data "
                       "recipe, see docs/guide/small-data.md)")
    train.add_argument("--no-baselines", action="store_true", help="do not fit the mean and "
                       "linear baselines beside the model (default: fit and print them)")
    text = train.add_mutually_exclusive_group()
    text.add_argument("--bert", metavar="DIR", help="a local BERT folder for the text "
                      "modality; an MMSA pickle's text_bert tokens are read (nothing is "
                      "downloaded)")
    text.add_argument("--word-vectors", metavar="FILE", help="a local GloVe/word2vec/fastText "
                      ".vec text file starting the text token embedding (its coverage of the "
                      "vocabulary is printed)")
    train.add_argument("--freeze-text", action="store_true",
                       help="with --bert or --word-vectors: do not train them")

    baseline = _command(commands, "baseline", _cmd_baseline, "fit the trivial and linear "
                        "baselines (mean or majority; ridge or logistic on pooled features, "
                        "TF-IDF for token ids) on train, select on valid, score test")
    baseline.add_argument("data", metavar="DATA", help=f"the dataset: {readers}")
    baseline.add_argument("--preset", choices=PRESET_NAMES, help="the protocol whose metrics "
                          "to report (default: the task's generic metrics)")
    baseline.add_argument("--modalities", type=_names, metavar="NAMES", help="the linear "
                          "model's modalities, e.g. text (default: all)")
    baseline.add_argument("--bigrams", action="store_true",
                          help="TF-IDF of token bigrams as well as words")
    baseline.add_argument("--out", metavar="FILE.json", help="also write the baselines as JSON")
    baseline.add_argument("--overwrite", action="store_true", help="replace the file at --out")

    evaluate = _command(commands, "eval", _cmd_eval, "metrics of a trained run on one split")
    _run_arguments(evaluate, "a run folder (every seed), a seed folder, or a .pt file")
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default="test",
                          help="the split to evaluate (default: test)")
    evaluate.add_argument("--subsets", action="store_true", help="also the metrics of every "
                          "non-empty subset of modalities (the others missing)")

    predict = _command(commands, "predict", _cmd_predict, "per-sample predictions of a "
                       "trained run as a CSV file: the prediction, and for classes the "
                       "predicted class and each class's probability; the data may have "
                       "no labels and one split only (see dhmd_graph.inspect.predictions)")
    _run_arguments(predict, "a run folder (its first seed, or --seed, or --ensemble), a seed "
                   "folder, or a .pt")
    predict.add_argument("--out", metavar="CSV", default="predictions.csv", help="the CSV file "
                         "to write (default: predictions.csv)")
    predict.add_argument("--split", default="test", help="the split to predict (default: test)")
    predict.add_argument("--present", type=_names, metavar="NAMES", help="the observed "
                         "modalities, e.g. text,audio (the others missing; default: all)")
    chosen = predict.add_mutually_exclusive_group()
    chosen.add_argument("--seed", type=int, help="the seed of a multi-seed run (default: "
                        "the first); written in the file's seed column")
    chosen.add_argument("--ensemble", action="store_true", help="the mean over every seed's "
                        "checkpoint (predictions and probabilities), the seeds in the seed "
                        "column")
    predict.add_argument("--last", action="store_true", help="the last epoch's checkpoint "
                         "instead of the best one")
    predict.add_argument("--overwrite", action="store_true", help="replace the CSV at --out")

    inspect = _command(commands, "inspect", _cmd_inspect, "figures and a report (report.md) of "
                       "a trained run: edge weights, feature spaces, dictionary, missing "
                       "modalities")
    _run_arguments(inspect, "a run folder (every seed, and a summary across them; or "
                   "--seed) or a seed folder")
    inspect.add_argument("--split", choices=("train", "valid", "test"), default="valid",
                         help="the split to inspect (default: valid)")
    inspect.add_argument("--out", metavar="DIR", help="where to write (default: <seed "
                         "folder>/inspect-<split> per seed, <run folder>/inspect-<split> for "
                         "the summary)")
    inspect.add_argument("--pca", action="store_true", help="PCA instead of t-SNE")
    inspect.add_argument("--seed", type=int, help="only this seed of a multi-seed run "
                         "(default: every seed)")
    compare = _command(commands, "compare", _cmd_compare, "two finished runs side by side: "
                       "per-seed metrics, mean ± std, and B − A with a paired test over the "
                       "shared seeds (see dhmd_graph.inspect.compare)")
    compare.add_argument("run_a", metavar="RUN_A", help="the first run folder (the baseline)")
    compare.add_argument("run_b", metavar="RUN_B", help="the second run folder")
    compare.add_argument("--split", choices=("valid", "test"), default="test",
                         help="whose metrics: the selected epochs' (default: test)")
    compare.add_argument("--metrics", type=_names, metavar="NAMES", help="only these "
                         "metrics, e.g. MAE,Corr (default: every metric of both runs)")
    from dhmd_graph.extract.cli import add_extract_parser  # argparse only, no media library

    add_extract_parser(commands)
    return parser


def _command(commands: argparse._SubParsersAction, name: str, func, text: str
             ) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    command.set_defaults(func=func)
    return command


def _list_formats(command: argparse.ArgumentParser) -> None:
    """Ends ``command``'s help with :data:`DATA_FORMATS`, one line each."""
    command.formatter_class = argparse.RawDescriptionHelpFormatter
    command.epilog = DATA_FORMATS_HELP


def _run_arguments(command: argparse.ArgumentParser, target: str) -> None:
    command.add_argument("target", metavar="RUN", help=target)
    command.add_argument("--data", metavar="PATH",
                         help="the dataset (default: the one the run was trained on)")
    command.add_argument("--device", default="auto", help=DEVICE_HELP)


def _split_sizes(text: str) -> dict[str, int]:
    """``"200,50,50"`` to ``{'train': 200, 'valid': 50, 'test': 50}``."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected three positive integers TRAIN,VALID,TEST such as 200,50,50, found {text!r}")
    return dict(zip(("train", "valid", "test"), map(int, parts), strict=True))


def _names(text: str) -> list[str]:
    """``--present text,audio`` as a list of names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated modality names such as "
                                         f"text,audio, found {text!r}")
    return names


def _cmd_convert(args: argparse.Namespace) -> int:
    from dhmd_graph.data import convert_to_cache

    print(f"cache of {args.source} at "
          f"{convert_to_cache(args.source, args.cache_dir, overwrite=args.overwrite)}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from dhmd_graph.data.loading import describe, load_dataset

    datasets = load_dataset(args.path, verify=args.verify, partial=True)
    print(describe(datasets))
    if set(datasets) != {"train", "valid", "test"} or not all(
            split.labelled for split in datasets.values()):
        print(f"for prediction only (dhmd predict RUN --data {args.path}): training needs "
              "labels and samples in each of train, valid and test")
    if args.verify:
        print(f"verified: {args.path}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from dhmd_graph.data.synthetic import write_synthetic
    from dhmd_graph.data.synthetic_tasks import write_synthetic_task

    sentiment = PROTOCOLS[args.profile].synthetic == "sentiment"
    write = write_synthetic if sentiment else write_synthetic_task
    path = write(args.out, args.profile, not args.unaligned, args.sizes, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from dhmd_graph.experiment import train_experiment

    results, out = train_experiment(
        preset_name=args.preset, unaligned=args.unaligned, reference=args.reference,
        config=args.config, overrides=args.overrides, seeds=args.seeds, data=args.data,
        out=args.out, resume=args.resume, overwrite=args.overwrite,
        paper_schedule=args.paper_schedule, baselines=not args.no_baselines, bert=args.bert,
        word_vectors=args.word_vectors, freeze_text=args.freeze_text)
    if results is not None:  # the main process of a run
        from dhmd_graph.experiment import format_results

        print(format_results(results))
        print(f"results: {out / 'results.json'}")
    return 0


def _cmd_baseline(args: argparse.Namespace) -> int:
    from dhmd_graph.baselines import write_baselines

    text, out = write_baselines(args.data, args.out, overwrite=args.overwrite,
                                preset=args.preset,
                                modalities=args.modalities, ngrams=2 if args.bigrams else 1)
    print(text)
    if out is not None:
        print(f"baselines: {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from dhmd_graph.train import format_table, summarize
    from dhmd_graph.train.distributed import setup_distributed
    from dhmd_graph.trained import TrainedRun

    context = setup_distributed(args.device)  # a device this machine lacks: exit status 2
    runs = TrainedRun.load_all(args.target, device=context.device)
    datasets = [run.split(args.split, args.data) for run in runs]  # checked before computing
    records, reports = [], []
    for run, dataset in zip(runs, datasets, strict=True):
        predictions = run.predict(dataset, context)
        records.append({"seed": run.seed, args.split: run.metric_function(dataset)(*predictions)})
        reports.append(run.class_report(dataset, *predictions))
    print(format_table(summarize(records, args.split)))
    if reports[0] is not None:  # a class task: per-class metrics and the confusion matrix
        from dhmd_graph.metrics import format_class_report, mean_class_report

        print(f"\n{args.split} per class (mean over {len(reports)} checkpoint(s); the "
              "confusion matrix summed over them):")
        print(format_class_report(mean_class_report(reports)))
    if args.subsets:  # every non-empty subset of modalities, the others missing
        from dhmd_graph.inspect.missing import evaluate_subsets, mean_table
        from dhmd_graph.metrics import format_table as metrics_table

        tables = [evaluate_subsets(run.model, dataset, metrics=run.metric_function(dataset))
                  for run, dataset in zip(runs, datasets, strict=True)]
        print(f"\n{args.split} metrics by present modalities (mean over {len(tables)} "
              "checkpoint(s)):")
        print(metrics_table(mean_table(tables)))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from dhmd_graph.inspect.predictions import predict_run

    out = predict_run(args.target, args.out, data=args.data, split=args.split,
                      present=args.present, seed=args.seed, ensemble=args.ensemble,
                      which="last" if args.last else "best", device=args.device,
                      overwrite=args.overwrite)
    print(f"predictions: {out}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from dhmd_graph.inspect import inspect_run

    report = inspect_run(args.target, data=args.data, split=args.split, out_dir=args.out,
                         method="pca" if args.pca else "tsne", seed=args.seed,
                         device=args.device)
    print(f"report: {report}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from dhmd_graph.inspect.compare import compare_runs, format_comparison

    print(format_comparison(compare_runs(args.run_a, args.run_b, split=args.split,
                                         metrics=args.metrics)))
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
    """Runs ``dhmd ARGV`` and returns its exit status (see the module docstring)."""
    os.environ.update(openmp_defaults())  # a passive OpenMP wait, set before torch loads
    keep_freed_memory()  # freed activations stay in the heap for the next step
    args = build_parser().parse_args(argv)  # --help and usage errors exit here, before torch
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if in_main_thread:  # SIGTERM runs the same clean-up as Ctrl-C
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args) or 0)
    except Exception as error:  # KeyboardInterrupt is handled below; SystemExit passes
        known = exit_status(error)
        if known is None:  # a bug: keep the traceback, say so
            traceback.print_exc()
            print(f"dhmd {args.command}: internal error ({type(error).__name__}): this is a "
                  f"bug, not a problem with your input; please report it with the traceback "
                  f"above at {REPORT_BUGS}", file=sys.stderr)
            return EXIT_FAILED
        print(f"dhmd {args.command}: {_message(error, known[1])}", file=sys.stderr)
        return known[0]
    except KeyboardInterrupt as error:
        print(f"dhmd {args.command}: {_message(error, 'interrupted')}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
