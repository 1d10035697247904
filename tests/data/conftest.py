"""Small MMSA-layout splits written by the tests themselves."""

import pickle

import numpy as np
import pytest

DIMS = {"text": 6, "audio": 4, "vision": 5}


def mmsa_split(n: int = 5, *, aligned: bool = True, sims: bool = False, seed: int = 0) -> dict:
    """One split in the MMSA layout with known lengths (text from the BERT mask)."""
    rng = np.random.default_rng(seed)
    steps = {"text": 8, "audio": 8, "vision": 8} if aligned else {"text": 8, "audio": 12, "vision": 10}
    split = {
        "id": np.array([f"video{i}$_${i % 3}" for i in range(n)], dtype=object),
        "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
        **{m: rng.normal(size=(n, steps[m], DIMS[m])).astype(np.float32) for m in DIMS},
        "regression_labels": np.linspace(-0.9 if sims else -3, 0.9 if sims else 3, n),
    }
    mask = np.zeros((n, steps["text"]))
    for i in range(n):
        mask[i, : 2 + i % (steps["text"] - 1)] = 1
    split["text_bert"] = np.stack([mask * 101, mask, np.zeros_like(mask)], axis=1)  # (n, 3, T_l)
    if not aligned:
        split["audio_lengths"] = np.array([1 + i % steps["audio"] for i in range(n)])
        split["vision_lengths"] = np.array([steps["vision"] - i % 3 for i in range(n)])
    if sims:
        for suffix in "TAV":
            split[f"regression_labels_{suffix}"] = rng.uniform(-1, 1, n)
    return split


def mmsa_data(**options) -> dict:
    """A complete MMSA dict with splits of 5, 3 and 4 samples."""
    return {split: mmsa_split(n, seed=i, **options)
            for i, (split, n) in enumerate({"train": 5, "valid": 3, "test": 4}.items())}


@pytest.fixture
def write_pickle(tmp_path):
    """``write_pickle(obj, name='data.pkl') -> Path`` in the test's tmp_path."""
    def write(obj, name: str = "data.pkl"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj, protocol=4))
        return path
    return write


@pytest.fixture
def make_mmsa():
    """The :func:`mmsa_data` factory."""
    return mmsa_data


@pytest.fixture
def make_split():
    """The :func:`mmsa_split` factory."""
    return mmsa_split
