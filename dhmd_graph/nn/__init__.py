"""Reusable layers, each usable alone."""

from dhmd_graph.nn.dictionary import (
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
from dhmd_graph.nn.masking import MaskedPooling, attention_mask, length_mask, masked_mean
from dhmd_graph.nn.space import DecoupledSpace, SpaceOutput
from dhmd_graph.nn.transformer import StackedTransformer, masked_attention, position_encoding
from dhmd_graph.nn.word_vectors import coverage_line, load_word_vectors, vector_width

__all__ = [
    "DecoupledFeatures",
    "DecoupledSpace",
    "Decoupling",
    "DynamicGraphDistill",
    "EdgeWeights",
    "FlattenHead",
    "GraphDistillOutput",
    "MaskedPooling",
    "ModalitySharedDictionary",
    "ResidualHead",
    "SharedDictionaryOutput",
    "SpaceOutput",
    "StackedTransformer",
    "TemporalProjection",
    "attention_mask",
    "coverage_line",
    "length_mask",
    "load_word_vectors",
    "masked_attention",
    "masked_mean",
    "position_encoding",
    "sparsemax",
    "vector_width",
    "ModalityGraph",
    "modality_graph",
    "restrict_to_present",
]
