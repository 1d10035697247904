r"""Model presets: DHMD's settings per benchmark, and the DMD reference mode.

* :func:`preset` gives our settings for every benchmark protocol of
  :data:`dhmd_graph.protocols.PROTOCOLS` (the task and classes come from there);
  ``preset(name, aligned, reference="dmd")`` the DMD reference mode, in which every
  difference from the DMD reference code (each a documented switch of
  :mod:`dhmd_graph.config`) is set to the reference's behaviour.

Example:
    >>> from dhmd_graph.presets import preset
    >>> preset("mosi").width, preset("iemocap6").task
    (50, 'multiclass')
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dhmd_graph.config import (
    DHMDConfig,
    DictionaryConfig,
    EncoderConfig,
    GraphConfig,
    LossConfig,
    ModalityConfig,
)
from dhmd_graph.errors import ConfigError
from dhmd_graph.protocols import protocol

__all__ = ["PRESETS", "REFERENCES", "preset"]


_PRESETS: dict[str, dict[str, Any]] = {
    # Reference DMD settings: width, heads, kernels (text, audio, vision), input dims.
    "mosi": {"width": 50, "num_heads": 10, "kernels": (5, 5, 5), "dims": (768, 5, 20)},
    "mosei": {"width": 30, "num_heads": 6, "kernels": (5, 1, 3), "dims": (768, 74, 35)},
    # Ours (no reference setting): MOSI's width for a dataset of MOSI's size, and
    # kernel 3 everywhere since the CH-SIMS text and vision sequences are short.
    "sims": {"width": 50, "num_heads": 10, "kernels": (3, 3, 3), "dims": (768, 33, 709)},
    # The emotion, humour and sarcasm tasks (ours, no DMD setting): MOSEI's width and heads;
    # kernel 1 on IEMOCAP's 20 aligned steps (as MulT), MOSEI's kernels on 50 steps. The
    # task and C are those of the benchmark's protocol (dhmd_graph.protocols); fitting the
    # experiment to the data takes them from its labels.
    "iemocap4": {"width": 30, "num_heads": 6, "kernels": (1, 1, 1), "dims": (300, 74, 35)},
    "iemocap6": {"width": 30, "num_heads": 6, "kernels": (1, 1, 1), "dims": (300, 74, 35)},
    "mosei_emotions": {"width": 30, "num_heads": 6, "kernels": (5, 1, 3),
                       "dims": (300, 74, 35), "task": ("multilabel", 6)},
    "humour": {"width": 30, "num_heads": 6, "kernels": (5, 1, 3), "dims": (300, 81, 75)},
    "sarcasm": {"width": 30, "num_heads": 6, "kernels": (5, 1, 3), "dims": (300, 81, 75)},
}
ROUTING_GRAPH: dict[str, Any] = {
    "scorer": "pairwise",
    "scorer_input": "statistics",
    "edge_target": "teacher_error",
    "loss_trains_weights": False,
    "prior_schedule": "linear",
}
"""The routing switches of both GD-Units in our presets (:class:`GraphConfig`'s own defaults
are the DMD reference's). Chosen by evidence: on the routing stand-in
(``benchmarks/routing_evidence.py``, 3 seeds) they make the learned weights :math:`E`
follow each teacher's per-sample reliability (correlation 0.5-0.76 in every seed, routing
accuracy 0.74 against chance 0.33) and cut the test MAE from 0.576 (the reference's
switches) to 0.492, where distillation with the reference's switches did no better than
none (0.571); ``docs/guide/model.md`` has the table."""

ROUTING_DICTIONARY: dict[str, Any] = {
    "contrastive_input": "representation",
    "contrastive_positives": "label",
    "contrastive_cross_modal": "homogeneous",
}
"""The contrastive stage of our presets' dictionaries (label-aware positives on the
representations before the GD-Unit; :class:`DictionaryConfig`'s own defaults are the
InfoNCE on the reconstructions), chosen with :data:`ROUTING_GRAPH`."""


_REFERENCE_PRIORS = {
    "homogeneous": {"text->vision": 1.0, "text->audio": 1.0},
    "heterogeneous": {"text->vision": 1.0, "text->audio": 1.0, "vision->audio": 1.0},
}
_DMD: dict[str, dict[str, Any]] = {
    # The DMD reference's config/config.json: dropouts (attn_dropout is text's and the
    # memory encoders'; relu_dropout = res_dropout = 0 in both) and the padded lengths
    # (text, audio, vision) its length-bound heads are built for (trains/singleTask/
    # model/dmd.py:18-27).
    "mosi": {"text_dropout": 0.5, "attention": (0.3, 0.2, 0.0), "embed_dropout": 0.2,
             "output_dropout": 0.5, "lengths": {True: (50, 50, 50), False: (50, 375, 500)}},
    "mosei": {"text_dropout": 0.3, "attention": (0.4, 0.0, 0.0), "embed_dropout": 0.0,
              "output_dropout": 0.5, "lengths": {True: (50, 50, 50), False: (50, 500, 500)}},
}
REFERENCES = ("dmd",)
PRESETS = tuple(_PRESETS)
"""The names :func:`preset` knows."""


def preset(name: str, aligned: bool = True, reference: str | None = None) -> DHMDConfig:
    r"""The configuration for a dataset: ours, or the DMD reference mode.

    MOSI: ``d = 50``, 10 heads, kernels 5/5/5; MOSEI: ``d = 30``, 6 heads, kernels
    L5 A1 V3 (both the DMD reference); CH-SIMS (unaligned only): ``d = 50``, 10 heads,
    kernels 3/3/3 (our choice). All: modalities ``text`` (768-d BERT features),
    ``audio``, ``vision``; 4 layers; the reference priors (homogeneous: 1 on
    text->vision and text->audio; heterogeneous: also vision->audio).

    Without :obj:`reference` this is DHMD as its framework figure draws it (GD-Units that output
    features, a modality-shared dictionary per space with its contrastive loss, fusion
    of GD outputs and dictionary reconstructions) with our defaults where the paper is
    silent, the same architecture for aligned and unaligned data (:obj:`aligned` only
    rejects combinations that do not exist). With ``reference="dmd"`` (MOSI and MOSEI
    only) it is the DMD reference code, switch by switch (the twelve differences of
    docs/guide/dmd.md): DMD's structure
    (``fusion="dmd"``, GD-Units as losses only, no dictionary), the fairseq position table,
    last-step readout, the length-bound flatten head and margin embedding (so the
    padded lengths of the aligned or unaligned files are part of the config), one
    LayerNorm for query and key/value, the shifted causal mask, no length masks,
    ``mean_b(w) mean_b(d)`` representation reduction, per-anchor margin averaging, and
    the reference's dropouts (text input dropout, attention dropout per source
    modality). Train it with :meth:`TrainConfig.preset("dmd")
    <dhmd_graph.train.TrainConfig.preset>`.

    The classification presets (ours) ``"iemocap4"`` (multi-label, 4 emotions),
    ``"iemocap6"`` (6 classes), ``"mosei_emotions"`` (multi-label, 6 emotions),
    ``"humour"`` and ``"sarcasm"`` (binary) set :attr:`DHMDConfig.task` and
    :attr:`DHMDConfig.num_classes` of the benchmark's protocol, with MOSEI's width and
    heads and the input widths of the MulT (IEMOCAP, MOSEI: 300 / 74 / 35) and HKT
    (UR-FUNNY, MUStARD: 300 / 81 / 75) features; kernel 1 on IEMOCAP's 20 steps, MOSEI's
    L5 A1 V3 on 50. They exist aligned and unaligned alike.

    Args:
        name (str): ``"mosi"``, ``"mosei"``, ``"sims"``, ``"iemocap4"``, ``"iemocap6"``,
            ``"mosei_emotions"``, ``"humour"`` or ``"sarcasm"``.
        aligned (bool, optional): Whether the data is word-aligned.
            (default: :obj:`True`)
        reference (str, optional): :obj:`None` for our defaults, ``"dmd"`` for the DMD
            reference mode. (default: :obj:`None`)
    """
    key = name.lower()
    if key not in _PRESETS:
        raise ConfigError(f"preset: expected one of {sorted(_PRESETS)}, found {name!r}. "
                          "Build a DHMDConfig directly for other datasets.")
    if key == "sims" and aligned:
        raise ConfigError("preset: CH-SIMS exists only unaligned; call preset('sims', "
                          "aligned=False).")
    if reference is not None and (reference not in REFERENCES or key not in _DMD):
        raise ConfigError(f"preset: reference must be None or one of {REFERENCES} (for "
                          f"{sorted(_DMD)}), found reference={reference!r} for {name!r}; the "
                          "DMD reference code has settings for MOSI and MOSEI only, so use one "
                          "of those presets or drop the reference.")
    settings = _PRESETS[key]
    benchmark = protocol(key)
    modalities = [
        ModalityConfig(name, input_dim=dim, kernel_size=kernel)
        for name, dim, kernel in zip(("text", "audio", "vision"), settings["dims"],
                                     settings["kernels"], strict=True)
    ]
    config = DHMDConfig(
        modalities=modalities,
        width=settings["width"],
        num_heads=settings["num_heads"],
        homogeneous_graph=GraphConfig(hidden_channels=64, use_repr_term=False,
                                      prior=dict(_REFERENCE_PRIORS["homogeneous"]),
                                      **ROUTING_GRAPH),
        heterogeneous_graph=GraphConfig(hidden_channels=32, repr_metric="positive_cosine",
                                        prior=dict(_REFERENCE_PRIORS["heterogeneous"]),
                                        **ROUTING_GRAPH),
        dictionary=DictionaryConfig(**ROUTING_DICTIONARY),
        task=benchmark.task,
        num_classes=benchmark.num_classes,
    )
    return config if reference is None else _dmd(config, key, aligned)


def _dmd(config: DHMDConfig, key: str, aligned: bool) -> DHMDConfig:
    """``config`` with every switch set to the DMD reference code (docs/guide/dmd.md)."""
    settings = _DMD[key]
    text_rate, *key_rates = settings["attention"]
    modalities = [
        dataclasses.replace(
            modality, sequence_length=length, length_mask=False,
            input_dropout=settings["text_dropout"] if modality.name == "text" else 0.0,
            attention_dropout=None if modality.name == "text" else rate)
        for modality, length, rate in zip(config.modalities, settings["lengths"][aligned],
                                          (text_rate, *key_rates), strict=True)
    ]
    reference_graph = {name: GraphConfig.__dataclass_fields__[name].default
                       for name in ROUTING_GRAPH}  # the reference's scorer, no target
    encoder = EncoderConfig(
        num_layers=4, memory_layers=4, attention_dropout=text_rate, dropout=0.0,
        embed_dropout=settings["embed_dropout"], output_dropout=settings["output_dropout"],
        pooling="last", positional_encoding="fairseq", homogeneous_head="flatten",
        cross_modal_norm="shared", causal_alignment="shifted")
    return dataclasses.replace(
        config, modalities=modalities, encoder=encoder,
        homogeneous_graph=dataclasses.replace(config.homogeneous_graph, propagate=False,
                                              **reference_graph),
        heterogeneous_graph=dataclasses.replace(config.heterogeneous_graph, propagate=False,
                                                repr_reduction="batch_means", **reference_graph),
        dictionary=DictionaryConfig(atoms=0),
        loss=LossConfig(use_margin=True, margin_embedding="flatten", margin_reduction="anchor"),
        fusion="dmd",
    )
