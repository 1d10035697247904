"""The routing generator: layout, determinism, and the planted reliability structure."""

import pickle

import numpy as np
import pytest

from dhmd_graph.data import load_mmsa
from dhmd_graph.data.synthetic import RELIABILITY_KEY
from dhmd_graph.data.synthetic_routing import (
    CONTEXT_KEY,
    DISTRACTOR_KEY,
    GENERATOR_VERSION,
    RoutingStructure,
    default_routing_dataset_path,
    write_synthetic_routing,
)

SIZES = {"train": 600, "valid": 50, "test": 50}
MODALITIES = ("text", "audio", "vision")


@pytest.fixture(scope="module")
def routing_file(tmp_path_factory):
    return write_synthetic_routing(tmp_path_factory.mktemp("routing") / "r.pkl", SIZES, seed=3)


@pytest.fixture(scope="module")
def train(routing_file):
    with open(routing_file, "rb") as file:
        return pickle.load(file)["train"]


def test_layout_loads_with_reliability_and_is_deterministic(routing_file, tmp_path):
    splits = load_mmsa(routing_file)
    structure = RoutingStructure()
    for split, n in SIZES.items():
        dataset = splits[split]
        assert len(dataset) == n
        for name, dim in zip(MODALITIES, structure.dims, strict=True):
            assert dataset.features[name].shape == (n, structure.steps, dim)
        assert dataset.extras[RELIABILITY_KEY].shape == (n, 3)
    again = write_synthetic_routing(tmp_path / "again.pkl", SIZES, seed=3)
    assert again.read_bytes() == routing_file.read_bytes()
    other = write_synthetic_routing(tmp_path / "other.pkl", SIZES, seed=4)
    assert other.read_bytes() != routing_file.read_bytes()


def test_reliability_has_one_reliable_and_one_unreliable_modality(train):
    rho = train[RELIABILITY_KEY]
    assert rho.min() >= 0 and rho.max() <= 1
    assert (rho.max(axis=1) >= 0.8).all() and (rho.min(axis=1) <= 0.3).all()
    assert len(np.unique(rho.round(3))) > 100  # continuous
    unreliable = rho.argmin(axis=1)
    assert np.bincount(unreliable, minlength=3).min() > 150  # each modality fails as often


def test_context_is_visible_in_forty_percent_and_names_the_unreliable_modality(train):
    context = train[CONTEXT_KEY]
    visible = context >= 0
    assert 0.34 < visible.mean() < 0.46
    np.testing.assert_array_equal(context[visible], train[RELIABILITY_KEY][visible].argmin(1))


def test_distractors_point_away_from_the_label(train):
    y, distractor = train["regression_labels"], train[DISTRACTOR_KEY]
    assert (np.abs(distractor - y) >= 1.5 - 1e-6).all()
    assert distractor.min() >= -3 and distractor.max() <= 3


def test_an_unreliable_modality_follows_the_distractor(train):
    """Project each modality's time-mean on the signal direction: it tracks y where the
    modality is reliable and y' where it is not."""
    y, distractor = train["regression_labels"], train[DISTRACTOR_KEY]
    rho = train[RELIABILITY_KEY]
    for m, name in enumerate(MODALITIES):
        mean = train[name].mean(axis=1)  # (N, d)
        design = np.c_[mean, np.ones(len(mean))]
        mixed = rho[:, m] * y + (1 - rho[:, m]) * distractor  # what it carries
        fit = design @ np.linalg.lstsq(design, mixed, rcond=None)[0]
        low, high = rho[:, m] < 0.3, rho[:, m] > 0.8
        assert np.corrcoef(fit[high], y[high])[0, 1] > 0.6
        assert np.corrcoef(fit[low], distractor[low])[0, 1] > 0.6
        assert np.corrcoef(fit[low], y[low])[0, 1] < 0.2


def test_reliability_shows_in_the_noise_structure_not_in_its_size(train):
    """Per-step variance does not depend on reliability; step-to-step differences do."""
    rho, hidden = train[RELIABILITY_KEY], train[CONTEXT_KEY] < 0
    for m, name in enumerate(MODALITIES):
        x = train[name][hidden]
        centred = x - x.mean(axis=0, keepdims=True)  # remove the label/context part
        per_step = (centred**2).mean(axis=(1, 2))
        low, high = rho[hidden, m] < 0.3, rho[hidden, m] > 0.8
        size_ratio = per_step[low].mean() / per_step[high].mean()
        assert 0.8 < size_ratio < 1.35, name  # the distractor adds a little spread
        roughness = (np.diff(x, axis=1) ** 2).mean(axis=(1, 2))
        assert roughness[high].mean() > 1.3 * roughness[low].mean(), name
        assert np.corrcoef(roughness, rho[hidden, m])[0, 1] > 0.5


def test_cache_path_is_versioned(tmp_path, monkeypatch):
    monkeypatch.setenv("DHMD_CACHE", str(tmp_path))
    small = {"train": 4, "valid": 2, "test": 2}
    path = default_routing_dataset_path(small, seed=1)
    assert path.parent == tmp_path / "synthetic_routing" / f"v{GENERATOR_VERSION}"
    assert path.name == "routing_4-2-2_1.pkl" and path.is_file()
    assert default_routing_dataset_path(small, seed=1) == path


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 1}, "steps"), ({"code_channels": 3}, "code_channels"),
    ({"context_fraction": 1.5}, "context_fraction"), ({"anchor_range": (0.9, 0.8)}, "anchor"),
    ({"dims": (4, 4)}, "dims"), ({"distractor_distance": 0.0}, "distractor"),
])
def test_bad_structure_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RoutingStructure(**kwargs)


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="sizes"):
        write_synthetic_routing(tmp_path / "x.pkl", {"train": 10, "valid": 0, "test": 1})
