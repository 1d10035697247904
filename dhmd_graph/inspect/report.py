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
- ``training_curves.png``: the loss terms, the monitored metric and the edge weights per
  epoch, from the log (:mod:`~dhmd_graph.inspect.curves`);
- ``routing.png``: where the data carry a reliability, each teacher's outgoing learned
  weight against it (:func:`~dhmd_graph.inspect.reliability.plot_edge_reliability`);
- ``report.md``: the figures, their tables, and what they show in a few sentences,
  with the metrics of every subset of modalities (:mod:`~dhmd_graph.inspect.missing`)
  and, where the data plants a per-sample ``modality_reliability`` (the synthetic data),
  how the learned edge weights follow it (:mod:`~dhmd_graph.inspect.reliability`).

The report opens with warnings where its numbers would mislead: a checkpoint from an early
epoch, a graph still near uniform. It sets the learned weights :math:`E` beside the prior
alone and says so when :math:`E` only reproduces the prior, and ranks the single
modalities by every metric that could rank them (Corr and MAE), with a caveat when the
model never trained with modalities missing. Every figure is titled with the run, model,
seed and epoch.

:func:`inspect_run` does the same for a run folder written by the trainer, and is what
``dhmd inspect`` calls: for every seed of the run (or one), with a summary across seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from dhmd_graph.data.batch import MultimodalBatch
from dhmd_graph.data.mmsa import RELIABILITY
from dhmd_graph.inspect.curves import plot_training_curves, training_curves
from dhmd_graph.inspect.dictionary import atom_usage, plot_atom_activations
from dhmd_graph.inspect.edges import (
    PriorAgreement,
    edge_graphs,
    edge_history,
    plot_edge_evolution,
    plot_edge_graphs,
    prior_agreement,
)
from dhmd_graph.inspect.missing import evaluate_subsets
from dhmd_graph.inspect.reliability import (
    edge_reliability,
    plot_edge_reliability,
    routing_accuracy,
)
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

__all__ = ["EARLY_EPOCHS", "FIGURE_DPI", "NEAR_PRIOR", "NEAR_UNIFORM", "STATIC_SPREAD",
           "inspect_run", "markdown_table", "plot_confusion_matrix", "write_report"]

