"""A tiny DHMD (3 modalities, width 8) trained for a few steps, and a tiny run folder.

The data carries a little signal (the label is a linear function of the features) so
that training moves the weights away from their initial values, but nothing here needs
the model to be good. Helpers reach the tests as fixtures (``train_model``,
``loader``, ``check_figure``), since test folders are not packages.
"""

import pickle

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch.utils.data import DataLoader

from dhmd_graph.config import (
    DHMDConfig,
    DictionaryConfig,
    EncoderConfig,
    GraphConfig,
    ModalityConfig,
    config_to_dict,
)
from dhmd_graph.data import MultimodalDataset, collate, load_dataset
from dhmd_graph.metrics import regression_metrics
from dhmd_graph.model import DHMD
from dhmd_graph.train import TrainConfig, run_seeds

DIMS = {"text": 6, "audio": 4, "vision": 5}
STEPS = 8


def tiny_config(**graph: object) -> DHMDConfig:
    """3 modalities, width 8, one layer, 6 atoms; ``graph`` sets both graphs' fields."""
    return DHMDConfig(
        modalities=[ModalityConfig(name, input_dim=dim) for name, dim in DIMS.items()],
        width=8,
        num_heads=2,
        encoder=EncoderConfig(num_layers=1, memory_layers=1),
        homogeneous_graph=GraphConfig(hidden_channels=4, use_repr_term=False, **graph),
        heterogeneous_graph=GraphConfig(hidden_channels=4, repr_metric="positive_cosine", **graph),
        dictionary=DictionaryConfig(atoms=6),
    )


def tiny_arrays(n: int, seed: int) -> tuple[dict, dict, np.ndarray]:
    """Features ``(n, STEPS, d)`` padded after random lengths, lengths and labels."""
    rng = np.random.default_rng(seed)
    features, lengths = {}, {}
    for name, dim in DIMS.items():
        length = rng.integers(2, STEPS + 1, size=n)
        x = rng.normal(size=(n, STEPS, dim)).astype(np.float32)
        x[np.arange(STEPS) >= length[:, None]] = 0.0
        features[name], lengths[name] = x, length
    signal = features["text"].sum((1, 2)) / lengths["text"] + features["audio"][:, 0, 0]
    labels = np.clip(np.round(signal * 3) / 3, -3, 3).astype(np.float32)
    return features, lengths, labels


def tiny_dataset(n: int = 24, seed: int = 0) -> MultimodalDataset:
    features, lengths, labels = tiny_arrays(n, seed)
    return MultimodalDataset(features, lengths, labels, [f"clip{i}$_$0" for i in range(n)])


def tiny_loader(n: int = 24, seed: int = 0) -> DataLoader:
    return DataLoader(tiny_dataset(n, seed), batch_size=8, collate_fn=collate)


