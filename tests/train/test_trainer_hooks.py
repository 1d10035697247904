"""The trainer knows a model only through its hooks and the data only through the
collate function: here a model and data that are not DHMD's nor its batch format."""

import ast
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from boring import read_log, stop_after, tiny_config
from torch import Tensor, nn

import dhmd_graph.train
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.train import Trainer, seed_everything


class Pairs(NamedTuple):
    """A batch that is neither a MultimodalBatch nor has labels."""

    x: Tensor
    y: Tensor

    def to(self, device: torch.device) -> "Pairs":
        return Pairs(self.x.to(device), self.y.to(device))


def collate_pairs(samples: list[tuple[Tensor, Tensor]]) -> Pairs:
    xs, ys = zip(*samples, strict=True)
    return Pairs(torch.stack(xs), torch.stack(ys))  # (B, 3), (B,)


def pairs(n: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=generator)
    return list(zip(x, y, strict=True))


class Regressor(nn.Module):
    def __init__(self, scheduler: bool = True) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.scheduler = scheduler

    def training_step(self, batch: Pairs) -> dict[str, Tensor]:
        return {"loss": (self.layer(batch.x).squeeze(-1) - batch.y).pow(2).mean()}

    def predict_step(self, batch: Pairs) -> tuple[Tensor, Tensor]:
        return self.layer(batch.x).squeeze(-1), batch.y

    def configure_optimizers(self, config):
        optimizer = torch.optim.SGD(self.parameters(), lr=config.lr)
        if not self.scheduler:
            return optimizer, None
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


def trainer(out_dir, scheduler: bool = True, callbacks=()) -> Trainer:
    seed_everything(2)
    return Trainer(Regressor(scheduler), tiny_config(max_epochs=4, early_stop_patience=10),
                   pairs(48, 0), pairs(24, 1), out_dir, metrics=regression_metrics,
                   collate_fn=collate_pairs, seed=2, callbacks=callbacks)


def test_the_models_optimiser_and_an_epoch_scheduler_drive_training(tmp_path):
    run = trainer(tmp_path)
    assert isinstance(run.optimizer, torch.optim.SGD)
    run.fit()
    log = read_log(tmp_path / "log.jsonl")
    assert [record["lr"] for record in log] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert log[-1]["valid/MAE"] < log[0]["valid/MAE"]
    prediction, target = run.predict(pairs(24, 1))
    assert prediction.shape == target.shape == (24,)
    torch.testing.assert_close(torch.from_numpy(target), torch.stack([y for _, y in pairs(24, 1)]))


@pytest.mark.parametrize("scheduler", [True, False])
def test_resume_with_the_models_scheduler_or_none(tmp_path, scheduler):
    whole = trainer(tmp_path / "whole", scheduler)
    whole.fit()
    trainer(tmp_path / "cut", scheduler, callbacks=[stop_after(2)]).fit()
    resumed = trainer(tmp_path / "cut", scheduler)
    resumed.fit(resume=True)
    def untimed(run: str) -> list[dict]:
        return [{**record, "time_s": 0} for record in read_log(tmp_path / run / "log.jsonl")]

    assert untimed("cut") == untimed("whole")
    log = untimed("cut")
    assert len(log) == 4 and (log[-1]["lr"] < 0.1) == scheduler
    for mine, theirs in zip(resumed.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)  # bit-identical


def test_the_train_package_imports_nothing_from_data():
    for path in Path(dhmd_graph.train.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(name.startswith("dhmd_graph.data") for name in names), path.name
