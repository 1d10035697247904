"""Files in, batches out. Knows nothing of models."""

from dhmd_graph.data.align import align_csd, load_alignment, load_folds
from dhmd_graph.data.arrays import dataset_from_arrays, load_arrays, write_arrays
from dhmd_graph.data.batch import MultimodalBatch, MultimodalDataset, collate
from dhmd_graph.data.cache import load_cache, write_cache
from dhmd_graph.data.csd import ComputationalSequence, CSDEntry, CSDReader, read_csd
from dhmd_graph.data.labels import mosei_emotion_presence
from dhmd_graph.data.loading import convert_to_cache, load_dataset
from dhmd_graph.data.misa import load_misa
from dhmd_graph.data.mmsa import load_mmsa
from dhmd_graph.data.mult import load_mult
from dhmd_graph.data.safe_pickle import load_pickle
from dhmd_graph.data.synthetic import default_dataset_path, write_synthetic
from dhmd_graph.data.synthetic_tasks import default_task_dataset_path, write_synthetic_task
from dhmd_graph.errors import DatasetError

__all__ = [
    "CSDEntry",
    "CSDReader",
    "ComputationalSequence",
    "DatasetError",
    "MultimodalBatch",
    "MultimodalDataset",
    "align_csd",
    "collate",
    "convert_to_cache",
    "default_dataset_path",
    "default_task_dataset_path",
    "load_cache",
    "load_alignment",
    "dataset_from_arrays",
    "load_arrays",
    "load_dataset",
    "load_folds",
    "load_misa",
    "load_mmsa",
    "load_mult",
    "load_pickle",
    "mosei_emotion_presence",
    "read_csd",
    "write_arrays",
    "write_cache",
    "write_synthetic",
    "write_synthetic_task",
]
