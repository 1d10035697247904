"""Reusable layers, each usable alone."""

from dhmd_graph.nn.attention import (
    CrossModalTransformer,
    MaskedPooling,
    SelfAttentionEncoder,
    attention_mask,
    length_mask,
    masked_mean,
)
from dhmd_graph.nn.dictionary import CrossModalDictionary, DictionaryOutput, sparsemax
from dhmd_graph.nn.distill import DynamicGraphDistill
from dhmd_graph.nn.encoders import DecoupledFeatures, Decoupling, ResidualHead, TemporalProjection
from dhmd_graph.nn.graph import ModalityGraph, modality_graph, restrict_to_present

__all__ = [
    "CrossModalDictionary",
    "CrossModalTransformer",
    "DecoupledFeatures",
    "Decoupling",
    "DictionaryOutput",
    "DynamicGraphDistill",
    "MaskedPooling",
    "ResidualHead",
    "SelfAttentionEncoder",
    "TemporalProjection",
    "attention_mask",
    "length_mask",
    "masked_mean",
    "sparsemax",
    "ModalityGraph",
    "modality_graph",
    "restrict_to_present",
]
