"""Reusable layers, each usable alone."""

from dhmd_graph.nn.distill import DynamicGraphDistill
from dhmd_graph.nn.graph import ModalityGraph, modality_graph, restrict_to_present

__all__ = [
    "DynamicGraphDistill",
    "ModalityGraph",
    "modality_graph",
    "restrict_to_present",
]