def train_few_steps(config: DHMDConfig, steps: int = 4, seed: int = 0) -> DHMD:
    """A DHMD trained for a few Adam steps on :func:`tiny_loader`, in eval mode."""
    torch.manual_seed(seed)
    model = DHMD(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = list(tiny_loader(seed=seed + 1))
    for step in range(steps):
        loss = model.training_step(batches[step % len(batches)])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def write_tiny_mmsa(path, sizes=(32, 24, 8)) -> None:
    """An aligned MMSA pickle (text length from the ``text_bert`` mask) of tiny splits."""
    data = {}
    for seed, (split, n) in enumerate(zip(("train", "valid", "test"), sizes, strict=True)):
        features, lengths, labels = tiny_arrays(n, seed)
        mask = (np.arange(STEPS) < lengths["text"][:, None]).astype(np.float32)  # (n, T)
        data[split] = {
            "id": np.array([f"{split}{i}$_$0" for i in range(n)], dtype=object),
            "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
            "text_bert": np.stack([mask * 101, mask, np.zeros_like(mask)], axis=1),
            "regression_labels": labels,
            **features,
        }
    with open(path, "wb") as file:
        pickle.dump(data, file)


@pytest.fixture(scope="session")
def trained_model() -> DHMD:
    """No prior, ``normalize='graph'``."""
    return train_few_steps(tiny_config())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> dict:
    """A run folder as ``dhmd train`` writes it (one seed, 3 epochs), and its dataset."""
    root = tmp_path_factory.mktemp("run")
    data = root / "tiny.pkl"
    write_tiny_mmsa(data)
    config = tiny_config()
    meta = {"preset": "mosei", "aligned": True, "data": str(data), "model": config_to_dict(config)}
    train = TrainConfig(lr=3e-3, batch_size=8, accumulation_steps=1, max_epochs=3, seeds=[7],
                        device="cpu", progress=False)
    run_seeds(lambda: DHMD(config), load_dataset(data), train, root / "run",
              metrics=regression_metrics, collate_fn=collate, meta=meta)
    return {"run_dir": root / "run", "seed_dir": root / "run" / "seed_7", "data": data}


CLASSES = ("calm", "tense", "upbeat")


@pytest.fixture(scope="session")
def class_run(tmp_path_factory) -> dict:
    """A 3-class run folder of two seeds (1 epoch each) named :data:`CLASSES`, and a
    plain-arrays folder of its modalities with test samples only and no labels."""
    import dataclasses

    from dhmd_graph.data import write_arrays
    from dhmd_graph.metrics import task_metrics

    root = tmp_path_factory.mktemp("class_run")
    splits = {}
    for seed, (split, n) in enumerate(zip(("train", "valid", "test"), (24, 12, 12),
                                          strict=True)):
        features, lengths, scores = tiny_arrays(n, seed)
        labels = np.digitize(scores, [-0.3, 0.3]).astype(np.int64)  # (n,) in {0, 1, 2}
        splits[split] = MultimodalDataset(features, lengths, labels,
                                          [f"{split}{i}" for i in range(n)],
                                          label_kind="class", num_classes=3,
                                          label_names=CLASSES)
    config = dataclasses.replace(tiny_config(), task="multiclass", num_classes=3,
                                 class_names=list(CLASSES))
    meta = {"preset": "iemocap6", "aligned": True, "data": None,
            "model": config_to_dict(config)}
    train = TrainConfig(lr=3e-3, batch_size=8, accumulation_steps=1, max_epochs=1,
                        seeds=[7, 8], device="cpu", progress=False, monitor="Acc")
    run_seeds(lambda: DHMD(config), splits, train, root / "run",
              metrics=task_metrics("multiclass", 3), collate_fn=collate, meta=meta)
    features, lengths, _ = tiny_arrays(5, 9)
    unlabelled = MultimodalDataset(features, lengths, None, [f"new{i}" for i in range(5)])
    folder = write_arrays({"test": unlabelled}, root / "unlabelled")
    return {"run_dir": root / "run", "folder": folder, "dataset": unlabelled,
            "labelled": write_arrays(splits, root / "labelled"), "test": splits["test"]}


@pytest.fixture(scope="session")
def cli_runs(tmp_path_factory) -> tuple:
    """Two run folders trained by ``dhmd train`` on :func:`write_tiny_mmsa` data (16 / 8 /
    8 samples): seeds 1 and 2, one epoch of two batches each, the second run with another
    learning rate."""
    from dhmd_graph.cli import main

    root = tmp_path_factory.mktemp("cli_runs")
    data = root / "tiny.pkl"
    write_tiny_mmsa(data, sizes=(16, 8, 8))
    tiny = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
            "model.encoder.memory_layers=1", "model.dictionary.atoms=4", "train.max_epochs=1",
            "train.batch_size=8", "train.accumulation_steps=1", "train.progress=false"]
    for name, lr in (("a", "1e-3"), ("b", "5e-3")):
        assert main(["train", "--data", str(data), "--out", str(root / name), "--seeds", "1,2",
                     "--set", *tiny, f"train.lr={lr}"]) == 0
    return root / "a", root / "b"


@pytest.fixture(scope="session")
def train_model():
    """:func:`train_few_steps` of :func:`tiny_config` with the given graph fields."""
    return lambda **graph: train_few_steps(tiny_config(**graph))


@pytest.fixture(scope="session")
def loader() -> DataLoader:
    """24 samples in batches of 8, unseen in training."""
    return tiny_loader(seed=5)


@pytest.fixture(scope="session")
def check_figure():
    return assert_figure


def assert_figure(path, max_bytes: int = 200_000) -> None:
    """``path`` is a PNG of a sane size that is not blank."""
    assert path.is_file(), path
    assert 0 < path.stat().st_size < max_bytes
    image = imread(path)  # (H, W, channels), floats in [0, 1]
    height, width = image.shape[:2]
    assert 150 <= height <= 3000 and 150 <= width <= 3000, image.shape
    assert image[..., :3].var() > 1e-3, "the figure is blank"
