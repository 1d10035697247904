"""fit_inputs: every modality's input width or vocabulary size from the data."""

import dataclasses

import pytest

from dhmd_graph.config import apply_overrides
from dhmd_graph.errors import ConfigError
from dhmd_graph.experiment import fit_inputs
from dhmd_graph.presets import preset

MISA = {"text": (None, 120), "audio": (74, None), "vision": (47, None)}


def test_widths_and_vocabulary_come_from_the_data():
    fitted = fit_inputs(preset("mosei"), MISA)
    text, audio, vision = fitted.modalities
    assert (text.input_dim, text.vocab_size) == (None, 120)
    assert (audio.input_dim, audio.vocab_size, vision.input_dim) == (74, None, 47)
    # Everything else stays as configured.
    assert [m.kernel_size for m in fitted.modalities] == [5, 1, 3]
    assert (fitted.width, fitted.num_heads) == (30, 6)
    assert fit_inputs(fitted, {"text": (768, None), "audio": (74, None),
                               "vision": (35, None)}) == preset("mosei")


def test_a_larger_vocabulary_set_by_the_user_is_kept():
    overrides = ["modalities.text.input_dim=none", "modalities.text.vocab_size=500"]
    config = apply_overrides(preset("mosei"), overrides)
    assert fit_inputs(config, MISA, overrides).modalities[0].vocab_size == 500
    by_index = ["modalities.0.vocab_size=500"]
    config = apply_overrides(fit_inputs(preset("mosei"), MISA), by_index)
    assert fit_inputs(config, MISA, by_index).modalities[0].vocab_size == 500
    assert fit_inputs(config, MISA).modalities[0].vocab_size == 120  # not kept: the data's


@pytest.mark.parametrize("overrides, message", [
    (["modalities.text.input_dim=none", "modalities.text.vocab_size=100"],
     "DHMDConfig.modalities.text.vocab_size: expected at least 120 (the data's vocabulary: "
     "token ids up to 119), found 100"),
    (["modalities.audio.input_dim=5"],
     "DHMDConfig.modalities.audio.input_dim: expected 74 (the data holds features of width "
     "74), found 5"),
    (["modalities.text.input_dim=768"],
     "DHMDConfig.modalities.text.input_dim: expected None (the data holds token ids), "
     "found 768"),
])
def test_a_choice_of_the_user_that_does_not_fit_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_inputs(apply_overrides(preset("mosei"), overrides), MISA, overrides)


def test_other_modalities_are_refused():
    with pytest.raises(ValueError, match=r"DHMDConfig.modalities: expected the data's "
                                         r"modalities \['text', 'audio'\]"):
        fit_inputs(preset("mosei"), {"text": (768, None), "audio": (74, None)})


def test_a_bag_of_words_is_made_of_token_ids():
    from dhmd_graph.model import DHMD

    config = preset("mosi")
    features = dataclasses.replace(config, modalities=[
        dataclasses.replace(config.modalities[0], bag_of_words=True), *config.modalities[1:]])
    with pytest.raises(ConfigError, match="modalities.text.bag_of_words reads token ids, but "
                       "'text' reads features of width 768"):
        DHMD(features)
    with pytest.raises(ConfigError, match="bag_of_words"):
        dataclasses.replace(config.modalities[0], input_dim=None, bert_path="bert",
                            bag_of_words=True)
