import os
import shutil
import socket
import sys

import pytest
import torch
from tiny_bert import save_tiny_bert

from dhmd_graph.nn.encoders import TemporalProjection
from dhmd_graph.nn.text import BertTextEncoder

transformers = pytest.importorskip("transformers")


@pytest.fixture
def bert_folder(tmp_path):
    return save_tiny_bert(tmp_path / "tiny-bert", vocab_size=40, num_hidden_layers=2)


def tokens(lengths, steps=7, seed=0):
    """``(B, T, 3)`` MMSA-style tokens: ids with [CLS]=2 ... [SEP]=3, mask, segment 0."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.zeros(len(lengths), steps, 3, dtype=torch.long)
    for b, length in enumerate(lengths):
        out[b, :length, 0] = torch.randint(4, 40, (length,), generator=generator)
        out[b, 0, 0], out[b, length - 1, 0] = 2, 3
        out[b, :length, 1] = 1
    return out


def test_reads_the_folder_and_runs_bert(bert_folder):
    encoder = BertTextEncoder(bert_folder).eval()
    reference = transformers.BertModel.from_pretrained(bert_folder).eval()
    x = tokens([7, 4])
    out = encoder(x)
    assert out.shape == (2, 7, 16) and encoder.hidden_size == 16
    expected = reference(input_ids=x[..., 0], attention_mask=x[..., 1],
                         token_type_ids=x[..., 2]).last_hidden_state
    torch.testing.assert_close(out, expected)
    assert repr(encoder) == (f"BertTextEncoder('{bert_folder}', hidden_size=16, layers=2, "
                             "finetune=True)")


def test_padding_does_not_reach_the_valid_steps(bert_folder):
    encoder = BertTextEncoder(bert_folder).eval()
    x = tokens([5, 3])
    changed = x.clone()
    changed[1, 3:, 0] = 17  # other ids at the padded (mask 0) steps
    torch.testing.assert_close(encoder(changed)[1, :3], encoder(x)[1, :3])


def test_finetuned_with_the_model(bert_folder):
    torch.manual_seed(0)
    encoder = BertTextEncoder(bert_folder)
    projection = TemporalProjection(encoder.hidden_size, 8, kernel_size=3)
    lengths = torch.tensor([7, 5])
    x = tokens(lengths.tolist())
    projected, out_lengths = projection(encoder(x), lengths)
    assert projected.shape == (2, 5, 8) and out_lengths.tolist() == [5, 3]
    projected.square().mean().backward()
    unused = [name for name, p in encoder.named_parameters() if p.grad is None]
    assert unused == []  # the pooler is gone: every parameter is trained
    assert encoder.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_frozen_bert_gets_no_gradient(bert_folder):
    encoder = BertTextEncoder(bert_folder, finetune=False)
    projection = TemporalProjection(encoder.hidden_size, 8)
    out = encoder(tokens([6, 2]))
    assert not out.requires_grad
    projection(out, torch.tensor([6, 2]))[0].sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    assert projection.conv.weight.grad is not None


def test_checkpoint_round_trip(bert_folder, tmp_path):
    encoder = BertTextEncoder(bert_folder)
    with torch.no_grad():  # a "fine-tuned" state that differs from the folder's weights
        encoder.bert.encoder.layer[0].output.dense.weight.mul_(1.5)
    torch.save(encoder.state_dict(), tmp_path / "encoder.pt")
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(bert_folder / "config.json", config_only)
    restored = BertTextEncoder(config_only, pretrained=False)
    restored.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True))
    x = tokens([7, 3])
    torch.testing.assert_close(restored.eval()(x), encoder.eval()(x))
    assert not any("pooler" in key for key in encoder.state_dict())


def test_a_missing_folder_says_what_to_put_where(bert_folder, tmp_path):
    with pytest.raises(ValueError, match="BertTextEncoder.path") as info:
        BertTextEncoder(tmp_path / "absent")
    message = str(info.value)
    assert "no such folder" in message and "config.json" in message
    assert "bert-base-uncased" in message and "nothing is downloaded" in message
    (bert_folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"missing model weights \(model.safetensors or "
                       r"pytorch_model.bin\)") as info:
        BertTextEncoder(bert_folder)
    assert "only ['config.json']" in str(info.value)
    BertTextEncoder(bert_folder, pretrained=False)  # the architecture needs only config.json


def test_never_goes_online(bert_folder, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("BertTextEncoder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # restored after the test
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    BertTextEncoder(bert_folder)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_missing_transformers_names_the_extra(bert_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    with pytest.raises(ImportError, match=r"pip install 'dhmd_graph\[bert\]'"):
        BertTextEncoder(bert_folder)


# -- an untrusted folder: one DatasetError naming the file, never a traceback from below --

def _config(folder, **changes):
    import json

    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


def _refused(folder, file, *needles, pretrained=True):
    from dhmd_graph.errors import DatasetError

    with pytest.raises(DatasetError) as info:
        BertTextEncoder(folder, pretrained=pretrained)
    message = str(info.value)
    assert info.value.file == str(file) and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("changes, needles", [
    ({"hidden_size": -16}, ["field 'hidden_size'", "a positive integer"]),
    ({"hidden_size": "16"}, ["field 'hidden_size'", "a string '16'"]),
    ({"num_hidden_layers": 10**9}, ["field 'num_hidden_layers'", "at most 128"]),
    ({"num_attention_heads": 3}, ["field 'num_attention_heads'", "a divisor of hidden_size"]),
    ({"vocab_size": 1_000_000, "hidden_size": 8192, "num_attention_heads": 8},
     ["too large a model", "at most 1,000,000,000 parameters"]),
    ({"hidden_dropout_prob": 1.5}, ["field 'hidden_dropout_prob'"]),
    ({"hidden_act": "nope"}, ["field 'hidden_act'"]),
    ({"model_type": "gpt2"}, ["field 'model_type'"]),
    ({"pad_token_id": 40}, ["field 'pad_token_id'"]),
])
def test_a_bad_config_is_refused_before_a_model_is_built(bert_folder, changes, needles):
    path = _config(bert_folder, **changes)
    for pretrained in (True, False):
        _refused(bert_folder, path, *needles, pretrained=pretrained)


def test_a_deep_or_odd_config_file_is_refused(bert_folder):
    path = bert_folder / "config.json"
    path.write_text('{"a": ' * 5000 + "1" + "}" * 5000)
    _refused(bert_folder, path, "nested too deeply")
    path.write_text("[16]")
    _refused(bert_folder, path, "not a JSON object")
    path.unlink()
    os.mkfifo(path)  # no writer: a plain read would block forever
    _refused(bert_folder, path, "named pipe (FIFO)")


def _safetensors(folder, content):
    path = folder / "model.safetensors"
    path.write_bytes(content)
    return path


def test_damaged_safetensors_are_one_error_naming_the_file(bert_folder):
    good = (bert_folder / "model.safetensors").read_bytes()
    path = _safetensors(bert_folder, os.urandom(4096))
    _refused(bert_folder, path, "not a safetensors file", "Put the files of a BERT model")
    _safetensors(bert_folder, good[: len(good) // 2])
    _refused(bert_folder, path, "model.safetensors")
    _safetensors(bert_folder, (2**62).to_bytes(8, "little") + b"{}")  # a header bomb
    _refused(bert_folder, path, "not a safetensors file", "4,611,686,018,427,387,904")
    length = int.from_bytes(good[:8], "little")
    header = good[8 : 8 + length].replace(b'"data_offsets":[0,', b'"data_offsets":[0,9', 1)
    _safetensors(bert_folder, len(header).to_bytes(8, "little") + header + good[8 + length:])
    _refused(bert_folder, path, "model.safetensors")
    _safetensors(bert_folder, good)
    BertTextEncoder(bert_folder)  # the intact file reads


def test_weights_of_another_shape_name_the_tensor(bert_folder, tmp_path):
    other = save_tiny_bert(tmp_path / "other", vocab_size=41, num_hidden_layers=2)
    shutil.copy(other / "model.safetensors", bert_folder / "model.safetensors")
    _refused(bert_folder, bert_folder / "model.safetensors",
             "field 'embeddings.word_embeddings.weight'", "expected shape [40, 16]",
             "found shape [41, 16]")
    one_layer = save_tiny_bert(tmp_path / "one", vocab_size=40, num_hidden_layers=1)
    shutil.copy(one_layer / "model.safetensors", bert_folder / "model.safetensors")
    _refused(bert_folder, bert_folder / "model.safetensors", "encoder.layer.1.",
             "no such tensor")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran-code",))


def test_pytorch_bin_weights_never_run_code(bert_folder, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.chdir(tmp_path)
    state = {"bert." + key.replace("LayerNorm.weight", "LayerNorm.gamma"): value
             for key, value in load_file(bert_folder / "model.safetensors").items()}
    (bert_folder / "model.safetensors").unlink()
    torch.save(state, bert_folder / "pytorch_model.bin")  # old names, a "bert." prefix
    loaded = BertTextEncoder(bert_folder)
    torch.testing.assert_close(loaded.bert.embeddings.LayerNorm.weight,
                               state["bert.embeddings.LayerNorm.gamma"])
    torch.save({"weights": _RunsCode()}, bert_folder / "pytorch_model.bin")
    _refused(bert_folder, bert_folder / "pytorch_model.bin", "not plain tensors")
    assert not (tmp_path / "ran-code").exists()
    (bert_folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04 truncated")
    _refused(bert_folder, bert_folder / "pytorch_model.bin", "cannot read BERT weights")
