r"""Trivial and linear baselines on the same splits as the model, selected on valid only.

A result means little without what the simplest models reach on the same data. For a
dataset's train / valid / test splits, :func:`fit_baselines` fits

* the **trivial predictor**, which ignores the inputs: the training mean for scores, the
  majority class for classes (its log prior as constant scores), the training prior of
  every label for multi-label and binary data (positive where it is above 1/2);
* a **linear model on pooled features**: every modality pooled to one vector per sample
  and concatenated — float features ``(N, T, d)`` by their length-masked mean over time,
  then standardised with the training mean and std; token ids ``(N, T)`` (and the ids of
  BERT tokens ``(N, T, 3)``) as TF-IDF over the ids
  (:func:`~dhmd_graph.data.transforms.tfidf_features`: sublinear term frequency, the
  document frequencies of the training split, rows of unit norm; unigrams, or also the
  bigrams seen in training with ``ngrams=2``). Scores get ridge regression, classes a
  (multinomial) logistic regression, multi-label data one logistic regression per label.
  The regularisation strength is chosen on the valid split, by the task's selection
  metric (:func:`~dhmd_graph.metrics.default_monitor`: ``MAE`` for scores); the test
  split is only evaluated.

Both are scored with the task's metric function of :mod:`dhmd_graph.metrics`, so their
numbers sit beside the model's in one table: :func:`format_baselines` prints them, and
one line per baseline says whether the model beats it — on ``MAE`` and ``Corr`` for
scores, on the selection metric otherwise. A constant prediction has no correlation
(``Corr`` is ``nan``); a model beats it there with any positive ``Corr``.
:func:`run_baselines` does it all for a dataset path.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression, Ridge

from dhmd_graph.data.batch import MultimodalDataset
from dhmd_graph.data.loading import load_dataset
from dhmd_graph.data.transforms import tfidf_features
from dhmd_graph.errors import ConfigError
from dhmd_graph.files import atomic_write
from dhmd_graph.metrics import (
    default_monitor,
    format_table,
    metric_direction,
    task_metric_kind,
    task_metrics,
)
from dhmd_graph.tasks import task_of_labels

__all__ = ["ALPHAS", "BaselineResult", "INVERSE_REGULARISATIONS", "PooledFeatures",
           "baseline_report", "baselines_from_dict", "baselines_to_dict", "best_baseline",
           "compare_to_baselines", "fit_baselines", "format_baselines", "format_report",
           "pooled_features", "run_baselines", "verdict_line", "write_baselines"]

SPLITS = ("train", "valid", "test")
ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
"""The ridge strengths :math:`\alpha` tried on the valid split."""
INVERSE_REGULARISATIONS = tuple(float(c) for c in np.logspace(-3, 3, 13))
"""The inverse strengths :math:`C` of the logistic regressions tried on the valid split."""
_CHUNK = 1024  # samples pooled at once (a memory map is read chunk by chunk)
_REGRESSION_VERDICT = ("MAE", "Corr")


@dataclass(frozen=True)
class BaselineResult:
    r"""One fitted baseline.

    Attributes:
        name (str): ``'mean'``, ``'majority'``, ``'prior'``, ``'ridge'`` or ``'logistic'``.
        description (str): What it is, with the chosen strength, for tables.
        valid (dict[str, float]): Its metrics on the valid split.
        test (dict[str, float]): Its metrics on the test split.
        selected (dict[str, float]): The strength chosen on valid (``alpha`` or ``C``);
            empty for the trivial predictor.
    """

    name: str
    description: str
    valid: dict[str, float]
    test: dict[str, float]
    selected: dict[str, float] = field(default_factory=dict)


@dataclass
class PooledFeatures:
    r"""The pooled inputs of the linear baseline.

    Attributes:
        splits (dict[str, scipy.sparse.csr_matrix]): Per split, ``(N, F)`` features.
        parts (list[str]): What the columns are, in order, e.g. ``'TF-IDF(text)'``.
    """

    splits: dict[str, sparse.csr_matrix]
    parts: list[str]


def _pooled_vectors(array: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(N, d)`` float64 length-masked means of ``(N, T, d)`` features."""
    out = np.empty((len(array), array.shape[2]), dtype=np.float64)
    for lo in range(0, len(array), _CHUNK):
        block = np.asarray(array[lo: lo + _CHUNK], dtype=np.float64)  # (n, T, d)
        length = lengths[lo: lo + _CHUNK]
        valid = np.arange(block.shape[1])[None, :] < length[:, None]  # (n, T)
        out[lo: lo + _CHUNK] = (block * valid[:, :, None]).sum(axis=1) / length[:, None]
    return out


