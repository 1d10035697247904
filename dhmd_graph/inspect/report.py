r"""The inspection report: every figure of :mod:`dhmd_graph.inspect` and the numbers
behind them, in one Markdown file.

:func:`write_report` takes a model and a split (and optionally the training log) and
writes into one folder:

- ``edges.png``: the edge-weight graphs of both spaces (:mod:`~dhmd_graph.inspect.edges`);
- ``edge_evolution.png``: the mean learned edge weights per epoch, from the log;
- ``spaces.png``: the 2-D embeddings of both spaces (:mod:`~dhmd_graph.inspect.spaces`);
- ``atoms.png``: the dictionary activations (:mod:`~dhmd_graph.inspect.dictionary`);
- ``confusion.png``: for a class task (``multiclass``, ``binary``), the confusion matrix
  (:func:`plot_confusion_matrix`), beside the per-class precision, recall and F1;
- ``report.md``: the figures, their tables, and what they show in a few sentences,
  with the metrics of every subset of modalities (:mod:`~dhmd_graph.inspect.missing`)
  and, where the data plants a per-sample ``modality_reliability`` (the synthetic data),
  how the learned edge weights follow it (:mod:`~dhmd_graph.inspect.reliability`).

:func:`inspect_run` does the same for a run folder written by the trainer, and is what
``dhmd inspect`` calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.data.mmsa import RELIABILITY
from dhmd_graph.inspect.dictionary import atom_usage, plot_atom_activations
from dhmd_graph.inspect.edges import (
    edge_graphs,
    edge_history,
    plot_edge_evolution,
    plot_edge_graphs,
)
from dhmd_graph.inspect.missing import evaluate_subsets
from dhmd_graph.inspect.reliability import edge_reliability
from dhmd_graph.inspect.spaces import (
    SplitOutputs,
    as_batches,
    collect_outputs,
    embed_spaces,
    modality_separation,
    plot_spaces,
)
from dhmd_graph.metrics import (
    class_report,
    metric_direction,
    regression_metrics,
)

__all__ = ["FIGURE_DPI", "inspect_run", "markdown_table", "plot_confusion_matrix",
           "write_report"]

FIGURE_DPI = 80
"""Resolution of the written figures: small PNGs (well under 200 KB) that stay legible."""
Metrics = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; floats are written with 4 decimals."""
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _figure(figure: Figure, path: Path, dpi: int, caption: str) -> list[str]:
    """Saves ``figure`` to ``path``; the Markdown lines that show it."""
    figure.savefig(path, dpi=dpi)
    return [f"![{caption}]({path.name})", ""]


def _edge_section(outputs: SplitOutputs, out_dir: Path, dpi: int) -> list[str]:
    graphs = edge_graphs(outputs)
    lines = ["## Who teaches whom: the distillation graphs", "",
             *_figure(plot_edge_graphs(graphs), out_dir / "edges.png", dpi, "edge weights"),
             "Top row: each arrow teacher → student is drawn with its mean learned weight "
             "E over the samples (input-dependent); width and colour grow with it, on one "
             "scale for both spaces. Bottom row, for a graph with a prior: the fixed prior p "
             "of the same edges, dashed. The distillation weighs each edge with w = E + p; "
             "the tables give w, p and E.", ""]
    for space, graph in graphs.items():
        edges = sorted(graph.edges(data=True), key=lambda edge: -edge[2]["mean"])
        has_prior = any("prior" in data for *_, data in edges)
        header = ["teacher → student", "mean w", "std w", "samples"]
        header += ["prior p", "learned E"] if has_prior else []
        rows = [
            [f"{teacher} → {student}", data["mean"], data["std"], data["count"]]
            + ([data["prior"], data["learned"]] if has_prior else [])
            for teacher, student, data in edges
        ]
        learned = "learned" if has_prior else "mean"
        values = [data[learned] for *_, data in edges]
        uniform = (f" (uniform: {1.0 / len(edges):.3f})"
                   if graph.graph["normalize"] == "graph" else "")
        outgoing = {node: sum(d[learned] for *_, d in graph.out_edges(node, data=True))
                    for node in graph.nodes}
        teacher = max(outgoing, key=outgoing.get)
        strongest = max(edges, key=lambda edge: edge[2][learned])
        lines += [
            f"**{space}** (normalize={graph.graph['normalize']}):",
            "",
            markdown_table(header, rows),
            "",
            f"The strongest learned edge is {strongest[0]} → {strongest[1]}; the learned "
            f"weights range from {min(values):.3f} to {max(values):.3f}{uniform}, and "
            f"{teacher} teaches most (outgoing learned weight {outgoing[teacher]:.3f}).",
            "",
        ]
    return lines


