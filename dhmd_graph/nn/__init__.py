"""Reusable layers, each usable alone."""

from dhmd_graph.nn.attention import (
    MaskedPooling,
    StackedTransformer,
    attention_mask,
    length_mask,
    masked_attention,
    masked_mean,
    position_encoding,
)
from dhmd_graph.nn.dictionary import (
    CrossModalDictionary,
    DictionaryOutput,
    ModalitySharedDictionary,
    SharedDictionaryOutput,
    sparsemax,
)
from dhmd_graph.nn.distill import DynamicGraphDistill, EdgeWeights, GraphDistillOutput
from dhmd_graph.nn.encoders import (
    DecoupledFeatures,
    Decoupling,
    FlattenHead,
    ResidualHead,
    TemporalProjection,
)
from dhmd_graph.nn.graph import ModalityGraph, modality_graph, restrict_to_present

__all__ = [
    "CrossModalDictionary",
    "DecoupledFeatures",
    "Decoupling",
    "DictionaryOutput",
    "DynamicGraphDistill",
    "EdgeWeights",
    "FlattenHead",
    "GraphDistillOutput",
    "MaskedPooling",
    "ModalitySharedDictionary",
    "ResidualHead",
    "SharedDictionaryOutput",
    "StackedTransformer",
    "TemporalProjection",
    "attention_mask",
    "length_mask",
    "masked_attention",
    "masked_mean",
    "position_encoding",
    "sparsemax",
    "ModalityGraph",
    "modality_graph",
    "restrict_to_present",
]