def pooled_features(datasets: Mapping[str, MultimodalDataset],
                    modalities: Sequence[str] | None = None, *, ngrams: int = 1
                    ) -> PooledFeatures:
    r"""Every modality pooled to one row per sample, fitted on the train split (see the
    module docstring): standardised means of float features, TF-IDF of token ids.

    Args:
        datasets (Mapping[str, MultimodalDataset]): ``'train'`` and any other splits.
        modalities (Sequence[str], optional): The modalities to use; :obj:`None` uses
            all. (default: :obj:`None`)
        ngrams (int, optional): Token n-grams up to this length (1 or 2). (default: ``1``)

    Returns:
        PooledFeatures: ``(N, F)`` sparse features per split and what their columns are.

    Raises:
        ConfigError: An unknown modality, or ``ngrams`` not 1 or 2.
    """
    train = datasets["train"]
    names = list(train.modalities if modalities is None else modalities)
    unknown = sorted(set(names) - set(train.modalities))
    if unknown or not names:
        raise ConfigError(f"pooled_features: modalities must be among {list(train.modalities)}; "
                          f"found {names}. Name modalities of the data.")
    if ngrams not in (1, 2):
        raise ConfigError(f"pooled_features: ngrams must be 1 or 2, found {ngrams!r}.")
    blocks: dict[str, list[sparse.csr_matrix]] = {split: [] for split in datasets}
    parts = []
    for name in names:
        if np.issubdtype(train.features[name].dtype, np.integer):  # token ids or BERT tokens
            for split, rows in tfidf_features(datasets, name, ngrams=ngrams).items():
                blocks[split].append(rows)
            parts.append(f"TF-IDF({name}{', bigrams' if ngrams == 2 else ''})")
            continue
        pooled = {split: _pooled_vectors(dataset.features[name], dataset.lengths[name])
                  for split, dataset in datasets.items()}
        mean, std = pooled["train"].mean(axis=0), pooled["train"].std(axis=0)
        std[std == 0] = 1.0
        for split in datasets:
            blocks[split].append(sparse.csr_matrix((pooled[split] - mean) / std))
        parts.append(name)
    return PooledFeatures({split: sparse.hstack(b, format="csr") for split, b in blocks.items()},
                          parts)


def _task(dataset: MultimodalDataset) -> tuple[str, int | None]:
    return task_of_labels(dataset.label_kind, dataset.num_classes)


def _constant(dataset: MultimodalDataset, task: str, size: int) -> tuple[str, str, np.ndarray]:
    """The trivial predictor's name, description and ``size`` predictions."""
    labels = dataset.labels
    if task == "regression":
        mean = float(labels.mean())
        return "mean", f"training mean ({mean:.3f})", np.full(size, mean)
    if task == "multiclass":
        prior = np.bincount(labels, minlength=dataset.num_classes) / len(labels)
        names = dataset.label_names or [str(c) for c in range(dataset.num_classes)]
        scores = np.log(np.maximum(prior, 1e-12))  # (C,) argmax: the majority class
        return ("majority", f"majority class ('{names[int(prior.argmax())]}')",
                np.tile(scores, (size, 1)))
    prior = labels.mean(axis=0) if task == "multilabel" else np.array(labels.mean())
    prior = np.clip(prior, 1e-6, 1 - 1e-6)
    logits = np.log(prior) - np.log1p(-prior)  # (C,) or (): positive where prior > 1/2
    return "prior", "training label prior", np.broadcast_to(logits, (size, *logits.shape)).copy()


def _fit_linear(x: sparse.csr_matrix, labels: np.ndarray, task: str, strength: float):
    """A fitted model's ``predict``: ridge for scores, else logistic regression(s)."""
    if task == "regression":
        return Ridge(alpha=strength).fit(x, labels).predict
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on tiny data
        if task != "multilabel":
            model = LogisticRegression(C=strength, max_iter=2000).fit(x, labels)
            return model.decision_function  # (N,) binary logits or (N, C) scores
        columns = []
        for label in labels.T:  # one logistic regression per label
            if label.min() == label.max():  # present always or never in training
                constant = 20.0 if label[0] else -20.0
                columns.append(lambda z, c=constant: np.full(z.shape[0], c))
            else:
                columns.append(LogisticRegression(C=strength, max_iter=2000)
                               .fit(x, label).decision_function)
    return lambda z: np.stack([column(z) for column in columns], axis=1)  # (N, C)


