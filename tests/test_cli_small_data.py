"""Small data through the command line: `dhmd baseline`, the baselines beside every `dhmd
train`, the small-data recipe and --paper-schedule, the optimiser header and its warning,
and text that does not start from nothing (--word-vectors, --bert)."""

import json

import pytest

from dhmd_graph.checkpoint import load_checkpoint
from dhmd_graph.cli import EXIT_BAD_INPUT, main
from dhmd_graph.data.synthetic_utterances import write_synthetic_utterances

TINY = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
        "model.encoder.memory_layers=1", "model.dictionary.atoms=4"]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    """The stand-in (one-step audio and vision, token-id text) at 40 / 20 / 20."""
    return write_synthetic_utterances(tmp_path_factory.mktemp("data") / "utt",
                                      sizes={"train": 40, "valid": 20, "test": 20})


def test_baseline_prints_the_table_and_writes_json(utterances, tmp_path, capsys):
    out = tmp_path / "baselines.json"
    assert main(["baseline", str(utterances), "--modalities", "text", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "baselines on test (fitted on train, selected on valid):" in printed
    assert "ridge: ridge on TF-IDF(text) (alpha=" in printed and f"baselines: {out}" in printed
    record = json.loads(out.read_text())
    assert record["monitor"] == "MAE" and record["options"]["modalities"] == ["text"]
    assert set(record["baselines"]) == {"mean", "ridge"}
    ridge = record["baselines"]["ridge"]
    assert ridge["test"]["MAE"] < record["baselines"]["mean"]["test"]["MAE"]
    assert f"{ridge['test']['MAE']:.4f}" in printed
    # an existing file and an unknown modality are refused in one line
    assert main(["baseline", str(utterances), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "the file exists" in capsys.readouterr().err
    assert main(["baseline", str(utterances), "--modalities", "face"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "modalities must be among" in err and "Traceback" not in err


def _check_recipe_run(run, out, model_set):
    assert ("small data (the train split has 40 samples, at most 5000): the small-data recipe "
            "(SmallDataRecipe) sets ") in out
    assert "train.accumulation_steps 10 -> 1" in out and "train.max_epochs" not in out
    assert ("model.width 50 -> 32" in out) != model_set
    assert "model.encoder.dropout 0.1 -> 0.2" in out
    assert "model.modalities.text.embedding_dim 300 -> 64" in out
    assert "model.modalities.text.bag_of_words False -> True" in out
    assert "model.modalities.text.input_dropout 0 -> 0.5" in out
    assert "modalities.text.kernel_size: 5 -> 1 (a bag of words is one step)" in out
    assert ("optimiser: lr 0.001, batch 2, accumulation 1 (averaged), 20 optimiser steps per "
            "epoch (40 training samples), weight decay 0.0001, device cpu") in out
    assert "warning: only" not in out
    assert "seconds per epoch: " in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["width"] == (8 if model_set else 32) and saved["train"]["lr"] == 1e-3
    assert saved["model"]["modalities"][0]["bag_of_words"] is True
    # the training split's inverse document frequencies are in the checkpoint
    (best,) = run.glob("seed_*/best.pt")
    idf = load_checkpoint(best)["model"]["projections.0.idf"]
    assert idf.shape == (saved["model"]["modalities"][0]["vocab_size"],) and idf.max() > 1
    assert saved["train"]["max_epochs"] == 1  # the user's
    results = json.loads((run / "results.json").read_text())
    record = results["baselines"]
    assert record["monitor"] == "MAE" and set(record["results"]) == {"mean", "ridge"}
    verdict = record["verdict"]
    assert verdict.startswith(("DHMD beats the best baseline (", "DHMD does NOT beat the best "
                               "baseline ("))
    assert verdict in out and "baselines on test (fitted on train, selected on valid)" in out
    best = "ridge" if "(ridge," in verdict else "mean"
    best_mae = record["results"][best]["test"]["MAE"]
    assert f"MAE {results['mean']['MAE']:.4f} vs {best_mae:.4f}" in verdict


def test_small_folder_trains_with_the_recipe_header_and_baselines(utterances, tmp_path,
                                                                  capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(utterances), "--preset", "mosi", "--out", str(run),
                 "--seeds", "3", "--set", *TINY, "train.max_epochs=1"]) == 0
    _check_recipe_run(run, capsys.readouterr().out, model_set=True)
    # resume keeps the recipe's saved values and says nothing of it
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert "small data" not in capsys.readouterr().out


@pytest.mark.slow
def test_one_step_folder_trains_without_model_settings(utterances, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(utterances), "--preset", "mosi", "--out", str(run),
                 "--seeds", "3", "--set", "train.max_epochs=1"]) == 0
    _check_recipe_run(run, capsys.readouterr().out, model_set=False)


def test_paper_schedule_keeps_the_preset_and_warns_of_few_steps(utterances, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(utterances), "--preset", "mosi", "--out", str(run),
                 "--seeds", "3", "--paper-schedule", "--no-baselines", "--set", *TINY,
                 "train.max_epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "small data" not in out and "baselines on test" not in out
    assert ("optimiser: lr 0.0001, batch 16, accumulation 10 (averaged), 1 optimiser step per "
            "epoch (40 training samples)") in out
    assert ("warning: only 1 optimiser step per epoch (fewer than 20): the model learns little "
            "per epoch and selection sees few updates. Fix: --set train.batch_size=2 "
            "train.accumulation_steps=1") in out
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 1e-4
    assert "baselines" not in json.loads((run / "results.json").read_text())


def test_word_vectors_start_the_embedding_and_say_their_coverage(utterances, tmp_path, capsys):
    vocabulary = json.loads((utterances / "vocabulary.json").read_text())
    words = vocabulary[2:]
    covered = words[: len(words) // 4]
    vectors = tmp_path / "tiny.vec"
    vectors.write_text(f"{len(covered)} 6\n" + "".join(
        f"{word} {' '.join(str(0.1 * (i % 7) - 0.3) for _ in range(6))}\n"
        for i, word in enumerate(covered)))
    run = tmp_path / "run"
    assert main(["train", "--data", str(utterances), "--preset", "mosi", "--out", str(run),
                 "--seeds", "3", "--word-vectors", str(vectors), "--freeze-text", "--set",
                 *TINY, "train.max_epochs=1", "train.batch_size=20"]) == 0
    out = capsys.readouterr().out
    share = len(covered) / len(words)
    assert (f"text: word vectors from '{vectors}' cover {share:.1%} of the vocabulary's "
            f"{len(words)} words ({len(covered)} found; the others start at zero)") in out
    text = json.loads((run / "config.json").read_text())["model"]["modalities"][0]
    assert text["word_vectors"] == str(vectors) and text["embedding_dim"] == 6
    assert text["word_vectors_finetune"] is False
    import torch

    state = torch.load(run / "seed_3" / "best.pt", weights_only=True)["model"]
    table = state["projections.0.embedding.weight"]  # frozen: the file's vectors
    assert torch.allclose(table[2], torch.full((6,), -0.3))
    assert torch.allclose(table[3], torch.full((6,), -0.2))
    assert torch.count_nonzero(table[2 + len(covered):len(vocabulary)]) == 0


def test_text_encoder_flags_are_checked_before_anything_is_written(utterances, tmp_path,
                                                                   capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(utterances), "--out", str(run),
                 "--freeze-text"]) == EXIT_BAD_INPUT
    assert "--freeze-text freezes the BERT model" in capsys.readouterr().err
    assert main(["train", "--data", str(utterances), "--out", str(run), "--word-vectors",
                 str(tmp_path / "missing.vec")]) == EXIT_BAD_INPUT
    assert "no word-vector file" in capsys.readouterr().err
    assert not run.exists()


def test_bert_tokens_train_and_evaluate_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    from tiny_bert import save_tiny_bert, write_bert_pickle

    bert = save_tiny_bert(tmp_path / "tiny-bert", vocab_size=60)
    data = write_bert_pickle(tmp_path / "bert.pkl", vocab_size=60)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--seeds", "3", "--bert",
                 str(bert), "--set", *TINY, "train.max_epochs=1", "train.batch_size=4"]) == 0
    out = capsys.readouterr().out
    assert f"text BERT tokens (bert_path={bert})" in out
    text = json.loads((run / "config.json").read_text())["model"]["modalities"][0]
    assert text["bert_path"] == str(bert) and text["input_dim"] is None
    assert main(["eval", str(run)]) == 0  # reads text_bert again
    assert "MAE" in capsys.readouterr().out
