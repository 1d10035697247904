"""Fixtures of the trainer tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_determinism():
    """``seed_everything`` switches deterministic algorithms on process-wide."""
    enabled = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(enabled)