def fit_baselines(datasets: Mapping[str, MultimodalDataset], *, preset: str | None = None,
                  modalities: Sequence[str] | None = None, ngrams: int = 1,
                  strengths: Iterable[float] | None = None) -> list[BaselineResult]:
    r"""The trivial predictor and the linear model on pooled features (see the module
    docstring), fitted on ``train``, the strength chosen on ``valid``, scored on
    ``valid`` and ``test``.

    Args:
        datasets (Mapping[str, MultimodalDataset]): ``'train'``, ``'valid'``, ``'test'``.
        preset (str, optional): The protocol whose metrics to use (e.g. ``'sims'``,
            ``'humour'``), as :func:`~dhmd_graph.metrics.task_metric_kind`; :obj:`None`
            uses the task's generic metrics. (default: :obj:`None`)
        modalities (Sequence[str], optional): The linear model's modalities; :obj:`None`
            uses all. (default: :obj:`None`)
        ngrams (int, optional): Token n-grams of the TF-IDF features (1 or 2).
            (default: ``1``)
        strengths (Iterable[float], optional): The strengths tried (ridge
            :math:`\alpha`, logistic :math:`C`); :obj:`None` uses :data:`ALPHAS` or
            :data:`INVERSE_REGULARISATIONS`. (default: :obj:`None`)

    Returns:
        list[BaselineResult]: The trivial predictor, then the linear model.
    """
    missing = [split for split in SPLITS if split not in datasets]
    if missing:
        raise ValueError(f"fit_baselines: datasets lack the split(s) {missing}; give "
                         f"{list(SPLITS)}.")
    train = datasets["train"]
    task, classes = _task(train)
    kind = task_metric_kind(task, classes, preset)
    metrics = task_metrics(task, classes, preset, label_names=train.label_names)
    monitor = default_monitor(kind)
    better = min if metric_direction(monitor) == "min" else max

    name, description, _ = _constant(train, task, 0)
    scored = {split: metrics(_constant(train, task, len(datasets[split]))[2],
                             datasets[split].labels) for split in ("valid", "test")}
    results = [BaselineResult(name, description, scored["valid"], scored["test"])]

    features = pooled_features(datasets, modalities, ngrams=ngrams)
    x = features.splits
    grid = list(strengths if strengths is not None
                else ALPHAS if task == "regression" else INVERSE_REGULARISATIONS)
    fits = [(strength, _fit_linear(x["train"], train.labels, task, strength)) for strength in grid]
    valid = [metrics(predict(x["valid"]), datasets["valid"].labels) for _, predict in fits]
    usable = [i for i, m in enumerate(valid) if not math.isnan(m[monitor])] or [0]
    best = better(usable, key=lambda i: valid[i][monitor])
    strength, predict = fits[best]
    key = "alpha" if task == "regression" else "C"
    model = "ridge" if task == "regression" else "logistic"
    results.append(BaselineResult(
        model, f"{model} on {' + '.join(features.parts)} ({key}={strength:.3g} on valid)",
        valid[best], metrics(predict(x["test"]), datasets["test"].labels), {key: strength}))
    return results


def run_baselines(path: str | PathLike, **options: Any) -> list[BaselineResult]:
    r""":func:`fit_baselines` on the dataset at ``path`` (anything
    :func:`~dhmd_graph.data.load_dataset` reads); ``options`` as for :func:`fit_baselines`.
    """
    return fit_baselines(load_dataset(path), **options)


