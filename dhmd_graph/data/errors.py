"""The data layer's error type (defined with the others in :mod:`dhmd_graph.errors`)."""

from dhmd_graph.errors import DatasetError

__all__ = ["DatasetError"]
