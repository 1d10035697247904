import os
import pickle

import numpy as np
import pytest

from dhmd_graph.cli import EXIT_BAD_INPUT, main


def write_mmsa(path, labels=(-2.6, -0.2, 0.4, 1.0, 1.2, 2.9)):
    rng = np.random.default_rng(0)
    n = len(labels)
    split = {
        "id": np.array([f"v{i}$_$0" for i in range(n)], dtype=object),
        "text": rng.normal(size=(n, 4, 6)).astype(np.float32),
        "audio": rng.normal(size=(n, 9, 2)).astype(np.float32),
        "audio_lengths": np.arange(1, n + 1),
        "vision": rng.normal(size=(n, 3, 5)).astype(np.float32),
        "regression_labels": np.array(labels),
    }
    path.write_bytes(pickle.dumps({"train": split, "valid": split, "test": split}))
    return path


def test_describe_a_pickle(tmp_path, capsys):
    assert main(["describe", str(write_mmsa(tmp_path / "data.pkl"))]) == 0
    out = capsys.readouterr().out
    assert "train: 6 samples" in out and "test: 6 samples" in out
    assert "text     shape (6, 4, 6) float32, length 4..4" in out
    assert "audio    shape (6, 9, 2) float32, length 1..6 (mean 3.5)" in out
    assert "labels   mean 0.450, std 1.663, range [-2.60, 2.90]" in out  # population std
    # Rounded grid: -3:1, 0:1, 1:2 (0.4 -> 0, 1.0 and 1.2 -> 1), 3:1; the fullest bar is longest.
    assert "   -3.0 | #################### 1" in out
    assert "   +0.0 | ######################################## 2" in out
    assert "   +1.0 | ######################################## 2" in out
    assert "-0.0" not in out


def test_describe_uses_the_sims_grid_for_labels_in_unit_range(tmp_path, capsys):
    main(["describe", str(write_mmsa(tmp_path / "data.pkl", labels=(-1.0, -0.25, 0.0, 0.6)))])
    out = capsys.readouterr().out
    assert "   -0.2 | " in out and "   +0.6 | " in out and "   -1.0 | " in out


def test_convert_then_describe_the_cache(tmp_path, capsys):
    source = write_mmsa(tmp_path / "data.pkl")
    cache = tmp_path / "cache"
    assert main(["convert", str(source), str(cache)]) == 0
    assert f"at {cache}" in capsys.readouterr().out
    assert (cache / "manifest.json").is_file()
    assert main(["describe", str(cache)]) == 0
    assert "audio    shape (6, 9, 2) float32, length 1..6" in capsys.readouterr().out
    assert main(["convert", str(source), str(cache)]) == 0  # same source: kept


def test_convert_refuses_another_cache_without_overwrite(tmp_path, capsys):
    cache = tmp_path / "cache"
    main(["convert", str(write_mmsa(tmp_path / "a.pkl")), str(cache)])
    other = write_mmsa(tmp_path / "b.pkl", labels=(0.0, 1.0))
    assert main(["convert", str(other), str(cache)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("dhmd convert: error: another cache already exists")
    assert "--overwrite" in err and "Traceback" not in err
    assert main(["convert", str(other), str(cache), "--overwrite"]) == 0
    main(["describe", str(cache)])
    assert "train: 2 samples" in capsys.readouterr().out


class _Payload:
    def __reduce__(self):
        return os.system, ("echo pwned",)


@pytest.mark.parametrize("content, message", [
    (None, "unrecognised dataset path"),
    (b"garbage", "cannot read the file as a pickle"),
    (pickle.dumps({"train": _Payload()}), "forbidden global"),
])
def test_bad_data_exits_2_without_traceback(tmp_path, capsys, content, message):
    path = tmp_path / "data.pkl"
    if content is not None:
        path.write_bytes(content)
    assert main(["describe", str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.startswith("dhmd describe: error: ") and message in captured.err
    assert "Traceback" not in captured.err and "pwned" not in captured.out


@pytest.mark.parametrize("command", ["train", "describe"])
def test_help_lists_every_reader(command, capsys):
    from dhmd_graph.cli import DATA_FORMATS
    from dhmd_graph.data.loading import FORMATS

    assert sorted(name for name, _ in DATA_FORMATS) == sorted(FORMATS)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, description in DATA_FORMATS:
        assert f"{name} {description}" in text
    assert "no labels to predict on" in text