def _reliability_section(outputs: SplitOutputs) -> list[str]:
    if RELIABILITY not in outputs.extras:
        return []
    reliability = outputs.extras[RELIABILITY]  # (N, M)
    rows, differences = [], {}
    for space, values in outputs.spaces.items():
        for teacher, row in edge_reliability(values, reliability, outputs.modalities).items():
            rows.append([space, teacher, row.correlation, row.reliable_mean, row.corrupted_mean,
                         row.difference, f"{row.reliable_count} / {row.corrupted_count}"])
            if row.corrupted_count and row.reliable_count:
                differences[(space, teacher)] = row.difference
    if differences:
        space, teacher = max(differences, key=differences.get)
        largest = differences[(space, teacher)]
        verdict = (f"In {sum(d > 0 for d in differences.values())} of {len(differences)} "
                   "(space, teacher) pairs the teacher sends less learned weight where it is "
                   "corrupted than where it is reliable (the graph routes teaching away from "
                   f"corrupted modalities there); the largest difference is {largest:.3f} "
                   f"({teacher} in the {space} space).")
    else:
        verdict = "No modality is both reliable and corrupted in this split's samples."
    return [
        "## Edge weights and planted modality reliability", "",
        "The data marks, per sample, which modality is corrupted (noise instead of signal). "
        "Per space and teacher: the correlation over the samples between the teacher's "
        "outgoing learned weight E and its reliability (1 reliable, 0 corrupted), and its "
        "mean outgoing E where it is reliable and where it is corrupted.", "",
        markdown_table(["space", "teacher", "correlation", "mean E reliable",
                        "mean E corrupted", "difference", "samples reliable / corrupted"],
                       rows),
        "", verdict, "",
    ]


def _evolution_section(log: Iterable[Mapping], out_dir: Path, dpi: int) -> list[str]:
    history = edge_history(log)
    if not history.spaces:
        return []
    return ["## Edge weights during training", "",
            *_figure(plot_edge_evolution(history), out_dir / "edge_evolution.png", dpi,
                     "edge evolution"),
            f"The mean learned weight E of every edge per epoch ({len(history.epochs)} epochs, "
            "averaged over the training batches; the dotted line is the selected epoch).", ""]


def _space_section(outputs: SplitOutputs, out_dir: Path, dpi: int, method: str,
                   seed: int) -> list[str]:
    embeddings = embed_spaces(outputs, method=method, seed=seed)
    used = "t-SNE" if next(iter(embeddings.values())).method == "tsne" else "PCA"
    separation = {space: modality_separation(values.features, seed=seed)
                  for space, values in outputs.spaces.items()}
    rows = [[space, values["silhouette"], values["knn_purity"], values["chance"],
             values["separation"]] for space, values in separation.items()]
    homogeneous, heterogeneous = separation["homogeneous"], separation["heterogeneous"]
    if homogeneous["separation"] >= heterogeneous["separation"]:
        verdict = ("The homogeneous features do **not** mix more than the heterogeneous ones: "
                   "the decoupling has not separated modality-irrelevant from "
                   "modality-exclusive information")
    elif homogeneous["separation"] < 0.5:
        verdict = ("The homogeneous features of the modalities mix and the heterogeneous ones "
                   "separate, as decoupling intends")
    else:
        verdict = ("The homogeneous features mix more than the heterogeneous ones, as "
                   "decoupling intends, but are still mostly grouped by modality")
    return [
        "## Homogeneous and heterogeneous features", "",
        *_figure(plot_spaces(embeddings, outputs.modalities, outputs.class_names),
                 out_dir / "spaces.png", dpi, "feature spaces"),
        f"{used} of the pooled features of up to 500 samples, every modality of a sample one "
        "point, coloured by modality (left) and "
        f"{'label sign' if outputs.class_names is None else 'class'} (right). "
        "The modality separation "
        "below is scored on up to 3000 points with the cosine distance (10 nearest "
        "neighbours); separation = (purity − chance) / (1 − chance), 0 mixed, 1 separated.",
        "",
        markdown_table(["space", "modality silhouette", "k-NN modality purity", "chance purity",
                        "separation"], rows),
        "",
        f"{verdict} (separation {homogeneous['separation']:.3f} vs "
        f"{heterogeneous['separation']:.3f}; silhouette {homogeneous['silhouette']:.3f} vs "
        f"{heterogeneous['silhouette']:.3f}).",
        "",
    ]


