r"""The two decoupled spaces of a split: what a trained model puts in them.

:func:`collect_outputs` runs a model over a split once and keeps, per decoupled space
(``"homogeneous"``, ``"heterogeneous"``), the pooled features of every modality, the
graph-distillation edge weights of every sample as a dense ``(N, M, M)`` matrix and the
dictionary activations. The other modules of :mod:`dhmd_graph.inspect` read this
:class:`SplitOutputs`, so the model runs only once per split.

This module also measures the claim of decoupling -- *homogeneous features of the
modalities mix, heterogeneous ones separate* -- with two numbers per space
(:func:`modality_separation`) and draws both spaces in 2-D (:func:`embed_spaces`,
:func:`plot_spaces`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dhmd_graph.data.batch import MultimodalBatch, collate
from dhmd_graph.errors import UserError
from dhmd_graph.train.evaluation import evaluating

__all__ = [
    "SPACES",
    "Embedding",
    "SpaceOutputs",
    "SplitOutputs",
    "as_batches",
    "collect_outputs",
    "dense_edge_weights",
    "embed_spaces",
    "label_sign",
    "modality_colors",
    "modality_separation",
    "plot_spaces",
    "present_mask",
]

SPACES = ("homogeneous", "heterogeneous")
EMBEDDINGS = ("tsne", "pca")
MIN_TSNE_POINTS = 30
"""Below this many points :func:`embed_spaces` uses PCA: t-SNE needs a perplexity well
below the number of points and says little about a handful of them."""
LABEL_SIGNS = ("negative", "neutral", "positive")


class SpaceOutputs(NamedTuple):
    r"""What one decoupled space holds for the ``N`` samples of a split.

    Attributes:
        logits (np.ndarray): ``(N, M)`` (or ``(N, M, C)``) the per-modality logits :math:`y_m`
            (``output.<space>.logits``); ``nan`` for an absent modality.
        features (np.ndarray): ``(N, M, F)`` the representations of every modality,
            the GD-Unit's node features (``output.<space>.representation``).
        edge_weight (np.ndarray): ``(N, M, M)`` distillation weight ``w`` of the edge
            ``[sample, teacher, student]``; ``nan`` where the sample's graph has no such
            edge (the diagonal, a pruned edge, an absent modality).
        edge_prior (np.ndarray or None): ``(N, M, M)`` its prior part ``p`` (so the
            learned part is ``edge_weight - edge_prior``), :obj:`None` without a prior.
        atoms (np.ndarray or None): ``(N, M, K)`` activations of the space's
            modality-shared dictionary (``output.<space>.dictionary.activation``; zero
            rows for absent modalities), :obj:`None` when the model has no dictionary.
        normalize (str): The graph's softmax groups, ``"graph"`` or ``"target"``.
    """

    logits: np.ndarray
    features: np.ndarray
    edge_weight: np.ndarray
    edge_prior: np.ndarray | None
    atoms: np.ndarray | None
    normalize: str


class SplitOutputs(NamedTuple):
    r"""A trained model's outputs over one split, per decoupled space.

    Attributes:
        modalities (tuple[str, ...]): The ``M`` modality names, in node order.
        labels (np.ndarray or None): ``(N,)`` scores or class indices, or ``(N, C)``
            multi-hot rows (float), as in the batch; :obj:`None` for unlabelled data.
        prediction (np.ndarray): ``(N,)`` or ``(N, C)`` the model's predictions, as the
            model returns them.
        spaces (dict[str, SpaceOutputs]): ``"homogeneous"`` and ``"heterogeneous"``.
        extras (Mapping[str, np.ndarray]): The batches' per-sample extras, e.g. the
            synthetic data's ``modality_reliability`` ``(N, M)`` (empty if none).
        ids (tuple[str, ...]): The ``N`` sample ids, in order (empty if not given).
    """

    modalities: tuple[str, ...]
    labels: np.ndarray | None
    prediction: np.ndarray
    spaces: dict[str, SpaceOutputs]
    extras: Mapping[str, np.ndarray] = MappingProxyType({})
    ids: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    """The classes or labels of a classification model (:obj:`None` for scores)."""


def dense_edge_weights(
    edge_index: Tensor, value: Tensor, batch_size: int, num_modalities: int
) -> Tensor:
    r"""Scatters per-edge values of ``B`` modality graphs into a dense matrix.

    Nodes follow :func:`~dhmd_graph.nn.modality_graph`'s layout: node ``b * M + m``
    is modality ``m`` of sample ``b``.

    Args:
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher node, row 1 student node.
        value (Tensor): ``(E,)`` one value per edge (e.g. its weight).
        batch_size (int): The number of samples ``B``.
        num_modalities (int): The number of modalities ``M``.

    Returns:
        Tensor: ``(B, M, M)`` float, ``[sample, teacher, student]``; ``nan`` where there
        is no edge.
    """
    dense = torch.full(
        (batch_size, num_modalities, num_modalities), float("nan"),
        dtype=value.dtype, device=value.device,
    )  # (B, M, M)
    sample = edge_index[1] // num_modalities  # (E,)
    teacher, student = edge_index % num_modalities  # (E,), (E,)
    dense[sample, teacher, student] = value
    return dense


def present_mask(modalities: Sequence[str], subset: Iterable[str], batch_size: int,
                 device: torch.device | str | None = None) -> Tensor:
    r"""The model's ``present`` argument for a batch where only ``subset`` is observed.

    Args:
        modalities (Sequence[str]): The model's ``M`` modalities, in node order.
        subset (Iterable[str]): The present ones.
        batch_size (int): The number of samples ``B``.
        device (torch.device or str, optional): Where to create the mask.
            (default: :obj:`None`, the CPU)

    Returns:
        Tensor: ``(B, M)`` bool, :obj:`True` for the present modalities.

    Raises:
        ValueError: ``subset`` is empty or names a modality not in ``modalities``.
    """
    subset = set(subset)
    unknown = subset - set(modalities)
    if unknown or not subset:
        raise ValueError(
            f"present_mask: the subset must be a non-empty selection of {list(modalities)}, "
            f"found {sorted(subset)}; check the modality names."
        )
    columns = torch.tensor([name in subset for name in modalities], device=device)  # (M,)
    return columns.unsqueeze(0).expand(batch_size, -1)  # (B, M)


def as_batches(
    data: Dataset | Iterable[MultimodalBatch], batch_size: int = 64
) -> Iterable[MultimodalBatch]:
    """``data`` itself if it yields batches, else a :class:`~torch.utils.data.DataLoader`
    over the dataset (in order, ``batch_size`` samples per batch)."""
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, collate_fn=collate)
    return data


def collect_outputs(
    model: nn.Module, data: Dataset | Iterable[MultimodalBatch], *,
    present: Iterable[str] | None = None,
) -> SplitOutputs:
    r"""Runs a trained DHMD model over a split and keeps what the inspection (and
    :func:`~dhmd_graph.inspect.predictions.predict_table`) reads.

    The model is put in evaluation mode for the pass (and restored afterwards) and
    receives every batch on the device of its parameters.

    Args:
        model (nn.Module): A :class:`~dhmd_graph.DHMD` (``model.modalities``,
            ``model.config`` and ``model(batch)`` returning a ``DHMDOutput``).
        data (Dataset or Iterable[MultimodalBatch]): The split: a
            :class:`~dhmd_graph.data.MultimodalDataset` or batches of it (e.g. a
            :class:`~torch.utils.data.DataLoader` with ``collate_fn=collate``).
        present (Iterable[str], optional): The observed modalities; the others are
            passed to the model as absent (:func:`present_mask`), so they lose their
            edges, and their logits are ``nan``. (default: :obj:`None`, all present)
    """
    modalities = tuple(model.modalities)
    subset = None if present is None else tuple(present)
    num_modalities = len(modalities)
    device = next(model.parameters()).device
    columns: dict[str, list[Tensor]] = {}
    ids: list[str] = []

    def keep(name: str, value: Tensor | None) -> None:
        if value is not None:
            columns.setdefault(name, []).append(value.detach().float().cpu())

    with evaluating(model):
        for batch in as_batches(data):
            batch = batch.to(device)
            mask = None if subset is None else present_mask(modalities, subset, len(batch), device)
            output = model(batch, mask)
            ids += batch.ids
            keep("labels", batch.labels)  # (B,) or (B, C)
            keep("prediction", output.prediction)  # (B,) or (B, C)
            for key, value in batch.extras.items():
                keep(f"extra/{key}", value)  # (B, ...)
            for space, values in output.spaces.items():
                edges = values.edges
                weight = dense_edge_weights(edges.edge_index, edges.weight, len(batch),
                                            num_modalities)  # (B, M, M)
                absent = ~output.present.view(*output.present.shape,
                                              *[1] * (values.logits.dim() - 2))  # (B, M[, 1])
                logits = values.logits.masked_fill(absent, float("nan"))
                keep(f"{space}/logits", logits)  # (B, M) or (B, M, C)
                keep(f"{space}/features", values.representation)  # (B, M, F)
                keep(f"{space}/edge_weight", weight)  # (B, M, M)
                if edges.prior is not None:
                    prior = dense_edge_weights(edges.edge_index, edges.prior, len(batch),
                                               num_modalities)
                    keep(f"{space}/edge_prior", prior)  # (B, M, M)
                if values.dictionary is not None:  # the modality-shared dictionary's activations
                    keep(f"{space}/atoms", values.dictionary.activation)  # (B, M, K)
    if not columns:
        raise UserError("collect_outputs: the data gave no batch; pass a non-empty split.")

    arrays = {name: torch.cat(parts).numpy() for name, parts in columns.items()}
    spaces = {
        space: SpaceOutputs(
            logits=arrays[f"{space}/logits"],
            features=arrays[f"{space}/features"],
            edge_weight=arrays[f"{space}/edge_weight"],
            edge_prior=arrays.get(f"{space}/edge_prior"),
            atoms=arrays.get(f"{space}/atoms"),
            normalize=model.config.graphs[space].normalize,
        )
        for space in SPACES
    }
    extras = {name.removeprefix("extra/"): value for name, value in arrays.items()
              if name.startswith("extra/")}
    config = model.config
    class_names = None
    if config.task != "regression":
        count = 2 if config.task == "binary" else config.num_classes
        names = getattr(getattr(data, "dataset", data), "label_names", None)  # a DataLoader's
        class_names = tuple(names or config.class_names or map(str, range(count)))
    return SplitOutputs(modalities, arrays.get("labels"), arrays["prediction"], spaces, extras,
                        tuple(ids), class_names)


def modality_separation(features: np.ndarray, *, neighbors: int = 10,
                        max_points: int = 3000, seed: int = 0) -> dict[str, float]:
    r"""How well the modality of a feature can be told from its neighbours.

    Every ``(sample, modality)`` feature is one point labelled by its modality. Two
    numbers, both on the cosine distance (the geometry the margin and orthogonality
    losses shape):

    - ``silhouette``: scikit-learn's silhouette score of the modality labels, in
      ``[-1, 1]``; about 0 or below when the modalities mix, towards 1 when they form
      separate clusters.
    - ``knn_purity``: the mean fraction of a point's ``neighbors`` nearest other points
      that share its modality; ``chance`` is its value for well-mixed modalities,
      ``(N - 1) / (N M - 1)``, and 1 means fully separated. ``separation`` rescales it
      to ``(knn_purity - chance) / (1 - chance)``: 0 mixed, 1 separated.

    Args:
        features (np.ndarray): ``(N, M, F)`` features of ``N`` samples and ``M``
            modalities.
        neighbors (int, optional): ``k`` of the k-NN purity. (default: ``10``)
        max_points (int, optional): Score a random subset of at most this many points
            (the silhouette costs quadratic memory). (default: ``3000``)
        seed (int, optional): Seed of that subset. (default: ``0``)

    Returns:
        dict[str, float]: ``silhouette``, ``knn_purity``, ``chance`` and ``separation``.
    """
    num_samples, num_modalities, _ = features.shape
    points = features.reshape(num_samples * num_modalities, -1)  # (N*M, F)
    modality = np.tile(np.arange(num_modalities), num_samples)  # (N*M,)
    if len(points) > max_points:
        keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
        points, modality = points[keep], modality[keep]
    if len(points) <= neighbors:
        raise ValueError(
            f"modality_separation: need more than neighbors={neighbors} points, found "
            f"{len(points)}; inspect a larger split or lower neighbors."
        )
    index = NearestNeighbors(n_neighbors=neighbors + 1, metric="cosine").fit(points)
    _, nearest = index.kneighbors(points)  # (P, k + 1), the point itself first
    same = modality[nearest[:, 1:]] == modality[:, None]  # (P, k)
    counts = np.bincount(modality, minlength=num_modalities)
    chance = float(np.sum(counts * (counts - 1)) / (len(points) * (len(points) - 1)))
    purity = float(same.mean())
    return {
        "silhouette": float(silhouette_score(points, modality, metric="cosine")),
        "knn_purity": purity,
        "chance": chance,
        "separation": (purity - chance) / (1.0 - chance),
    }


def label_sign(labels: np.ndarray) -> np.ndarray:
    """``(N,)`` int: 0 negative, 1 neutral (exactly 0), 2 positive; names in ``LABEL_SIGNS``."""
    return (np.sign(labels) + 1).astype(np.int64)


def label_groups(labels: np.ndarray, class_names: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    """The group of every sample that the feature-space plots colour by, and the names.

    Scores (``class_names`` :obj:`None`): the label sign (:func:`label_sign`). Class
    indices ``(N,)``: the class. Multi-hot rows ``(N, C)``: the one label present,
    ``"none"`` or ``"several"``.
    """
    if class_names is None:
        return label_sign(labels), LABEL_SIGNS
    if labels.ndim == 1:
        return labels.astype(np.int64), tuple(class_names)
    count = labels.sum(axis=1)
    group = np.where(count == 1, labels.argmax(axis=1),
                     np.where(count == 0, len(class_names), len(class_names) + 1))
    return group.astype(np.int64), (*class_names, "none", "several")


class Embedding(NamedTuple):
    r"""A 2-D view of one space's features.

    Attributes:
        points (np.ndarray): ``(P, 2)`` coordinates, one per ``(sample, modality)``.
        modality (np.ndarray): ``(P,)`` int, the modality index of each point.
        label (np.ndarray): ``(P,)`` or ``(P, C)`` the sample's label.
        method (str): ``"tsne"`` or ``"pca"``, the method actually used.
    """

    points: np.ndarray
    modality: np.ndarray
    label: np.ndarray
    method: str


def embed_spaces(outputs: SplitOutputs, *, method: str = "tsne", max_samples: int = 500,
                 seed: int = 0) -> dict[str, Embedding]:
    r"""Embeds the pooled features of every space in 2-D.

    The same random subset of samples is used in both spaces; every modality of a
    kept sample becomes one point. Every feature is scaled to unit length first, so
    that distances in the embedding follow the cosine distance that
    :func:`modality_separation` scores.

    Args:
        outputs (SplitOutputs): From :func:`collect_outputs`.
        method (str, optional): ``"tsne"`` or ``"pca"``; t-SNE falls back to PCA
            below ``MIN_TSNE_POINTS`` points. (default: ``"tsne"``)
        max_samples (int, optional): Embed at most this many samples (t-SNE is slow on
            a CPU beyond a few thousand points). (default: ``500``)
        seed (int, optional): Seed of the subset and of t-SNE. (default: ``0``)
    """
    if method not in EMBEDDINGS:
        raise ValueError(f"embed_spaces: method must be one of {EMBEDDINGS}, found {method!r}.")
    num_samples = len(outputs.labels)
    keep = np.arange(num_samples)
    if num_samples > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(num_samples, max_samples, replace=False))
    num_modalities = len(outputs.modalities)
    modality = np.tile(np.arange(num_modalities), len(keep))  # (P,)
    label = np.repeat(outputs.labels[keep], num_modalities, axis=0)  # (P,) or (P, C)
    used = "pca" if method == "pca" or len(modality) < MIN_TSNE_POINTS else "tsne"
    embeddings = {}
    for space, values in outputs.spaces.items():
        points = values.features[keep].reshape(len(modality), -1)  # (P, F)
        points = points / (np.linalg.norm(points, axis=1, keepdims=True) + 1e-12)
        if used == "pca":
            reducer = PCA(n_components=2, random_state=seed)
        else:
            perplexity = min(30.0, (len(points) - 1) / 3)
            reducer = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        embeddings[space] = Embedding(reducer.fit_transform(points), modality, label, used)
    return embeddings


def modality_colors(num_modalities: int) -> list:
    """One fixed colour per modality index, shared by every figure of the inspection."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return [palette(i % 10) for i in range(num_modalities)]


