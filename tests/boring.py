"""Test doubles for the generic trainer: a ``BoringModel`` and random multimodal splits.

Shared by ``tests/train`` (and the ``torchrun`` script mode of ``test_distributed.py``);
pytest finds this module through ``pythonpath = ["tests"]``.
"""

import json

import numpy as np
import torch
from torch import Tensor, nn

from dhmd_graph.data import MultimodalBatch, MultimodalDataset, collate
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.train import TrainConfig, Trainer, seed_everything

DIMS = {"text": 3, "audio": 2}


def random_split(n: int, name: str, rng: np.random.Generator) -> MultimodalDataset:
    """``n`` samples whose label is a fixed linear function of the mean features."""
    steps = {"text": 4, "audio": 6}
    features, lengths, pooled = {}, {}, []
    for modality, dim in DIMS.items():
        length = rng.integers(1, steps[modality] + 1, size=n)
        x = rng.normal(size=(n, steps[modality], dim)).astype(np.float32)
        x[np.arange(steps[modality]) >= length[:, None]] = 0.0  # padding
        features[modality], lengths[modality] = x, length
        pooled.append(x.sum(1) / length[:, None])
    weights = np.linspace(-1.0, 1.0, sum(DIMS.values()))
    labels = np.clip(np.concatenate(pooled, 1) @ weights * 2.0, -3, 3)
    return MultimodalDataset(features, lengths, labels, [f"{name}_{i}" for i in range(n)],
                             split=name)


def random_splits(sizes=(48, 24, 24), seed=0) -> dict[str, MultimodalDataset]:
    rng = np.random.default_rng(seed)
    names = ("train", "valid", "test")
    return {name: random_split(n, name, rng) for name, n in zip(names, sizes, strict=True)}


class BoringModel(nn.Module):
    """A linear head on the length-masked mean of each modality, with dropout."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(d, 1) for m, d in DIMS.items()})
        self.dropout = nn.Dropout(dropout)
        self.validated_ids: list[str] = []

    def forward(self, batch: MultimodalBatch) -> Tensor:
        out = 0.0
        for modality, head in self.heads.items():
            mask = batch.mask(modality).unsqueeze(-1)  # (B, T, 1)
            pooled = (batch.features[modality] * mask).sum(1) / mask.sum(1)  # (B, d)
            out = out + head(self.dropout(pooled)).squeeze(-1)  # (B,)
        return out

    def training_step(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        task = (self(batch) - batch.labels).abs().mean()
        penalty = sum(head.weight.square().sum() for head in self.heads.values())
        return {
            "loss": task + 1e-3 * penalty,
            "task": task,
            "penalty": penalty,
            "edge/homogeneous/text->audio": torch.tensor(0.25),
        }

    def predict_step(self, batch: MultimodalBatch) -> tuple[Tensor, Tensor]:
        self.validated_ids += batch.ids
        return self(batch), batch.labels

    def configure_optimizers(self, config: TrainConfig):
        return adam_on_plateau(self, config)


def adam_on_plateau(model: nn.Module, config: TrainConfig):
    """The optimisation of DHMD's ``configure_optimizers``, for the test doubles."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=config.lr, weight_decay=config.weight_decay)
    return optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=config.direction, factor=config.lr_factor, patience=config.lr_patience)


def tiny_config(**changes) -> TrainConfig:
    settings = dict(lr=1e-1, batch_size=8, accumulation_steps=2, max_epochs=6, seeds=[1],
                    device="cpu", progress=False)
    return TrainConfig(**(settings | changes))


def make_trainer(out_dir, config, splits, model=None, seed=1, **kwargs) -> Trainer:
    if model is None:
        seed_everything(seed)
        model = BoringModel()
    return Trainer(model, config, splits["train"], splits["valid"], out_dir,
                   metrics=regression_metrics, collate_fn=collate, seed=seed, **kwargs)


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stop_after(epoch: int):
    def callback(trainer: Trainer, record: dict) -> None:
        if record["epoch"] == epoch:
            trainer.should_stop = True
    return callback
