"""dhmd_graph: Decoupled Hierarchical Multimodal Distillation on PyTorch Geometric.

The public names below are imported lazily (PEP 562), so that ``import dhmd_graph``
and ``dhmd --help`` do not pay for importing PyTorch Geometric up front.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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


def lazy_exports(module: str, exports: dict[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The PEP 562 ``__getattr__`` and ``__dir__`` of a package whose public names
    (``exports``: name -> defining module) are imported on first use and then cached in
    ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module '{module}' has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(namespace["__all__"])

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