def _dictionary_section(outputs: SplitOutputs, out_dir: Path, dpi: int) -> list[str]:
    usages = {space: atom_usage(values.atoms)
              for space, values in outputs.spaces.items() if values.atoms is not None}
    if not usages:
        return []
    rows = [
        [space, usage.mass.size, usage.atoms_50, usage.atoms_90, usage.entropy, usage.perplexity,
         ", ".join(f"{name} {value:.1f}" for name, value in
                   zip(outputs.modalities, usage.modality_perplexity, strict=True)),
         usage.sample_perplexity, usage.modality_distance]
        for space, usage in usages.items()
    ]
    return [
        "## Dictionary activations", "",
        *_figure(plot_atom_activations(outputs, usages), out_dir / "atoms.png", dpi,
                 "dictionary activations"),
        markdown_table(["space", "atoms", "atoms for 50 %", "atoms for 90 %", "entropy (nats)",
                        "perplexity", "perplexity per modality", "per-sample perplexity",
                        "modality distance (TV)"], rows),
        "",
        "Perplexity is the effective number of atoms in use over the split (1 = collapsed); "
        "the per-sample perplexity is the same for one sample's modality (low with a high "
        "split perplexity: each sample picks few atoms, different samples different ones); "
        "the modality distance is the mean total-variation distance between two modalities' "
        "mean activations (0 = the same atoms, 1 = disjoint atoms).",
        "",
    ]


def _subset_section(table: Mapping[str, Mapping[str, float]],
                    modalities: Sequence[str], monitor: str = "MAE") -> list[str]:
    keys = list(next(iter(table.values())))
    rows = [[name.replace("+", " + "), *(metrics[key] for key in keys)]
            for name, metrics in table.items()]
    full = table["+".join(modalities)]
    sign = 1.0 if metric_direction(monitor) == "min" else -1.0  # smaller is better after it

    def cost(metrics: Mapping[str, float]) -> float:
        return sign * metrics[monitor]

    singles = {name: table[name] for name in modalities}
    best = min(singles, key=lambda name: cost(singles[name]))
    leave_one_out = {name: table["+".join(m for m in modalities if m != name)]
                     for name in modalities}
    costly = max(leave_one_out, key=lambda name: cost(leave_one_out[name]))
    return [
        "## Missing modalities", "",
        "The metrics of this split when only some modalities are present (the absent ones "
        "removed from both graphs and masked from the fusion).", "",
        markdown_table(["present modalities", *keys], rows),
        "",
        f"With all modalities the {monitor} is {full[monitor]:.4f}. The best single modality "
        f"is {best} ({monitor} {singles[best][monitor]:.4f}); leaving out {costly} costs most "
        f"({monitor} {leave_one_out[costly][monitor]:.4f} without it).",
        "",
    ]