FIGURE_DPI = 80
"""Resolution of the written figures: small PNGs (well under 200 KB) that stay legible."""
EARLY_EPOCHS = 2
"""A selected checkpoint from this epoch or earlier (or from the first fifth of the epochs
trained) gets a warning: its model, and its graph, are close to untrained."""
EARLY_FRACTION = 0.2
NEAR_UNIFORM = 0.02
"""Learned weights :math:`E` closer than this to equal weights (mean total-variation
distance per softmax group, 0 to 1) make a graph "still near uniform"."""
NEAR_PRIOR = 0.05
""":math:`E` closer than this to the prior alone (the same distance) "only reproduces the
prior"."""
STATIC_SPREAD = 0.02
""":math:`E` that moves less than this between samples (a sample's :math:`E` against the
split's mean) is a static graph, whatever the data."""
_FIGURE_LABEL: ContextVar[str | None] = ContextVar("figure_label", default=None)
"""The run / model / seed line :func:`_figure` puts above every figure of one report."""
Metrics = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; floats are written with 4 decimals."""
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _figure(figure: Figure, path: Path, dpi: int, caption: str) -> list[str]:
    """Saves ``figure`` to ``path``, titled with the report's run / model / seed line;
    the Markdown lines that show it."""
    label = _FIGURE_LABEL.get()
    if label:
        figure.suptitle(label, fontsize=9)
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
            f"{teacher} teaches most (outgoing learned weight {outgoing[teacher]:.3f})"
            f"{_prior_teacher(graph) if has_prior else ''}.",
            "",
        ]
    return lines


def _prior_teacher(graph) -> str:
    """``"; the prior alone ranks X first (…)"``: the clause that says whose ranking it is."""
    prior = {node: sum(d["prior"] for *_, d in graph.out_edges(node, data=True))
             for node in graph.nodes}
    top = max(prior, key=prior.get)
    return f"; the prior alone ranks {top} first (outgoing prior weight {prior[top]:.3f})"


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

    leave_one_out = {name: table["+".join(m for m in modalities if m != name)]
                     for name in modalities}
    costly = max(leave_one_out, key=lambda name: cost(leave_one_out[name]))
    return [
        "## Missing modalities", "",
        "The metrics of this split when only some modalities are present (the absent ones "
        "removed from both graphs and masked from the fusion).", "",
        markdown_table(["present modalities", *keys], rows),
        "",
        f"With all modalities the {monitor} is {full[monitor]:.4f}; leaving out {costly} "
        f"costs most ({monitor} {leave_one_out[costly][monitor]:.4f} without it).",
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


def _is_early(epoch: int | None, epochs_run: int | None) -> bool:
    if epoch is None:
        return False
    return epoch <= EARLY_EPOCHS or (epochs_run is not None
                                     and epoch <= EARLY_FRACTION * epochs_run)


def _warnings_section(agreements: Mapping[str, PriorAgreement], epoch: int | None,
                      epochs_run: int | None, monitor: str) -> list[str]:
    """Warnings where the report's numbers would mislead: an early checkpoint, a graph
    still near uniform."""
    warnings = []
    if _is_early(epoch, epochs_run):
        of = f" of the {epochs_run} trained" if epochs_run else ""
        warnings.append(
            f"**An early checkpoint.** The selected checkpoint is from epoch {epoch}{of}: "
            f"validation {monitor} did not improve after it (or training stopped there), so "
            "the model and its graphs are close to their initial values. Read the figures "
            "below as an almost untrained model's, and train longer before drawing "
            "conclusions about routing.")
    for space, agreement in agreements.items():
        if agreement.to_uniform < NEAR_UNIFORM:
            warnings.append(
                f"**The {space} graph is still near uniform.** Its learned weights E are "
                f"{agreement.to_uniform:.3f} from equal weights on every edge (mean "
                "total-variation distance per softmax group, 0 to 1): every teacher counts "
                "alike, and the differences between its edges below are noise.")
    if not warnings:
        return []
    return ["## Warnings", "", *(f"- {warning}" for warning in warnings), ""]


def _share_cell(share: np.ndarray) -> str:
    share = share[~np.isnan(share)]
    if not share.size:
        return "-"
    return f"{share.mean():.3f} [{share.min():.3f}–{share.max():.3f}]"


def _prior_section(outputs: SplitOutputs, agreements: Mapping[str, PriorAgreement]
                   ) -> list[str]:
    """The learned weights E beside the prior alone (and a uniform graph), per space."""
    rows, shares, sentences = [], [], []
    for space, agreement in agreements.items():
        rows.append([space, outputs.spaces[space].normalize,
                     "-" if np.isnan(agreement.to_prior) else agreement.to_prior,
                     agreement.to_uniform, agreement.spread])
        mean_share = np.nanmean(agreement.share, axis=0)  # (M,)
        top = outputs.modalities[int(np.nanargmax(mean_share))]
        for m, teacher in enumerate(outputs.modalities):
            prior = ("-" if agreement.prior_share is None
                     else _share_cell(agreement.prior_share[:, m]))
            shares.append([space, teacher, _share_cell(agreement.share[:, m]), prior])
        if agreement.prior_share is not None:
            prior_share = np.nanmean(agreement.prior_share, axis=0)
            prior_top = outputs.modalities[int(np.nanargmax(prior_share))]
            if agreement.to_prior < NEAR_PRIOR:
                sentences.append(
                    f"**In the {space} graph, E only reproduces the prior**: it is "
                    f"{agreement.to_prior:.3f} from the prior alone and varies "
                    f"{agreement.spread:.3f} between samples, so which modality teaches most "
                    f"({top}) is the prior's choice, not learned from the samples. A no-prior "
                    f"control shows what the graph learns by itself: train the same run with "
                    f"`--set model.{space}_graph.prior=null` and compare the two runs with "
                    "`dhmd compare`.")
            else:
                agree = "the same teacher as" if top == prior_top else "another teacher than"
                sentences.append(
                    f"In the {space} graph E is {agreement.to_prior:.3f} from the prior alone: "
                    f"it puts most weight on {top} ({mean_share.max():.3f} of E), "
                    f"{agree} the prior ({prior_top}, {prior_share.max():.3f}).")
        if agreement.spread < STATIC_SPREAD:
            sentences.append(
                f"The {space} graph hardly changes from sample to sample (spread "
                f"{agreement.spread:.3f}): it is static, not dynamic, on this split.")
    return [
        "## Learned weights E against the prior alone", "",
        "The distillation weighs each edge with w = E + p (w = E without a prior). Per space, "
        "the mean total-variation distance (per softmax group, 0 the same weights, 1 "
        "disjoint) of a sample's learned E from the prior p alone, from equal weights, and "
        "from the split's mean E (the sample-to-sample spread):", "",
        markdown_table(["space", "normalize", "E vs prior", "E vs uniform",
                        "E sample-to-sample"], rows),
        "", "Each teacher's share of a sample's E (mean [min–max] over the samples), and of "
        "the prior's:", "",
        markdown_table(["space", "teacher", "share of E", "share of the prior"], shares),
        "", *(f"{sentence}\n" for sentence in sentences),
    ]


def _routing_section(outputs: SplitOutputs, out_dir: Path, dpi: int) -> list[str]:
    """Where the data carry a reliability: the routing figure and routing accuracy."""
    if RELIABILITY not in outputs.extras:
        return []
    reliability = outputs.extras[RELIABILITY]  # (N, M)
    rows = []
    for space, values in outputs.spaces.items():
        routing = routing_accuracy(values, reliability)
        rows.append([space, routing.accuracy, routing.chance,
                     "-" if np.isnan(routing.prior) else routing.prior, routing.count])
    return [
        "## Routing: the top teacher and the most reliable modality", "",
        *_figure(plot_edge_reliability(outputs, reliability), out_dir / "routing.png", dpi,
                 "routing"),
        "Each point is one sample's teacher: its reliability and the learned weight E it "
        "sends, with a least-squares line per teacher (rising: the graph listens more where "
        "the teacher is reliable). Routing accuracy: the share of samples whose top teacher "
        "(largest outgoing E) is a most reliable modality, beside a random teacher (chance) "
        "and the prior alone (the same teacher in every sample).", "",
        markdown_table(["space", "routing accuracy", "chance", "prior alone", "samples"], rows),
        "",
    ]


def _singles_section(table: Mapping[str, Mapping[str, float]], modalities: Sequence[str],
                     monitor: str, trained_on_subsets: bool) -> list[str]:
    """The single modalities ranked by Corr and by MAE (and the monitor), with caveats."""
    keys = [key for key in dict.fromkeys(["Corr", "MAE", monitor])
            if all(key in table[name] for name in modalities)]
    rankings = {}
    for key in keys:
        sign = -1.0 if metric_direction(key) == "max" else 1.0
        values = {name: table[name][key] for name in modalities}
        rankings[key] = sorted(modalities, key=lambda name, v=values, s=sign: (
            np.isnan(v[name]), s * v[name]))
    if not rankings:
        return []
    lines = ["**Single modalities**, best first:", ""]
    lines += [f"- by {key}: " + ", ".join(f"{name} ({table[name][key]:.4f})" for name in order)
              for key, order in rankings.items()]
    lines.append("")
    firsts = {order[0] for order in rankings.values()}
    if len(firsts) > 1:
        lines += [f"The metrics disagree on the best single modality ({', '.join(sorted(firsts))}"
                  "): a modality can score a low MAE by predicting near the mean while its "
                  "Corr stays near zero; rank by Corr to ask which modality carries the "
                  "signal.", ""]
    if not trained_on_subsets:
        lines += ["Caveat: the model never trained with modalities missing "
                  "(model.modality_dropout = 0), so a single modality's numbers say how this "
                  "model copes with the others removed, not how much that modality knows. "
                  "Train with model.modality_dropout > 0 to ask the second question.", ""]
    return lines


def _curves_section(log: Sequence[Mapping], monitor: str, out_dir: Path, dpi: int
                    ) -> list[str]:
    curves = training_curves(log)
    if not curves.losses and not curves.valid:
        return []
    history = edge_history(log)
    return ["## Training curves", "",
            *_figure(plot_training_curves(curves, monitor, history),
                     out_dir / "training_curves.png", dpi, "training curves"),
            f"Per epoch ({len(curves.epochs)} logged): the training loss and each of its "
            f"terms, the validation {monitor} that selects the checkpoint, and the mean "
            "learned edge weights of each space; the dotted line is the selected epoch.", ""]


def _report(
    model: nn.Module,
    data: Dataset | Iterable[MultimodalBatch],
    out_dir: str | os.PathLike,
    *,
    log: Iterable[Mapping] | None,
    metrics: Metrics,
    monitor: str,
    method: str,
    title: str,
    dpi: int,
    seed: int,
    label: str | None,
    epoch: int | None,
) -> tuple[Path, dict]:
    """:func:`write_report`, and the summary of what it found (for a summary over seeds)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = as_batches(data)
    log = None if log is None else list(log)
    outputs = collect_outputs(model, data)
    agreements = {space: prior_agreement(values) for space, values in outputs.spaces.items()}
    subsets = evaluate_subsets(model, data, metrics=metrics)
    trained_on_subsets = getattr(getattr(model, "config", None), "modality_dropout", 0.0) > 0
    epochs_run = len(log) if log else None
    warnings = _warnings_section(agreements, epoch, epochs_run, monitor)
    token = _FIGURE_LABEL.set(label)
    try:
        lines = [f"# {title}", "",
                 f"{len(outputs.labels)} samples, modalities {', '.join(outputs.modalities)}.",
                 "", *warnings,
                 *_class_section(model, outputs, out_dir, dpi),
                 *_edge_section(outputs, out_dir, dpi),
                 *_prior_section(outputs, agreements),
                 *_reliability_section(outputs),
                 *_routing_section(outputs, out_dir, dpi),
                 *(_evolution_section(log, out_dir, dpi) if log is not None else []),
                 *(_curves_section(log, monitor, out_dir, dpi) if log else []),
                 *_space_section(outputs, out_dir, dpi, method, seed),
                 *_dictionary_section(outputs, out_dir, dpi),
                 *_subset_section(subsets, outputs.modalities, monitor),
                 *_singles_section(subsets, outputs.modalities, monitor, trained_on_subsets)]
    finally:
        _FIGURE_LABEL.reset(token)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    full = subsets["+".join(outputs.modalities)]
    summary = {
        "epoch": epoch, "early": _is_early(epoch, epochs_run), monitor: full.get(monitor),
        "warnings": sum(line.startswith("- **") for line in warnings),
        "spaces": {
            space: {"to_prior": agreement.to_prior, "to_uniform": agreement.to_uniform,
                    "spread": agreement.spread,
                    "top_teacher": outputs.modalities[
                        int(np.nanargmax(np.nanmean(agreement.share, axis=0)))]}
            for space, agreement in agreements.items()
        },
    }
    if RELIABILITY in outputs.extras:
        for space, values in outputs.spaces.items():
            summary["spaces"][space]["routing_accuracy"] = routing_accuracy(
                values, outputs.extras[RELIABILITY]).accuracy
    return report, summary


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
    label: str | None = None,
    epoch: int | None = None,
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
        label (str, optional): The line above every figure, e.g. the run, model and
            seed. (default: :obj:`None`, none)
        epoch (int, optional): The epoch the model's checkpoint was written after; an
            early one gets a warning (:data:`EARLY_EPOCHS`). (default: :obj:`None`)

    Returns:
        Path: The written ``report.md``.
    """
    return _report(model, data, out_dir, log=log, metrics=metrics, monitor=monitor,
                   method=method, title=title, dpi=dpi, seed=seed, label=label,
                   epoch=epoch)[0]


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
    r"""Inspects the selected checkpoint of every seed of a ``dhmd train`` run (or of one)
    on one split.

    Reads each ``best.pt`` (a :class:`~dhmd_graph.trained.TrainedRun`, which checks it) and
    the ``log.jsonl`` beside it, and writes :func:`write_report`'s figures and
    ``report.md`` per seed. With more than one seed it also writes a summary
    ``report.md`` across the seeds (checkpoint epochs, warnings, E against the prior, the
    top teacher and, with a reliability, the routing accuracy of each seed), and says
    where the seeds disagree.

    Args:
        run_dir (str or PathLike): A run folder or one of its ``seed_*`` folders.
        data (str or PathLike, optional): The dataset; :obj:`None` uses the one the run
            was trained on. (default: :obj:`None`)
        split (str, optional): ``"train"``, ``"valid"`` or ``"test"``. Inspect the
            validation split unless the study is over: the test split is for the final,
            single evaluation. (default: ``"valid"``)
        out_dir (str or PathLike, optional): Where to write. :obj:`None` means
            ``<seed folder>/inspect-<split>`` for each seed and
            ``<run folder>/inspect-<split>`` for the summary; a folder given here gets the
            summary and one ``seed_<s>`` folder per seed (the report itself for a single
            seed). (default: :obj:`None`)
        method (str, optional): ``"tsne"`` or ``"pca"``. (default: ``"tsne"``)
        seed (int, optional): Only this seed of a multi-seed run; :obj:`None` inspects
            every seed. (default: :obj:`None`)
        batch_size (int, optional): Samples per batch. (default: ``64``)
        device (str, optional): Where the model runs: ``"auto"`` (a GPU when there is
            one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. (default: ``"auto"``)

    Returns:
        Path: The written ``report.md``: the summary for several seeds, else the seed's.

    Raises:
        UserError: If ``device`` is no device of this machine, for a bad ``split``, a
            missing checkpoint or data that do not fit the model.
    """
    from dhmd_graph.train.distributed import resolve_device
    from dhmd_graph.trained import TrainedRun

    where = resolve_device(device)
    runs = ([TrainedRun.load(run_dir, seed=seed, device=where)] if seed is not None
            else TrainedRun.load_all(run_dir, device=where))
    datasets = [run.split(split, data) for run in runs]  # every check before any writing
    many = len(runs) > 1
    base = Path(out_dir) if out_dir is not None else Path(run_dir) / f"inspect-{split}"
    reports, summaries = [], []
    for run, dataset in zip(runs, datasets, strict=True):
        if many:
            target = (base / f"seed_{run.seed}" if out_dir is not None
                      else run.checkpoint.parent / f"inspect-{split}")
        else:
            target = base if out_dir is not None else run.checkpoint.parent / f"inspect-{split}"
        report, summary = _report(
            run.model, as_batches(dataset, batch_size), target, log=run.log(),
            metrics=run.metric_function(dataset), monitor=run.monitor(), method=method,
            title=f"DHMD inspection: {run.checkpoint} (epoch {run.epoch}), {split} split",
            dpi=FIGURE_DPI, seed=0, label=_run_label(run, split), epoch=run.epoch)
        reports.append(report)
        summaries.append(summary)
    if not many:
        return reports[0]
    return _write_seed_summary(base, runs, reports, summaries, split, runs[0].monitor())


def _run_label(run, split: str) -> str:
    """``"run <name> · model <preset, aligned, width> · seed <s> · epoch <e> · <split>"``."""
    folder = run.checkpoint.parent
    name = folder.parent.name if folder.name.startswith("seed_") else str(run.checkpoint)
    config = run.model.config
    aligned = {True: "aligned", False: "unaligned"}.get(run.meta.get("aligned"), "")
    model = ", ".join(part for part in (f"{run.preset} preset", aligned,
                                        f"{config.task}", f"width {config.width}") if part)
    return (f"run: {name} · model: {model} · seed {run.seed} · epoch {run.epoch} · "
            f"{split} split")


def _write_seed_summary(base: Path, runs: Sequence, reports: Sequence[Path],
                        summaries: Sequence[Mapping], split: str, monitor: str) -> Path:
    """The summary ``report.md`` across seeds in ``base``, linking each seed's report."""
    base.mkdir(parents=True, exist_ok=True)
    spaces = list(summaries[0]["spaces"])
    routing = all("routing_accuracy" in summary["spaces"][space]
                  for summary in summaries for space in spaces)
    header = ["seed", "epoch", f"{split} {monitor}", "warnings"]
    for space in spaces:
        header += [f"{space}: E vs prior", f"{space}: E vs uniform", f"{space}: top teacher"]
        header += [f"{space}: routing accuracy"] if routing else []
    rows = []
    for run, report, summary in zip(runs, reports, summaries, strict=True):
        link = os.path.relpath(report, base)
        row = [f"[{run.seed}]({link})", summary["epoch"], summary.get(monitor),
               summary["warnings"]]
        for space in spaces:
            values = summary["spaces"][space]
            row += ["-" if np.isnan(values["to_prior"]) else values["to_prior"],
                    values["to_uniform"], values["top_teacher"]]
            row += [values["routing_accuracy"]] if routing else []
        rows.append(row)
    sentences = []
    early = [run.seed for run, summary in zip(runs, summaries, strict=True) if summary["early"]]
    if early:
        who, whose = ("Seed", "its report's") if len(early) == 1 else ("Seeds", "their reports'")
        sentences.append(f"{who} {', '.join(map(str, early))} selected an early checkpoint "
                         f"(see {whose} warnings).")
    for space in spaces:
        tops = {summary["spaces"][space]["top_teacher"] for summary in summaries}
        if len(tops) > 1:
            sentences.append(f"The {space} graph's top teacher changes between seeds "
                             f"({', '.join(sorted(tops))}): no routing that holds across "
                             "seeds.")
        else:
            sentences.append(f"The {space} graph's top teacher is {tops.pop()} in every seed.")
    lines = [f"# DHMD inspection of {len(runs)} seeds, {split} split", "",
             "One row per seed (its report behind the link); distances are mean "
             "total-variation distances of the learned weights E per softmax group (0 the "
             "same weights, 1 disjoint).", "",
             markdown_table(header, rows), "", *(f"{s}\n" for s in sentences)]
    report = base / "report.md"
    report.write_text("\n".join(lines))
    return report
