import re

import pytest
from torch.utils.data import DataLoader

from dhmd_graph.cli import main
from dhmd_graph.data import collate, load_dataset
from dhmd_graph.inspect import report as report_module
from dhmd_graph.inspect.missing import evaluate_subsets
from dhmd_graph.inspect.report import inspect_run, markdown_table, write_report
from dhmd_graph.model import DHMD
from dhmd_graph.train.run_folder import find_checkpoints, read_log

FIGURES = {"edges.png", "edge_evolution.png", "spaces.png", "atoms.png", "training_curves.png"}


def _linked_files(report):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())


def test_inspect_run_writes_every_figure_and_a_report_that_links_them(tiny_run, check_figure):
    report = inspect_run(tiny_run["run_dir"], method="pca")
    assert report == tiny_run["seed_dir"] / "inspect-valid" / "report.md"
    linked = _linked_files(report)
    assert set(linked) == FIGURES
    for name in linked:
        check_figure(report.parent / name)
    text = report.read_text()
    for heading in ("distillation graphs", "during training", "features", "Dictionary",
                    "Missing modalities"):
        assert heading in text
    assert text.count("| text + audio + vision |") == 1
    assert "| vision |" in text and "| audio + vision |" in text


def test_full_set_row_is_the_trainers_validation_of_the_selected_checkpoint(tiny_run):
    (checkpoint,) = find_checkpoints(tiny_run["run_dir"])
    assert checkpoint == tiny_run["seed_dir"] / "best.pt"
    model, meta = DHMD.from_checkpoint(checkpoint)
    valid = load_dataset(tiny_run["data"])["valid"]
    table = evaluate_subsets(model, DataLoader(valid, batch_size=7, collate_fn=collate))
    assert len(table) == 7
    record = next(r for r in read_log(tiny_run["seed_dir"] / "log.jsonl")
                  if r["epoch"] == meta["epoch"])
    trainer_valid = {k.removeprefix("valid/"): v for k, v in record.items()
                     if k.startswith("valid/")}
    assert table["text+audio+vision"] == pytest.approx(trainer_valid, nan_ok=True)


def test_cli_inspect(tiny_run, tmp_path, capsys):
    out = tmp_path / "inspection"
    assert main(["inspect", str(tiny_run["seed_dir"]), "--out", str(out), "--pca",
                 "--split", "test"]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    assert "test split" in (out / "report.md").read_text()
    assert {path.name for path in out.iterdir()} == FIGURES | {"report.md"}


def test_cli_eval_subsets(tiny_run, capsys):
    assert main(["eval", str(tiny_run["run_dir"]), "--split", "valid", "--subsets"]) == 0
    printed = capsys.readouterr().out
    _, subsets = printed.split("valid metrics by present modalities")
    rows = [line.split()[0] for line in subsets.strip().splitlines()[2:]]
    assert rows == ["text+audio+vision", "text+audio", "text+vision", "audio+vision", "text",
                    "audio", "vision"]


def test_cli_inspect_without_a_run_says_what_to_give(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "dhmd train" in capsys.readouterr().err


def test_markdown_table():
    assert markdown_table(["a", "b"], [["x", 0.5], [1, 2.0]]) == (
        "| a | b |\n|---|---|\n| x | 0.5000 |\n| 1 | 2.0000 |"
    )


@pytest.mark.parametrize(("homogeneous", "verdict"), [
    (0.2, "mix and the heterogeneous ones separate"),
    (0.8, "but are still mostly grouped by modality"),
    (0.95, "do **not** mix more"),
])
def test_report_states_what_the_separation_shows(trained_model, loader, tmp_path, monkeypatch,
                                                 homogeneous, verdict):
    scores = iter([homogeneous, 0.9])  # homogeneous first, then heterogeneous

    def separation(features, seed):
        value = next(scores)
        return {"silhouette": value, "knn_purity": value, "chance": 0.0, "separation": value}

    monkeypatch.setattr(report_module, "modality_separation", separation)
    report = write_report(trained_model, loader, tmp_path, method="pca")
    assert verdict in report.read_text()
    assert "edge_evolution.png" not in report.read_text()  # no log given
