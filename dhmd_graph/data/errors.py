""":class:`DatasetError`, the one exception type for bad data (defined in
:mod:`dhmd_graph.errors`, a foundation module that :mod:`dhmd_graph.files` can import
without importing the readers)."""

from dhmd_graph.errors import DatasetError

__all__ = ["DatasetError"]
