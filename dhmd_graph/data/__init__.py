"""Files in, batches out. Knows nothing of models."""

from dhmd_graph.data.batch import MultimodalBatch, MultimodalDataset, collate
from dhmd_graph.data.errors import DatasetError

__all__ = ["DatasetError", "MultimodalBatch", "MultimodalDataset", "collate"]
