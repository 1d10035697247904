"""dhmd_graph: Decoupled Hierarchical Multimodal Distillation on PyTorch Geometric."""

from dhmd_graph.data import DatasetError, MultimodalBatch, MultimodalDataset, collate
from dhmd_graph.nn import DynamicGraphDistill

__version__ = "0.1.0"

__all__ = ["DatasetError", "DynamicGraphDistill", "MultimodalBatch", "MultimodalDataset", "collate", "__version__"]
