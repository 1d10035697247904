import re

import numpy as np
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


# -- what the report warns about and says in words (issue 22) ---------------------------------

def _outputs(learned, prior=None):
    """SplitOutputs of 4 samples whose two spaces have the (3, 3) learned weights E
    ``learned`` (and prior ``prior``) in every sample."""
    from dhmd_graph.inspect.spaces import SpaceOutputs, SplitOutputs

    learned = np.stack([learned] * 4)
    prior = None if prior is None else np.stack([prior] * 4)
    space = SpaceOutputs(np.zeros((4, 3)), np.zeros((4, 3, 2)),
                         learned if prior is None else learned + prior, prior, None, "graph")
    return SplitOutputs(("text", "audio", "vision"), np.zeros(4), np.zeros(4),
                        {"homogeneous": space, "heterogeneous": space})


def _graph(values):
    matrix = np.full((3, 3), np.nan)
    for (t, s), value in zip([(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)], values,
                             strict=True):
        matrix[t, s] = value
    return matrix


TEXT_PRIOR = _graph([0.45, 0.45, 0.025, 0.025, 0.025, 0.025])


def _agreements(outputs):
    from dhmd_graph.inspect.edges import prior_agreement

    return {space: prior_agreement(values) for space, values in outputs.spaces.items()}


def test_a_sentence_when_e_only_reproduces_the_prior():
    outputs = _outputs(TEXT_PRIOR + 0.001 * np.nan_to_num(TEXT_PRIOR) - 0.0005, TEXT_PRIOR)
    text = "\n".join(report_module._prior_section(outputs, _agreements(outputs)))
    assert text.count("E only reproduces the prior") == 2
    assert "--set model.homogeneous_graph.prior=null" in text and "dhmd compare" in text
    assert "| homogeneous | text | 0.902 [0.902–0.902] | 0.900 [0.900–0.900] |" in text
    assert "static, not dynamic" in text  # the same E in every sample

    learned = _graph([0.05, 0.05, 0.4, 0.4, 0.05, 0.05])  # audio teaches: not the prior
    outputs = _outputs(learned, TEXT_PRIOR)
    text = "\n".join(report_module._prior_section(outputs, _agreements(outputs)))
    assert "only reproduces" not in text
    assert "most weight on audio (0.800 of E), another teacher than the prior (text, 0.900)" \
        in text


def test_warnings_for_an_early_checkpoint_and_a_near_uniform_graph():
    uniform = _outputs(_graph([1 / 6] * 6))
    peaked = _outputs(_graph([0.05, 0.05, 0.4, 0.4, 0.05, 0.05]))
    text = "\n".join(report_module._warnings_section(_agreements(uniform), 1, 20, "MAE"))
    assert "**An early checkpoint.**" in text and "epoch 1 of the 20 trained" in text
    assert text.count("is still near uniform") == 2
    assert report_module._warnings_section(_agreements(peaked), 30, 40, "MAE") == []
    early = report_module._warnings_section(_agreements(peaked), 5, 40, "MAE")  # first fifth
    assert len(early) == 4 and "epoch 5 of the 40" in early[2]
    assert report_module._warnings_section(_agreements(peaked), None, None, "MAE") == []


def test_single_modalities_ranked_by_corr_and_mae_with_the_caveat():
    table = {"text+audio": {"MAE": 0.7, "Corr": 0.6},
             "text": {"MAE": 0.80, "Corr": -0.07},  # low MAE, no signal
             "audio": {"MAE": 0.85, "Corr": 0.40}}
    text = "\n".join(report_module._singles_section(table, ["text", "audio"], "MAE", False))
    assert "- by Corr: audio (0.4000), text (-0.0700)" in text
    assert "- by MAE: text (0.8000), audio (0.8500)" in text
    assert "disagree on the best single modality (audio, text)" in text
    assert "never trained with modalities missing" in text
    agreed = {**table, "audio": {"MAE": 0.75, "Corr": 0.40}}
    text = "\n".join(report_module._singles_section(agreed, ["text", "audio"], "MAE", True))
    assert "disagree" not in text and "never trained" not in text


def test_write_report_titles_every_figure_and_warns_on_an_early_epoch(trained_model, loader,
                                                                      tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    titles = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (
        titles.append(self.get_suptitle()), save(self, *a, **k))[1])
    label = "run: tiny · model: mosei preset · seed 3 · epoch 1 · valid split"
    report = write_report(trained_model, loader, tmp_path, method="pca", label=label, epoch=1,
                          log=[{"epoch": 1, "train/loss": 1.0, "valid/MAE": 1.0}])
    assert len(titles) == len(_linked_files(report)) >= 4 and set(titles) == {label}
    text = report.read_text()
    assert "**An early checkpoint.**" in text
    assert "still near uniform" in text  # four Adam steps leave E at 1/6
    assert "training_curves.png" in _linked_files(report)
    assert "## Learned weights E against the prior alone" in text
    assert "by Corr:" in text and "never trained with modalities missing" in text


def test_cli_inspect_every_seed_of_a_run_with_a_summary(cli_runs, capsys):
    run = cli_runs[0]
    capsys.readouterr()
    assert main(["inspect", str(run), "--pca"]) == 0
    summary = run / "inspect-valid" / "report.md"
    assert str(summary) in capsys.readouterr().out
    text = summary.read_text()
    assert "inspection of 2 seeds" in text
    for seed in (1, 2):
        seed_report = run / f"seed_{seed}" / "inspect-valid" / "report.md"
        assert f"[{seed}](../seed_{seed}/inspect-valid/report.md)" in text
        assert "**An early checkpoint.**" in seed_report.read_text()  # one epoch
    assert "Seeds 1, 2 selected an early checkpoint" in text
    assert "top teacher" in text
    out = run.parent / "only_seed_2"
    assert main(["inspect", str(run), "--seed", "2", "--pca", "--out", str(out)]) == 0
    assert "seed 2" in (out / "report.md").read_text() or "seed_2" in (out / "report.md").read_text()
    assert not (out / "seed_1").exists()
