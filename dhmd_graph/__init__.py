"""dhmd_graph: Decoupled Hierarchical Multimodal Distillation on PyTorch Geometric."""

from dhmd_graph.config import DHMDConfig, ModalityConfig, apply_overrides, preset
from dhmd_graph.data import (
    DatasetError,
    MultimodalBatch,
    MultimodalDataset,
    collate,
    convert_to_cache,
    default_dataset_path,
    load_cache,
    load_dataset,
    load_misa,
    load_mmsa,
    read_csd,
    write_synthetic,
)
from dhmd_graph.model import DHMD, DHMDOutput, dhmd_objective
from dhmd_graph.nn import DynamicGraphDistill
from dhmd_graph.train import TrainConfig, Trainer, run_seeds

__version__ = "0.1.0"

__all__ = ["DHMD", "DHMDConfig", "DHMDOutput", "ModalityConfig", "apply_overrides", "dhmd_objective", "preset", "DatasetError", "DynamicGraphDistill", "MultimodalBatch", "MultimodalDataset", "collate", "convert_to_cache", "load_cache", "load_dataset", "load_misa", "load_mmsa", "read_csd", "default_dataset_path", "write_synthetic", "TrainConfig", "Trainer", "run_seeds", "__version__"]
