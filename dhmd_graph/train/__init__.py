"""The generic training loop; it knows a model only through ``training_step``,
``predict_step`` and ``configure_optimizers``, and the data only through the
``collate_fn`` it is given."""

from dhmd_graph.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dhmd_graph.train.config import TrainConfig
from dhmd_graph.train.distributed import DistributedContext, setup_distributed
from dhmd_graph.train.evaluation import evaluating
from dhmd_graph.train.run_folder import (
    RunExistsError,
    RunFolder,
    RunFolderError,
    RunLockedError,
    SeedFolder,
)
from dhmd_graph.train.runs import format_table, run_seeds, summarize
from dhmd_graph.train.seeds import seed_everything
from dhmd_graph.train.trainer import NonFiniteLossError, TrainableModel, Trainer, predict

__all__ = [
    "CheckpointError",
    "DistributedContext",
    "NonFiniteLossError",
    "RunExistsError",
    "RunFolder",
    "RunFolderError",
    "RunLockedError",
    "SeedFolder",
    "TrainConfig",
    "TrainableModel",
    "Trainer",
    "evaluating",
    "format_table",
    "load_checkpoint",
    "predict",
    "run_seeds",
    "save_checkpoint",
    "seed_everything",
    "setup_distributed",
    "summarize",
]
