"""``dhmd compare``: per-seed tables, mean ± std and the paired test, on constructed run
folders (exact numbers) and on two tiny runs trained through ``dhmd train``."""

import json

import numpy as np
import pytest
from scipy import stats

from dhmd_graph.cli import main
from dhmd_graph.errors import RunFolderError, UserError
from dhmd_graph.inspect.compare import compare_runs, format_comparison, paired_test, unpaired_test


def make_run(path, metrics: dict, *, data="data.pkl", unfinished=(), split="test"):
    """A run folder with ``config.json`` and one ``metrics.json`` per seed of ``metrics``
    (``{seed: {name: value}}``), plus seed folders without a record for ``unfinished``."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"preset": "mosei", "aligned": True,
                                                  "data": data, "model": {"task": "regression"},
                                                  "train": {}}))
    for seed, values in metrics.items():
        folder = path / f"seed_{seed}"
        folder.mkdir()
        record = {"seed": seed, "best_epoch": 3, "valid": values, "test": values}
        (folder / "metrics.json").write_text(json.dumps(record))
    for seed in unfinished:
        (path / f"seed_{seed}").mkdir()
    return path


def test_paired_test_matches_scipy_and_the_exact_sign_flip_count():
    a, b = [0.80, 0.82, 0.85, 0.79], [0.78, 0.80, 0.86, 0.75]
    test = paired_test(a, b)
    reference = stats.ttest_rel(b, a)
    assert test.n == 4
    assert test.t == pytest.approx(reference.statistic)
    assert test.p_t == pytest.approx(reference.pvalue)
    d = np.subtract(b, a)
    assert test.mean == pytest.approx(d.mean()) and test.std == pytest.approx(d.std(ddof=1))
    # differences -0.02, -0.02, +0.01, -0.04 (mean -0.0175): of the 16 sign patterns, those
    # with |mean| >= 0.0175 are the all-same pattern and the one flipping only +0.01, twice
    assert test.p_sign_flip == pytest.approx(4 / 16)
    assert test.min_p_sign_flip == pytest.approx(2 / 16)


def test_paired_test_three_pairs_of_one_sign_give_the_smallest_sign_flip_p():
    test = paired_test([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert test.p_sign_flip == pytest.approx(0.25) == test.min_p_sign_flip
    assert test.p_t == pytest.approx(stats.ttest_rel([1.0, 2.0, 3.0], [0, 0, 0]).pvalue)


def test_paired_test_undefined_cases_are_nan_not_certain():
    one = paired_test([1.0], [2.0])
    assert one.n == 1 and one.mean == 1.0
    assert np.isnan(one.p_t) and np.isnan(one.p_sign_flip) and np.isnan(one.std)
    constant = paired_test([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])  # the same +0.5 in every pair
    assert np.isnan(constant.t) and np.isnan(constant.p_t)
    assert constant.p_sign_flip == pytest.approx(0.25)
    with pytest.raises(UserError, match="same length"):
        paired_test([1.0, 2.0], [1.0])


def test_unpaired_test_is_welchs():
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.0, 9.0]
    reference = stats.ttest_ind(b, a, equal_var=False)
    test = unpaired_test(a, b)
    assert test.p_t == pytest.approx(reference.pvalue) and test.mean == pytest.approx(5.75 - 7 / 3)
    assert np.isnan(unpaired_test([1.0], b).p_t)


def test_compare_constructed_runs_pairs_by_seed(tmp_path):
    a = make_run(tmp_path / "a", {1: {"MAE": 0.80, "Corr": 0.50},
                                  2: {"MAE": 0.82, "Corr": 0.55},
                                  3: {"MAE": 0.85, "Corr": 0.45}})
    b = make_run(tmp_path / "b", {3: {"MAE": 0.84, "Corr": 0.50},  # written in another order
                                  1: {"MAE": 0.76, "Corr": 0.60},
                                  2: {"MAE": 0.79, "Corr": 0.58}})
    comparison = compare_runs(a, b)
    assert comparison.shared == (1, 2, 3)
    mae = comparison.metric("MAE")
    assert mae.a == {1: 0.80, 2: 0.82, 3: 0.85} and mae.b == {1: 0.76, 2: 0.79, 3: 0.84}
    assert mae.difference.mean == pytest.approx(np.mean([-0.04, -0.03, -0.01]))
    assert mae.difference.p_t == pytest.approx(
        stats.ttest_rel([0.76, 0.79, 0.84], [0.80, 0.82, 0.85]).pvalue)
    assert mae.std_a == pytest.approx(np.std([0.80, 0.82, 0.85]))  # population, as results.json
    assert mae.direction == "min" and mae.better == "B"
    assert comparison.metric("Corr").better == "B"
    assert any("cannot go below p = 0.25" in note for note in comparison.notes)
    text = format_comparison(comparison)
    assert "0.8233 ± 0.0205" in text  # A's MAE: mean ± population std of 0.80, 0.82, 0.85
    assert "-0.0267 ± 0.0153" in text  # B − A, mean ± sample std
    assert json.loads(json.dumps(comparison.to_dict()))["shared_seeds"] == [1, 2, 3]


def test_compare_says_when_seeds_do_not_match(tmp_path):
    a = make_run(tmp_path / "a", {1: {"MAE": 0.8}, 2: {"MAE": 0.9}, 3: {"MAE": 0.7}},
                 unfinished=[4])
    b = make_run(tmp_path / "b", {2: {"MAE": 0.7}, 3: {"MAE": 0.6}, 5: {"MAE": 0.5}},
                 data="other.pkl")
    comparison = compare_runs(a, b)
    assert comparison.shared == (2, 3)
    assert comparison.metric("MAE").difference.n == 2
    notes = " ".join(comparison.notes)
    assert "only in A 1, only in B 5" in notes and "2 shared seed(s) 2, 3" in notes
    assert "unfinished seeds 4" in notes
    assert "differ in their dataset" in notes


def test_compare_without_shared_seeds_uses_welch_and_says_so(tmp_path, capsys):
    a = make_run(tmp_path / "a", {1: {"MAE": 0.8}, 2: {"MAE": 0.9}})
    b = make_run(tmp_path / "b", {7: {"MAE": 0.6}, 8: {"MAE": 0.65}})
    comparison = compare_runs(a, b)
    row = comparison.metric("MAE")
    assert row.difference is None and row.unpaired.mean == pytest.approx(-0.225)
    assert any("share no seed" in note for note in comparison.notes)
    assert main(["compare", str(a), str(b)]) == 0
    assert "(Welch)" in capsys.readouterr().out


def test_compare_one_shared_seed_says_too_few(tmp_path):
    a = make_run(tmp_path / "a", {1: {"MAE": 0.8}})
    b = make_run(tmp_path / "b", {1: {"MAE": 0.7}})
    comparison = compare_runs(a, b)
    assert any("too few for any test" in note for note in comparison.notes)
    assert "-  " in format_comparison(comparison)  # no p-value


@pytest.mark.parametrize(("argv", "words"), [
    (["--metrics", "F1"], "not test metrics of every seed"),
    (["--split", "valid", "--metrics", "MAE,Accuracy"], "Accuracy"),
])
def test_cli_compare_bad_metrics_exit_2(tmp_path, capsys, argv, words):
    a = make_run(tmp_path / "a", {1: {"MAE": 0.8}})
    b = make_run(tmp_path / "b", {1: {"MAE": 0.7}})
    assert main(["compare", str(a), str(b), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dhmd compare: ") and err.count("\n") == 1 and words in err


def test_cli_compare_refuses_a_folder_without_finished_seeds(tmp_path, capsys):
    a = make_run(tmp_path / "a", {1: {"MAE": 0.8}})
    b = make_run(tmp_path / "b", {}, unfinished=[1])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "no finished seed" in err and "--resume" in err and err.count("\n") == 1
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "no run at" in capsys.readouterr().err
    with pytest.raises(RunFolderError):
        compare_runs(a, tmp_path / "missing")


def test_cli_compare_two_trained_runs(cli_runs, capsys):
    a, b = cli_runs
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--metrics", "MAE,Corr"]) == 0
    printed = capsys.readouterr().out
    results_a = json.loads((a / "results.json").read_text())
    results_b = json.loads((b / "results.json").read_text())
    for results in (results_a, results_b):
        mean, std = results["mean"]["MAE"], results["std"]["MAE"]
        assert f"{mean:.4f} ± {std:.4f}" in printed
    difference = np.mean([rb["test"]["MAE"] - ra["test"]["MAE"] for ra, rb in
                          zip(results_a["seeds"], results_b["seeds"], strict=True)])
    comparison = compare_runs(a, b)
    assert comparison.shared == (1, 2)
    assert comparison.metric("MAE").difference.mean == pytest.approx(difference)
    assert "A: " in printed and "cannot go below p = 0.5" in printed
