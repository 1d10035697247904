"""dhmd_graph: Decoupled Hierarchical Multimodal Distillation on PyTorch Geometric.

The public names below are imported lazily (PEP 562), so that ``import dhmd_graph``
and ``dhmd --help`` do not pay for importing PyTorch Geometric up front.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "DHMDConfig": "dhmd_graph.config",
    "ModalityConfig": "dhmd_graph.config",
    "apply_overrides": "dhmd_graph.config",
    "preset": "dhmd_graph.presets",
    "Experiment": "dhmd_graph.experiment",
    "TrainedRun": "dhmd_graph.trained",
    "DatasetError": "dhmd_graph.data",
    "MultimodalBatch": "dhmd_graph.data",
    "MultimodalDataset": "dhmd_graph.data",
    "align_csd": "dhmd_graph.data",
    "collate": "dhmd_graph.data",
    "convert_to_cache": "dhmd_graph.data",
    "default_dataset_path": "dhmd_graph.data",
    "load_arrays": "dhmd_graph.data",
    "load_cache": "dhmd_graph.data",
    "load_dataset": "dhmd_graph.data",
    "load_misa": "dhmd_graph.data",
    "load_mmsa": "dhmd_graph.data",
    "load_mult": "dhmd_graph.data",
    "read_csd": "dhmd_graph.data",
    "write_synthetic": "dhmd_graph.data",
    "DHMD": "dhmd_graph.model",
    "DHMDOutput": "dhmd_graph.model",
    "dhmd_objective": "dhmd_graph.model",
    "DynamicGraphDistill": "dhmd_graph.nn",
    "TrainConfig": "dhmd_graph.train",
    "Trainer": "dhmd_graph.train",
    "run_seeds": "dhmd_graph.train",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dhmd_graph' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

