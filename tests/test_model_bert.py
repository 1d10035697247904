"""DHMD with a BERT text encoder: MMSA ``text_bert`` tokens in, BERT fine-tuned (or frozen)
with the model, and a checkpoint round trip that reads only BERT's ``config.json``."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch
from tiny_bert import save_tiny_bert, write_bert_pickle

from dhmd_graph.config import DHMDConfig, EncoderConfig, GraphConfig, ModalityConfig, config_to_dict
from dhmd_graph.data import DatasetError, collate, load_dataset, load_mmsa
from dhmd_graph.data.loading import modality_inputs
from dhmd_graph.experiment import fit_inputs
from dhmd_graph.model import DHMD
from dhmd_graph.train import save_checkpoint

transformers = pytest.importorskip("transformers")

STEPS = 6


@pytest.fixture
def bert_folder(tmp_path):
    return save_tiny_bert(tmp_path / "tiny-bert", vocab_size=120)


@pytest.fixture
def mmsa(tmp_path):
    """An aligned MMSA pickle whose ``text_bert`` holds float ids, mask and segments."""
    return write_bert_pickle(tmp_path / "bert.pkl", vocab_size=120, steps=STEPS)


def tiny_config(bert_path=None, finetune=True) -> DHMDConfig:
    text = (ModalityConfig("text", bert_path=str(bert_path), bert_finetune=finetune)
            if bert_path else ModalityConfig("text", input_dim=5))
    return DHMDConfig(
        modalities=[text, ModalityConfig("audio", input_dim=3),
                    ModalityConfig("vision", input_dim=4)],
        width=8, num_heads=2, encoder=EncoderConfig(num_layers=1, memory_layers=1),
        homogeneous_graph=GraphConfig(hidden_channels=4),
        heterogeneous_graph=GraphConfig(hidden_channels=4))


def test_load_mmsa_reads_text_bert_as_tokens(mmsa):
    splits = load_mmsa(mmsa, text="bert")
    train = splits["train"]
    tokens = train.features["text"]
    assert tokens.shape == (8, STEPS, 3) and tokens.dtype == np.int64
    with open(mmsa, "rb") as file:
        raw = pickle.load(file)["train"]["text_bert"]
    np.testing.assert_array_equal(tokens, raw.transpose(0, 2, 1))
    np.testing.assert_array_equal(train.lengths["text"], raw[:, 1].sum(1))
    assert load_dataset(mmsa, text="bert")["test"].features["text"].shape == (4, STEPS, 3)
    # (N, T, 3) integer tokens are BERT tokens, not 3-wide features
    inputs = modality_inputs(splits)
    assert inputs["text"].bert_tokens and inputs["text"].input_dim is None
    assert not inputs["audio"].bert_tokens and inputs["audio"].input_dim == 3
    with pytest.raises(ValueError, match="text must be one of"):
        load_mmsa(mmsa, text="tokens")


def test_bad_text_bert_names_the_sample(mmsa, tmp_path):
    with open(mmsa, "rb") as file:
        data = pickle.load(file)
    data["valid"]["text_bert"][2, 1, 0] = 0.5  # a mask value that is not 0 or 1
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(data))
    with pytest.raises(DatasetError, match=r"bad BERT tokens.*split 'valid'.*sample 2"):
        load_mmsa(bad, text="bert")


def test_fit_inputs_needs_bert_path_for_tokens(mmsa, bert_folder):
    inputs = modality_inputs(load_mmsa(mmsa, text="bert"))
    with pytest.raises(ValueError, match=r"modalities\.text\.bert_path: expected a local BERT"):
        fit_inputs(tiny_config(), inputs)
    fitted = fit_inputs(tiny_config(bert_folder), inputs)
    assert fitted.modalities[0].bert_path == str(bert_folder)
    assert fitted.modalities[0].input_dim is None
    with pytest.raises(ValueError, match=r"bert_path: expected null \(the data's 'text' holds "
                                         r"features of width 5\)"):
        fit_inputs(tiny_config(bert_folder), modality_inputs(load_mmsa(mmsa)))


@pytest.mark.parametrize("fields, message", [
    ({"bert_path": "bert", "input_dim": 768}, "input_dim: expected null with bert_path"),
    ({"bert_path": ""}, "bert_path: expected a local BERT folder or null"),
    ({"bert_path": 3}, "bert_path: expected"),
    ({"bert_path": "bert", "bert_finetune": "yes"}, "bert_finetune: expected"),
])
def test_modality_config_checks_the_bert_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        ModalityConfig("text", **fields)


@pytest.mark.parametrize("finetune", [True, False])
def test_one_training_step_reaches_bert_only_when_finetuned(mmsa, bert_folder, finetune):
    splits = load_mmsa(mmsa, text="bert")
    config = fit_inputs(tiny_config(bert_folder, finetune), modality_inputs(splits))
    torch.manual_seed(0)
    model = DHMD(config)
    bert = model.projections[0].text_encoder.bert
    before = {name: p.detach().clone() for name, p in bert.named_parameters()}
    others = [p for n, p in model.named_parameters() if ".text_encoder." not in n]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = collate([splits["train"][i] for i in range(8)])
    loss = model.training_step(batch)["loss"]
    loss.backward()
    optimizer.step()
    grads = [p.grad for p in bert.parameters()]
    if finetune:
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
        assert any(not torch.equal(p, before[n]) for n, p in bert.named_parameters())
    else:
        assert all(g is None for g in grads)
        assert all(torch.equal(p, before[n]) for n, p in bert.named_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in others)


def test_checkpoint_round_trip_reads_only_bert_config(mmsa, bert_folder, tmp_path):
    splits = load_mmsa(mmsa, text="bert")
    config = fit_inputs(tiny_config(bert_folder), modality_inputs(splits))
    torch.manual_seed(0)
    model = DHMD(config)
    with torch.no_grad():  # weights that differ from the folder's: the checkpoint's count
        model.projections[0].text_encoder.bert.embeddings.word_embeddings.weight.mul_(2)
    meta = {"preset": "mosei", "aligned": True, "data": str(mmsa),
            "model": config_to_dict(config)}
    path = save_checkpoint({"model": model.state_dict(), "meta": meta, "epoch": 1, "seed": 1},
                           tmp_path / "best.pt")
    for weights in bert_folder.glob("*.safetensors"):
        weights.unlink()  # only config.json is left: DHMD.from_checkpoint must not need the weights
    loaded, _ = DHMD.from_checkpoint(path)
    batch = collate([splits["test"][i] for i in range(4)])
    with torch.no_grad():
        expected = model.eval()(batch).prediction
        torch.testing.assert_close(loaded(batch).prediction, expected)
    assert loaded.projections[0].text_encoder.finetune
    # the config survives its JSON form with the BERT fields
    assert config_to_dict(loaded.config) == config_to_dict(config)
    with pytest.raises(ValueError, match="no BERT model at"):
        DHMD(config)  # training from the folder needs its weights
    with pytest.raises(DatasetError, match=r"\(B, T, 3\) BERT tokens"):
        loaded(collate([load_mmsa(mmsa)["test"][i] for i in range(2)]))


def test_replacing_the_text_encoder_keeps_the_other_modalities(bert_folder):
    config = tiny_config(bert_folder)
    plain = dataclasses.replace(config, modalities=[ModalityConfig("text", input_dim=5),
                                                    *config.modalities[1:]])
    with_bert = {n for n, _ in DHMD(config).named_parameters()}
    without = {n for n, _ in DHMD(plain).named_parameters()}
    assert without < with_bert
    assert all(".text_encoder.bert." in n or n == "projections.0.conv.weight"
               for n in with_bert - without)