def write_baselines(path: str | PathLike, out: str | PathLike | None = None, *,
                    overwrite: bool = False, **options: Any) -> tuple[str, Path | None]:
    r"""What ``dhmd baseline`` does: :func:`run_baselines` on the dataset at ``path``, as a
    table (:func:`format_baselines`), and, with ``out``, as JSON (the options, the
    selection metric and :func:`baselines_to_dict`).

    Args:
        path (str or PathLike): The dataset.
        out (str or PathLike, optional): A ``.json`` file to write. (default: :obj:`None`)
        overwrite (bool, optional): Replace an existing ``out``. (default: :obj:`False`)
        **options: As for :func:`fit_baselines`.

    Returns:
        tuple: The text, and the file written (:obj:`None` without ``out``).

    Raises:
        UserError: A bad dataset or option, or ``out`` exists without ``overwrite``
            (checked before anything is fitted).
    """
    target = None if out is None else Path(out)
    if target is not None and target.exists() and not overwrite:
        raise ConfigError(f"--out '{target}': the file exists; choose another path, or pass "
                          "--overwrite to replace it.")
    datasets = load_dataset(path)
    baselines = fit_baselines(datasets, **options)
    text = format_baselines(baselines)
    if target is not None:
        train = datasets["train"]
        task, classes = _task(train)
        monitor = default_monitor(task_metric_kind(task, classes, options.get("preset")))
        record = {"data": str(Path(path).resolve()), "fitted_on": "train",
                  "selected_on": "valid", "monitor": monitor,
                  "options": {k: list(v) if isinstance(v, (list, tuple)) else v
                              for k, v in options.items()},
                  "baselines": baselines_to_dict(baselines)}
        atomic_write(target, json.dumps(record, indent=2) + "\n")
    return text, target


def _verdict_keys(baseline: BaselineResult) -> tuple[str, ...]:
    if all(key in baseline.test for key in _REGRESSION_VERDICT):
        return _REGRESSION_VERDICT
    return ()


def _comparison(model: Mapping[str, float], baseline: BaselineResult, monitor: str,
                split: str) -> tuple[bool, str] | None:
    """Whether ``model`` beats ``baseline`` on ``split``, and the numbers compared;
    :obj:`None` when they share no metric to compare (e.g. another task's metrics)."""
    theirs = getattr(baseline, split)
    keys = [key for key in _verdict_keys(baseline) or (monitor,) if key in model and key in theirs]
    if not keys:
        return None
    parts, wins = [], []
    for key in keys:
        mine, other = float(model[key]), float(theirs[key])
        if math.isnan(other) and key == "Corr":
            other, shown = 0.0, "none"
        else:
            shown = f"{other:.4f}"
        win = (mine < other) if metric_direction(key) == "min" else (mine > other)
        wins.append(win)
        parts.append(f"{key} {mine:.4f} vs {shown} ({'better' if win else 'not better'})")
    return all(wins), ", ".join(parts)


def compare_to_baselines(model: Mapping[str, float], baselines: Sequence[BaselineResult],
                         *, monitor: str, split: str = "test") -> list[str]:
    r"""One line per baseline: whether ``model`` beats it on ``split``.

    Scores are compared on ``MAE`` and ``Corr`` (a baseline's undefined ``Corr``, that of
    a constant prediction, counts as 0), everything else on ``monitor``, the selection
    metric; beating means strictly better on every metric compared.

    Args:
        model (Mapping[str, float]): The model's metrics on ``split``.
        baselines (Sequence[BaselineResult]): From :func:`fit_baselines`.
        monitor (str): The task's selection metric (e.g. ``'F1_weighted'``).
        split (str, optional): ``'valid'`` or ``'test'``. (default: ``'test'``)
    """
    lines = []
    for baseline in baselines:
        compared = _comparison(model, baseline, monitor, split)
        if compared is None:
            lines.append(f"model and the {baseline.name} baseline share no metric on {split}")
            continue
        verdict = "beats" if compared[0] else "does NOT beat"
        lines.append(f"model {verdict} the {baseline.name} baseline on {split}: {compared[1]}")
    return lines


def best_baseline(baselines: Sequence[BaselineResult], monitor: str) -> BaselineResult:
    """The baseline with the best ``monitor`` on the valid split (chosen on valid, as a
    model is); ties and undefined values go to the later, fitted one."""
    direction = metric_direction(monitor)

    def key(baseline: BaselineResult) -> float:
        value = float(baseline.valid.get(monitor, math.nan))
        if math.isnan(value):
            return -math.inf
        return -value if direction == "min" else value

    return max(reversed(baselines), key=key)


