"""Seeding, and the random-number state a resumed run must restore.

:func:`rng_state` returns only tensors and plain Python data, so that it can be
stored in a checkpoint read back with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["rng_state", "seed_everything", "set_rng_state"]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) generators.

    Args:
        seed (int): The seed.
        deterministic (bool, optional): Also ask PyTorch for deterministic algorithms
            (``warn_only``: an operation without one warns instead of failing) and turn
            off cuDNN's benchmark mode. On CPU this makes a run repeat bit for bit.
            (default: :obj:`True`)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    """The state of every generator :func:`seed_everything` seeds, as plain data."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore the generators from :func:`rng_state`'s output."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state((
        "MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
        numpy["has_gauss"], numpy["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