def plot_confusion_matrix(report: Mapping) -> Figure:
    """The confusion matrix of a :func:`~dhmd_graph.metrics.class_report` as a heat map:
    rows the true class, columns the predicted one, each cell's count written in it,
    the colour the share of its row (the recall of the row's class on the diagonal)."""
    names = report["classes"]
    counts = np.asarray(report["confusion_matrix"], dtype=np.float64)  # (C, C)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # (C, C) rows sum to 1
    size = 2.5 + 0.6 * len(names)
    figure = Figure(figsize=(size + 1.0, size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(counts):
        axes.text(j, i, f"{count:g}", ha="center", va="center",
                  color="white" if shares[i, j] > 0.5 else "black")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("confusion matrix (colour: share of the true class)")
    figure.colorbar(image, ax=axes, fraction=0.05)
    return figure


def _class_section(model: nn.Module, outputs: SplitOutputs, out_dir: Path, dpi: int
                   ) -> list[str]:
    config = model.config
    if outputs.labels is None:
        return []
    report = class_report(config.task, config.num_classes, outputs.prediction,
                          outputs.labels, outputs.class_names)
    if report is None:
        return []
    rows = [[name, values["precision"], values["recall"], values["F1"], int(values["support"])]
            for name, values in report["per_class"].items()]
    matrix = [[f"true {name}", *row] for name, row in zip(report["classes"],
                                                          report["confusion_matrix"], strict=True)]
    worst = min(report["per_class"], key=lambda name: report["per_class"][name]["F1"])
    return ["## Per class", "",
            markdown_table(["class", "precision", "recall", "F1", "support"], rows), "",
            *_figure(plot_confusion_matrix(report), out_dir / "confusion.png", dpi,
                     "confusion matrix"),
            markdown_table(["", *(f"predicted {name}" for name in report["classes"])], matrix),
            "", f"Rows are the true classes, columns the predicted ones. The class with the "
            f"lowest F1 is {worst} ({report['per_class'][worst]['F1']:.3f}).", ""]


def write_report(
    model: nn.Module,
    data: Dataset | Iterable[MultimodalBatch],
    out_dir: str | os.PathLike,
    *,
    log: Iterable[Mapping] | None = None,
    metrics: Metrics = regression_metrics,
    monitor: str = "MAE",
    method: str = "tsne",
    title: str = "DHMD inspection",
    dpi: int = FIGURE_DPI,
    seed: int = 0,
) -> Path:
    r"""Writes every figure of the inspection and ``report.md`` into ``out_dir``.

    Args:
        model (nn.Module): A trained :class:`~dhmd_graph.DHMD`.
        data (Dataset or Iterable[MultimodalBatch]): The split to inspect, a
            :class:`~dhmd_graph.data.MultimodalDataset` or batches of it (iterated
            twice: once for the outputs, once for the subsets of modalities).
        out_dir (str or PathLike): The folder to write (created if needed).
        log (Iterable[Mapping], optional): The training log's epoch records
            (:meth:`TrainedRun.log <dhmd_graph.trained.TrainedRun.log>`); :obj:`None` leaves out the edge
            evolution. (default: :obj:`None`)
        metrics (Callable, optional): The dataset's metrics.
            (default: :func:`~dhmd_graph.metrics.regression_metrics`)
        monitor (str, optional): The metric the missing-modality summary ranks by (its
            direction from :func:`~dhmd_graph.metrics.metric_direction`).
            (default: ``"MAE"``)
        method (str, optional): ``"tsne"`` or ``"pca"`` for the feature spaces.
            (default: ``"tsne"``)
        title (str, optional): The report's heading. (default: ``"DHMD inspection"``)
        dpi (int, optional): Resolution of the PNG figures. (default: ``FIGURE_DPI``)
        seed (int, optional): Seed of the embeddings' subsampling and t-SNE.
            (default: ``0``)

    Returns:
        Path: The written ``report.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = as_batches(data)
    outputs = collect_outputs(model, data)
    lines = [f"# {title}", "",
             f"{len(outputs.labels)} samples, modalities {', '.join(outputs.modalities)}.", "",
             *_class_section(model, outputs, out_dir, dpi),
             *_edge_section(outputs, out_dir, dpi),
             *_reliability_section(outputs),
             *(_evolution_section(log, out_dir, dpi) if log is not None else []),
             *_space_section(outputs, out_dir, dpi, method, seed),
             *_dictionary_section(outputs, out_dir, dpi),
             *_subset_section(evaluate_subsets(model, data, metrics=metrics),
                              outputs.modalities, monitor)]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def inspect_run(
    run_dir: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    split: str = "valid",
    out_dir: str | os.PathLike | None = None,
    method: str = "tsne",
    seed: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
) -> Path:
    r"""Inspects the selected checkpoint of a ``dhmd train`` run on one split.

    Reads ``best.pt`` (a :class:`~dhmd_graph.trained.TrainedRun`, which checks it) and the
    ``log.jsonl`` beside it, and writes :func:`write_report`'s figures and ``report.md``.

    Args:
        run_dir (str or PathLike): A run folder or one of its ``seed_*`` folders.
        data (str or PathLike, optional): The dataset; :obj:`None` uses the one the run
            was trained on. (default: :obj:`None`)
        split (str, optional): ``"train"``, ``"valid"`` or ``"test"``. Inspect the
            validation split unless the study is over: the test split is for the final,
            single evaluation. (default: ``"valid"``)
        out_dir (str or PathLike, optional): Where to write; :obj:`None` means
            ``<seed folder>/inspect-<split>``. (default: :obj:`None`)
        method (str, optional): ``"tsne"`` or ``"pca"``. (default: ``"tsne"``)
        seed (int, optional): The seed folder of a multi-seed run; :obj:`None` takes the
            first. (default: :obj:`None`)
        batch_size (int, optional): Samples per batch. (default: ``64``)
        device (str, optional): Where the model runs: ``"auto"`` (a GPU when there is
            one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. (default: ``"auto"``)

    Returns:
        Path: The written ``report.md``.

    Raises:
        ValueError: If ``device`` is no device of this machine, or for a bad ``split``.
    """
    from dhmd_graph.train.distributed import resolve_device
    from dhmd_graph.trained import TrainedRun

    run = TrainedRun.load(run_dir, seed=seed, device=resolve_device(device))
    dataset = run.split(split, data)
    return write_report(
        run.model, as_batches(dataset, batch_size),
        out_dir or run.checkpoint.parent / f"inspect-{split}", log=run.log(),
        metrics=run.metric_function(dataset), monitor=run.monitor(), method=method,
        title=f"DHMD inspection: {run.checkpoint} (epoch {run.epoch}), {split} split",
    )