def verdict_line(model: Mapping[str, float], baselines: Sequence[BaselineResult], *,
                 monitor: str, split: str = "test", name: str = "DHMD") -> str:
    r"""One line: whether ``model`` beats the best baseline (:func:`best_baseline`) on
    ``split``, naming the baseline and the metrics compared, e.g. ``DHMD does NOT beat the
    best baseline (ridge, best valid MAE) on test: MAE 1.3880 vs 1.1110 (not better), Corr
    0.2820 vs 0.5350 (not better)``."""
    best = best_baseline(baselines, monitor)
    compared = _comparison(model, best, monitor, split)
    if compared is None:
        return f"{name} and the best baseline ({best.name}) share no metric on {split}"
    verdict = "beats" if compared[0] else "does NOT beat"
    return (f"{name} {verdict} the best baseline ({best.name}, best valid {monitor}) on "
            f"{split}: {compared[1]}")


def format_baselines(baselines: Sequence[BaselineResult],
                     model: Mapping[str, Mapping[str, float]] | None = None, *,
                     monitor: str | None = None, split: str = "test") -> str:
    r"""The baselines' metrics on ``split`` as a table (the model's row first, where
    given), then :func:`compare_to_baselines`'s lines.

    Args:
        baselines (Sequence[BaselineResult]): From :func:`fit_baselines`.
        model (Mapping[str, Mapping[str, float]], optional): The model's metrics per split,
            e.g. ``{'valid': {...}, 'test': {...}}`` (averaged over seeds, say).
            (default: :obj:`None`)
        monitor (str, optional): The selection metric for the verdict of classes; required
            with ``model`` unless the metrics are scores (``MAE`` and ``Corr``).
            (default: :obj:`None`)
        split (str, optional): The split shown. (default: ``'test'``)
    """
    rows = {} if model is None else {"model": dict(model[split])}
    rows |= {baseline.name: getattr(baseline, split) for baseline in baselines}
    lines = [f"baselines on {split} (fitted on train, selected on valid):", format_table(rows)]
    lines += [f"  {b.name}: {b.description}" for b in baselines]
    if model is not None:
        if monitor is None and not all(_verdict_keys(b) for b in baselines):
            raise ValueError("format_baselines: name the selection metric (monitor=...) to "
                             "compare a classification model with its baselines.")
        lines += compare_to_baselines(model[split], baselines, monitor=monitor or "MAE",
                                      split=split)
    return "\n".join(lines)


def baselines_to_dict(baselines: Sequence[BaselineResult]) -> dict[str, dict[str, Any]]:
    """The baselines as JSON-able data, by name (for a run's ``results.json``)."""
    return {baseline.name: {k: v for k, v in asdict(baseline).items() if k != "name"}
            for baseline in baselines}


def baselines_from_dict(data: Mapping[str, Mapping[str, Any]]) -> list[BaselineResult]:
    """The inverse of :func:`baselines_to_dict`."""
    return [BaselineResult(name, **dict(fields)) for name, fields in data.items()]


def baseline_report(baselines: Sequence[BaselineResult], model: Mapping[str, float], *,
                    monitor: str, split: str = "test") -> dict[str, Any]:
    r"""What a run's ``results.json`` holds under ``"baselines"``: the baselines
    (:func:`baselines_to_dict`), the selection metric, one comparison line per baseline
    and the verdict against the best one (:func:`verdict_line`).

    Args:
        baselines (Sequence[BaselineResult]): From :func:`fit_baselines`.
        model (Mapping[str, float]): The model's metrics on ``split`` (mean over seeds).
        monitor (str): The selection metric.
        split (str, optional): The split compared. (default: ``'test'``)
    """
    return {"fitted_on": "train", "selected_on": "valid", "split": split, "monitor": monitor,
            "results": baselines_to_dict(baselines),
            "comparisons": compare_to_baselines(model, baselines, monitor=monitor, split=split),
            "verdict": verdict_line(model, baselines, monitor=monitor, split=split)}


def format_report(report: Mapping[str, Any], model: Mapping[str, float]) -> str:
    """:func:`baseline_report`'s record as text: the table with the model's row first,
    the comparisons, then the verdict."""
    baselines = baselines_from_dict(report["results"])
    split = report["split"]
    rows = {"model": dict(model)} | {b.name: getattr(b, split) for b in baselines}
    lines = [f"baselines on {split} (fitted on train, selected on valid), beside the model "
             "(mean over seeds):", format_table(rows)]
    lines += [f"  {b.name}: {b.description}" for b in baselines]
    return "\n".join([*lines, *report["comparisons"], report["verdict"]])
