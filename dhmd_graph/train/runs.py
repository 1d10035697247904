"""Multi-seed runs: one :class:`~dhmd_graph.train.Trainer` per seed, mean ± std over seeds.

A run folder holds ``config.json`` (the train configuration and the caller's
``meta``), one ``seed_<seed>/`` folder per seed (checkpoints, ``log.jsonl`` and
``metrics.json`` with the selected epoch, its validation metrics and the test
metrics) and ``results.json`` (every seed's record plus the mean and standard
deviation of each test metric).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from dhmd_graph.train.config import TrainConfig
from dhmd_graph.train.distributed import DistributedContext, setup_distributed
from dhmd_graph.train.seeds import seed_everything
from dhmd_graph.train.trainer import Callback, Metrics, RunExistsError, Trainer

__all__ = ["format_table", "prepare_run_dir", "run_seeds", "summarize"]


def _write_json(data: object, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)


def prepare_run_dir(
    out_dir: str | Path, context: DistributedContext, *, resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Check that ``out_dir`` may receive a run, clearing an old one if ``overwrite``.

    Raises:
        RunExistsError: If ``out_dir`` holds a run (``results.json``, ``config.json`` or
            a ``seed_*`` folder) and neither ``resume`` nor ``overwrite`` is set.
        ValueError: If both ``resume`` and ``overwrite`` are set.
    """
    if resume and overwrite:
        raise ValueError("choose one of resume (continue the run) and overwrite (replace it)")
    out_dir = Path(out_dir)
    old = [out_dir / "results.json", out_dir / "config.json", *sorted(out_dir.glob("seed_*"))]
    old = [path for path in old if path.exists()]
    if old and not resume:
        if not overwrite:
            raise RunExistsError(
                f"'{out_dir}' already holds a run ({', '.join(p.name for p in old)}); "
                "pass --resume to continue it, --overwrite to replace it, or choose another --out"
            )
        context.barrier()  # every process has looked before rank 0 deletes
        if context.is_main:
            for path in old:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    if context.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    context.barrier()
    return out_dir


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
    meta: Mapping | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
) -> dict:
    """Train and test one model per seed of ``config.seeds``; return :func:`summarize`'s dict.

    For each seed: seed every generator, ``build_model()``, :meth:`Trainer.fit` on
    ``splits["train"]`` with selection on ``splits["valid"]``, then :meth:`Trainer.test`
    once on ``splits["test"]``. With ``resume``, finished seeds are read back from their
    ``metrics.json`` and an interrupted seed continues from its ``last.pt``.

    Args:
        build_model (Callable[[], nn.Module]): Builds a fresh model (called after seeding).
        splits (Mapping[str, Dataset]): ``"train"``, ``"valid"`` and ``"test"``.
        config (TrainConfig): The optimisation settings and the seeds.
        out_dir (str or PathLike): The run folder.
        metrics (Metrics): As for :class:`Trainer`.
        meta (Mapping, optional): Plain data written to ``config.json`` and every
            checkpoint. (default: :obj:`None`)
        resume (bool, optional): Continue a run in ``out_dir``. (default: :obj:`False`)
        overwrite (bool, optional): Replace a run in ``out_dir``. (default: :obj:`False`)
        callbacks (Sequence[Callback], optional): Passed to each :class:`Trainer`.
            (default: ``()``)
    """
    context = setup_distributed(config.device)
    out_dir = prepare_run_dir(out_dir, context, resume=resume, overwrite=overwrite)
    meta = dict(meta or {})
    if context.is_main:
        _write_json({"train": asdict(config), **meta}, out_dir / "config.json")
    records = []
    for seed in config.seeds:
        seed_dir = out_dir / f"seed_{seed}"
        done = seed_dir / "metrics.json"
        if resume and done.is_file():
            records.append(json.loads(done.read_text()))
            continue
        seed_everything(seed, config.deterministic)
        trainer = Trainer(
            build_model(), config, splits["train"], splits["valid"], seed_dir, metrics=metrics,
            seed=seed, callbacks=callbacks, meta=meta, context=context,
        )
        record = {"seed": seed, **trainer.fit(resume=resume), "test": trainer.test(splits["test"])}
        if context.is_main:
            _write_json(record, done)
        records.append(record)
    results = summarize(records)
    if context.is_main:
        _write_json(results, out_dir / "results.json")
    return results
