"""`dhmd train` takes the model's inputs from the data and writes nothing before the model
is known to fit it; `dhmd describe` says what the model will be built with; `dhmd train`
without --data says what it uses."""

import json
import pickle

import numpy as np
import pytest

from dhmd_graph.cli import EXIT_BAD_INPUT, main

TINY = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
        "model.encoder.memory_layers=1", "model.dictionary.atoms=4", "train.max_epochs=1",
        "train.batch_size=4", "train.accumulation_steps=1"]
SENTENCES = {"train": [["i", "love", "it"], ["so", "bad"], ["ok", "i", "guess", "so"],
                       ["love", "love"]],
             "dev": [["bad", "film"], ["ok"]], "test": [["i", "love", "films"], ["it"]]}
VOCABULARY = 9  # <pad>, <unk> and the 7 words of the training split


@pytest.fixture
def misa(tmp_path):
    """A MISA folder: token-id text, acoustic (L, 74) and visual (L, 47) per word."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "misa"
    folder.mkdir()
    for split, rows in SENTENCES.items():
        samples = [((np.arange(len(words)), rng.normal(size=(len(words), 47)),
                     rng.normal(size=(len(words), 74)), words), np.array([[i - 1.0]]),
                    f"{split}[{i}]") for i, words in enumerate(rows)]
        (folder / f"{split}.pkl").write_bytes(pickle.dumps(samples))
    return folder


def test_describe_says_what_the_model_is_built_with(misa, capsys):
    assert main(["describe", str(misa)]) == 0
    out = capsys.readouterr().out
    assert f"  text     token ids: input_dim=None, vocab_size={VOCABULARY}" in out
    assert "  audio    input_dim=74" in out and "  vision   input_dim=47" in out


def test_train_on_token_ids_without_sizing_anything(misa, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(misa), "--out", str(run), "--seeds", "3",
                 "--set", *TINY]) == 0
    out = capsys.readouterr().out
    assert (f"model inputs (from the data): text token ids (vocab_size={VOCABULARY}), "
            "audio input_dim=74, vision input_dim=47") in out
    text, audio, vision = json.loads((run / "config.json").read_text())["model"]["modalities"]
    assert (text["input_dim"], text["vocab_size"]) == (None, VOCABULARY)
    assert (audio["input_dim"], vision["input_dim"]) == (74, 47)
    assert main(["eval", str(run), "--split", "valid"]) == 0  # rebuilt from the checkpoint
    assert main(["train", "--out", str(run), "--resume"]) == 0


@pytest.mark.parametrize("override, message", [
    ("model.modalities.text.vocab_size=5", f"vocab_size: expected at least {VOCABULARY}"),
    ("model.modalities.vision.input_dim=35", "vision.input_dim: expected 47"),
])
def test_a_model_that_does_not_fit_writes_nothing(misa, tmp_path, capsys, override, message):
    run = tmp_path / "run"
    assert main(["train", "--data", str(misa), "--out", str(run), "--seeds", "3",
                 "--set", *TINY, override]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("dhmd train: error: ") and message in err and "Traceback" not in err
    assert not run.exists()


def test_a_model_that_fails_on_a_batch_writes_nothing(misa, tmp_path, capsys, monkeypatch):
    from dhmd_graph.model import DHMD

    def broken(self, batch):
        raise IndexError("index out of range in self")

    monkeypatch.setattr(DHMD, "training_step", broken)
    run = tmp_path / "run"
    assert main(["train", "--data", str(misa), "--out", str(run), "--set", *TINY]) == (
        EXIT_BAD_INPUT)
    err = capsys.readouterr().err
    assert "the model cannot run on the data" in err and str(misa) in err
    assert "IndexError: index out of range in self" in err and "Traceback" not in err
    assert not run.exists()


def test_train_without_data_says_so_and_uses_the_example_size(tmp_path, capsys, monkeypatch):
    from dhmd_graph.data import synthetic

    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "DEMO_SIZES", {"train": 12, "valid": 4, "test": 4})
    assert main(["train", "--out", str(tmp_path / "run"), "--seeds", "3", "--set",
                 *TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dhmd train: no --data given: using synthetic mosei-profile "
                               "data of 12/4/4 train/valid/test samples")
    assert lines[1].startswith("data: ") and lines[1].endswith(
        "mosei_aligned_12-4-4_0.pkl (train 12, valid 4, test 4)")


def test_train_on_a_device_the_machine_lacks_writes_nothing(misa, tmp_path, capsys):
    import torch

    missing = f"cuda:{torch.cuda.device_count() + 1}"
    run = tmp_path / "run"
    assert main(["train", "--data", str(misa), "--out", str(run), "--set", *TINY,
                 f"train.device={missing}"]) == EXIT_BAD_INPUT
    assert "a GPU of this machine" in capsys.readouterr().err
    assert not run.exists()


def test_train_the_dmd_reference_mode(tmp_path, capsys, monkeypatch):
    from dhmd_graph.data import synthetic
    from dhmd_graph.presets import preset

    monkeypatch.setenv("DHMD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "DEMO_SIZES", {"train": 12, "valid": 4, "test": 4})
    monkeypatch.chdir(tmp_path)
    small = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
             "model.encoder.memory_layers=1", "train.max_epochs=1", "train.batch_size=4"]
    assert main(["train", "--preset", "mosi", "--reference", "dmd", "--seeds", "3",
                 "--set", *small]) == 0
    config = json.loads((tmp_path / "runs" / "mosi-dmd-aligned" / "config.json").read_text())
    reference = preset("mosi", aligned=True, reference="dmd")
    assert config["model"]["encoder"]["positional_encoding"] == "fairseq"
    assert config["model"]["encoder"]["attention_dropout"] == reference.encoder.attention_dropout
    assert config["model"]["modalities"][0]["input_dropout"] == 0.5  # the reference's text
    assert config["train"]["accumulation"] == "summed" and config["train"]["weight_decay"] == 0.0
    assert config["train"]["batch_size"] == 4  # --set on top of the reference's schedule


@pytest.mark.parametrize("options, message", [
    (["--preset", "sims", "--unaligned"], "settings for MOSI and MOSEI only"),
    (["--config", "{config}"], "has a 'model' section: drop one of the two"),
])
def test_the_dmd_reference_mode_refuses_what_it_cannot_build(options, message, tmp_path,
                                                             capsys):
    from dhmd_graph.config import config_to_dict
    from dhmd_graph.presets import preset

    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": config_to_dict(preset("mosi"))}))
    options = [option.format(config=config) for option in options]
    assert main(["train", "--reference", "dmd", "--out", str(tmp_path / "run"), *options]) \
        == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