def plot_spaces(embeddings: Mapping[str, Embedding], modalities: tuple[str, ...],
                class_names: Sequence[str] | None = None) -> Figure:
    r"""Draws each space's 2-D embedding twice: coloured by modality and by label
    sign (scores) or class (:func:`label_groups`).

    One row per space. In a well-decoupled model the homogeneous points of the
    modalities overlap (left), the heterogeneous ones form one cluster per modality,
    and the label sign or class (right) shows whether a space orders the samples by
    sentiment or emotion.

    Args:
        embeddings (Mapping[str, Embedding]): From :func:`embed_spaces`.
        modalities (tuple[str, ...]): The modality names, in node order.
        class_names (Sequence[str], optional): The classes or labels of a
            classification model; :obj:`None` for scores. (default: :obj:`None`)
    """
    from matplotlib import colormaps

    colors = modality_colors(len(modalities))
    groups = "label sign" if class_names is None else "class"
    figure = Figure(figsize=(9.0, 4.2 * len(embeddings)), layout="constrained")
    axes = figure.subplots(len(embeddings), 2, squeeze=False)
    for row, (space, embedding) in enumerate(embeddings.items()):
        by_modality, by_sign = axes[row]
        sign, names = label_groups(embedding.label, class_names)
        sign_colors = (("tab:red", "0.6", "tab:blue") if class_names is None
                       else [colormaps["tab10"](i % 10) for i in range(len(names))])
        for index, name in enumerate(modalities):
            chosen = embedding.modality == index
            by_modality.scatter(*embedding.points[chosen].T, s=6, alpha=0.6,
                                color=colors[index], label=name)
        for index, name in enumerate(names):
            chosen = sign == index
            if not chosen.any():
                continue
            by_sign.scatter(*embedding.points[chosen].T, s=6, alpha=0.6,
                            color=sign_colors[index], label=name)
        method = "t-SNE" if embedding.method == "tsne" else "PCA"
        by_modality.set_title(f"{space} features ({method}) by modality")
        by_sign.set_title(f"{space} features ({method}) by {groups}")
        for axis in (by_modality, by_sign):
            axis.set_xticks([])
            axis.set_yticks([])
            axis.legend(loc="best", fontsize="small", markerscale=2)
    return figure
