"""Multi-seed runs: one :class:`~dhmd_graph.train.Trainer` per seed, mean ± std over seeds.

A run folder (see :mod:`~dhmd_graph.train.run_folder` for its layout) holds
``config.json`` (the train configuration and the caller's ``meta``), one
``seed_<seed>/`` folder per seed (checkpoints, ``log.jsonl`` and ``metrics.json`` with
the selected epoch, its validation metrics and the test metrics) and ``results.json``
(every seed's record plus the mean and standard deviation of each test metric). A run
holds the folder's writer lock from start to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from dhmd_graph.fields import first_difference
from dhmd_graph.train.config import TrainConfig
from dhmd_graph.train.distributed import DistributedContext, gather_objects, setup_distributed
from dhmd_graph.train.run_folder import RunFolder, RunFolderError
from dhmd_graph.train.seeds import seed_everything
from dhmd_graph.train.trainer import Callback, Collate, Metrics, Trainer

__all__ = ["format_table", "run_seeds", "summarize"]


@contextmanager
def _writing(run: RunFolder, context: DistributedContext, config: dict, *, resume: bool,
             overwrite: bool) -> Iterator[None]:
    """Rank 0 holds the run's lock for the block, prepares the folder and writes (or, on
    ``resume``, checks) ``config.json``; every process learns whether that worked."""
    with ExitStack() as stack:
        error = None
        if context.is_main:
            try:
                stack.enter_context(run.lock())
                run.prepare(resume=resume, overwrite=overwrite)
                if resume:
                    saved = run.read_config()
                    difference = first_difference(saved, json.loads(json.dumps(config)),
                                                  shared_only=True)
                    if difference:
                        raise RunFolderError(
                            f"'{run.config_path}' was written with {difference[0]} = "
                            f"{difference[1]!r}, and the run would continue with "
                            f"{difference[2]!r}; resume with the saved configuration, or "
                            "start a new run")
                else:
                    run.write_config(config)
            except (ValueError, OSError) as caught:  # incl. RunFolderError, RunExistsError
                error = caught
        error = gather_objects(error, context)[0]
        if error is not None:
            raise error
        yield


def summarize(records: Sequence[Mapping], split: str = "test") -> dict:
    """Mean and (population, as MMSA) standard deviation of each seed's metrics.

    Args:
        records (Sequence[Mapping]): One per seed, with ``"seed"`` and the metrics of
            ``split`` under the key ``split``.
        split (str, optional): Which metrics to summarise. (default: ``"test"``)
    """
    names = list(records[0][split])
    values = {name: np.array([record[split][name] for record in records]) for name in names}
    return {
        "split": split,
        "seeds": list(records),
        "mean": {name: float(v.mean()) for name, v in values.items()},
        "std": {name: float(v.std()) for name, v in values.items()},
    }


def format_table(results: Mapping) -> str:
    """:func:`summarize`'s metrics as a text table: one row per metric, with the mean ±
    std over seeds and each seed's value."""
    seeds, split = results["seeds"], results["split"]
    header = ["metric", "mean ± std"] + [f"seed {record['seed']}" for record in seeds]
    rows = [
        [name, f"{mean:.4f} ± {results['std'][name]:.4f}"]
        + [f"{record[split][name]:.4f}" for record in seeds]
        for name, mean in results["mean"].items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_seeds(
    build_model: Callable[[], nn.Module],
    splits: Mapping[str, Dataset],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    metrics: Metrics,
    collate_fn: Collate,
    meta: Mapping | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    report: Callable[[dict], Mapping] | None = None,
) -> dict:
    """Train and test one model per seed of ``config.seeds``; return :func:`summarize`'s dict.

    For each seed: seed every generator, ``build_model()``, :meth:`Trainer.fit` on
    ``splits["train"]`` with selection on ``splits["valid"]``, then :meth:`Trainer.test`
    once on ``splits["test"]``. With ``resume``, finished seeds are read back from their
    ``metrics.json`` and an interrupted seed continues from its ``last.pt``.

    The run holds the folder's writer lock (:meth:`RunFolder.lock`) throughout; the
    folder is checked and ``config.json`` written (or, on ``resume``, compared with the
    saved one) before any seed starts.

    Args:
        build_model (Callable[[], nn.Module]): Builds a fresh model (called after seeding).
        splits (Mapping[str, Dataset]): ``"train"``, ``"valid"`` and ``"test"``.
        config (TrainConfig): The optimisation settings and the seeds.
        out_dir (str or PathLike): The run folder.
        metrics (Metrics): As for :class:`Trainer`.
        collate_fn (Collate): As for :class:`Trainer` (e.g.
            :func:`dhmd_graph.data.collate`).
        meta (Mapping, optional): Plain data written to ``config.json`` and every
            checkpoint. (default: :obj:`None`)
        resume (bool, optional): Continue a run in ``out_dir``. (default: :obj:`False`)
        overwrite (bool, optional): Replace a run in ``out_dir``. (default: :obj:`False`)
        callbacks (Sequence[Callback], optional): Passed to each :class:`Trainer`.
            (default: ``()``)
        report (Callable[[dict], Mapping], optional): Called on the main process with
            :func:`summarize`'s dict; the keys it returns are added to it, and so to
            ``results.json`` (e.g. the baselines beside the model). (default: :obj:`None`)

    Raises:
        RunExistsError: ``out_dir`` holds a run, and neither ``resume`` nor ``overwrite``.
        RunLockedError: Another process is writing ``out_dir``.
        RunFolderError: ``resume`` without the run's ``config.json``, or with settings
            that differ from it.
    """
    context = setup_distributed(config.device)
    run = RunFolder(out_dir)
    with _writing(run, context, {"train": asdict(config), **dict(meta or {})}, resume=resume,
                  overwrite=overwrite):
        records = []
        for seed in config.seeds:
            folder = run.seed(seed)
            if resume and folder.metrics.is_file():
                records.append(folder.read_metrics())
                continue
            seed_everything(seed, config.deterministic)
            trainer = Trainer(
                build_model(), config, splits["train"], splits["valid"], folder.path,
                metrics=metrics, collate_fn=collate_fn, seed=seed, callbacks=callbacks,
                meta=dict(meta or {}), context=context,
            )
            record = {"seed": seed, **trainer.fit(resume=resume),
                      "test": trainer.test(splits["test"])}
            if context.is_main:
                folder.write_metrics(record)
            records.append(record)
        results = summarize(records)
        if context.is_main:
            if report is not None:
                results |= dict(report(results))
            run.write_results(results)
    return results
