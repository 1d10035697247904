"""fit_steps: kernels and padded lengths for inputs without (or with a short) time axis."""

import dataclasses

import numpy as np
import pytest
import torch

from dhmd_graph.config import DHMDConfig, ModalityConfig
from dhmd_graph.data import MultimodalDataset, collate
from dhmd_graph.experiment import fit_steps
from dhmd_graph.model import DHMD
from dhmd_graph.presets import preset

ONE_STEP = {"text": 20, "audio": 1, "vision": 1}


def _kernels(config):
    return {m.name: m.kernel_size for m in config.modalities}


def test_kernels_longer_than_the_data_shrink_to_it():
    config, notes = fit_steps(preset("mosi"), {"text": 3, "audio": 1, "vision": 1})
    assert _kernels(config) == {"text": 3, "audio": 1, "vision": 1}
    assert notes == [
        "modalities.text.kernel_size: 5 -> 3 (the data's 'text' has at most 3 steps)",
        "modalities.audio.kernel_size: 5 -> 1 (the data's 'audio' has at most 1 step)",
        "modalities.vision.kernel_size: 5 -> 1 (the data's 'vision' has at most 1 step)",
    ]


@pytest.mark.parametrize("name, reference, aligned", [
    ("mosi", None, True), ("mosei", None, True), ("sims", None, False),
    ("mosi", "dmd", True), ("mosi", "dmd", False), ("mosei", "dmd", False),
    ("iemocap4", None, True), ("humour", None, False)])
def test_presets_on_their_own_data_are_unchanged(name, reference, aligned):
    config = preset(name, aligned, reference=reference)
    lengths = {m.name: m.sequence_length or 50 for m in config.modalities}
    fitted, notes = fit_steps(config, lengths)
    assert fitted == config and notes == []


def test_dmd_reference_on_one_step_data_pads_nothing():
    config, notes = fit_steps(preset("mosi", reference="dmd"), ONE_STEP)
    lengths = {m.name: (m.kernel_size, m.sequence_length) for m in config.modalities}
    assert lengths == {"text": (5, 50), "audio": (1, 1), "vision": (1, 1)}
    assert "modalities.audio.sequence_length: 50 -> 1 (the data's 'audio' has at most 1 step)" \
        in notes
    model = DHMD(dataclasses.replace(config, modalities=[
        dataclasses.replace(m, input_dim=d) for m, d in zip(config.modalities, (6, 4, 5),
                                                            strict=True)]))
    out = model(_batch(4, {"text": 6, "audio": 4, "vision": 5}, text_steps=50))
    assert torch.isfinite(out.prediction).all()


def test_choices_of_the_user_are_kept():
    config = preset("mosi")
    kept, notes = fit_steps(config, ONE_STEP, ["modalities.audio.kernel_size=5"])
    assert _kernels(kept) == {"text": 5, "audio": 5, "vision": 1}
    assert [note.split(":")[0] for note in notes] == ["modalities.vision.kernel_size"]


def _batch(n, dims, text_steps=7, seed=0):
    rng = np.random.default_rng(seed)
    features = {"text": rng.normal(size=(n, text_steps, dims["text"])).astype(np.float32),
                "audio": rng.normal(size=(n, 1, dims["audio"])).astype(np.float32),
                "vision": rng.normal(size=(n, 1, dims["vision"])).astype(np.float32)}
    lengths = {"text": rng.integers(5, text_steps + 1, n), "audio": np.ones(n, np.int64),
               "vision": np.ones(n, np.int64)}
    dataset = MultimodalDataset(features, lengths, rng.normal(size=n), list("abcdefgh"[:n]))
    return collate([dataset[i] for i in range(n)])


def test_the_fitted_model_computes_what_the_long_kernels_did():
    dims = {"text": 6, "audio": 4, "vision": 5}
    config = DHMDConfig(modalities=[ModalityConfig(name, input_dim=d, kernel_size=5)
                                    for name, d in dims.items()], width=8, num_heads=2)
    fitted, _ = fit_steps(config, {"text": 7, "audio": 1, "vision": 1})
    torch.manual_seed(0)
    long = DHMD(config).eval()
    short = DHMD(fitted).eval()
    state = long.state_dict()
    for key, value in short.state_dict().items():
        state[key] = state[key][..., : value.shape[-1]]  # the first taps of the kernels
    short.load_state_dict(state)
    batch = _batch(5, dims)
    with torch.no_grad():
        torch.testing.assert_close(short(batch).prediction, long(batch).prediction)
    weights = {name: p.shape for name, p in short.named_parameters() if "projections" in name}
    assert weights["projections.1.conv.weight"] == (8, 4, 1)


def test_a_bag_of_words_is_one_step_whatever_the_token_sequences():
    config = preset("mosi", reference="dmd")
    text = dataclasses.replace(config.modalities[0], input_dim=None, vocab_size=30,
                               bag_of_words=True)
    config = dataclasses.replace(config, modalities=[text, *config.modalities[1:]])
    fitted, notes = fit_steps(config, {"text": 20, "audio": 50, "vision": 50})
    assert (fitted.modalities[0].kernel_size, fitted.modalities[0].sequence_length) == (1, 50)
    assert fitted.modalities[0].projected_length == 1  # the token ids stay padded to 50
    assert notes == ["modalities.text.kernel_size: 5 -> 1 (a bag of words is one step)"]
