import csv

import numpy as np
import pytest

from dhmd_graph.cli import main
from dhmd_graph.data import (
    DatasetError,
    collate,
    convert_to_cache,
    load_arrays,
    load_dataset,
    load_mmsa,
    write_arrays,
)
from dhmd_graph.data.arrays import dataset_from_arrays


def write_folder(folder, *, n=9, splits=None, columns=None, lengths=True):
    """A plain-arrays folder of ``n`` samples: text (n, 6, 4), audio (n, 5, 3), gaze (n, 2)."""
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    np.save(folder / "text.npy", rng.normal(size=(n, 6, 4)).astype(np.float32))
    np.save(folder / "audio.npy", rng.normal(size=(n, 5, 3)))  # float64, cast on reading
    np.save(folder / "gaze.npy", rng.normal(size=(n, 2)).astype(np.float32))  # one step each
    if lengths:
        np.save(folder / "text_lengths.npy", 1 + np.arange(n) % 6)
    splits = splits or ["train"] * (n - 4) + ["valid"] * 2 + ["test"] * 2
    columns = columns or {"label": [f"{x:.2f}" for x in np.linspace(-3, 3, n)]}
    header = ["id", "split", *columns]
    with (folder / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for i in range(n):
            writer.writerow([f"clip{i}", splits[i], *(values[i] for values in columns.values())])
    return folder


def test_folder_reads_every_split_with_lengths_and_labels(tmp_path):
    folder = write_folder(tmp_path / "mine")
    datasets = load_dataset(folder)
    assert list(datasets) == ["train", "valid", "test"]
    train, test = datasets["train"], datasets["test"]
    assert train.modalities == ("audio", "gaze", "text")  # in the order of their names
    assert train.feature_dims == {"audio": 3, "gaze": 2, "text": 4}
    assert len(train) == 5 and test.ids == ["clip7", "clip8"]
    text = np.load(folder / "text.npy")
    np.testing.assert_array_equal(test.features["text"], text[7:])
    assert isinstance(train.features["text"], np.memmap)  # contiguous rows stay mapped
    assert train.features["audio"].dtype == np.float32
    assert test.lengths["text"].tolist() == [2, 3] and test.lengths["audio"].tolist() == [5, 5]
    assert train.features["gaze"].shape == (5, 1, 2) and train.lengths["gaze"].tolist() == [1] * 5
    np.testing.assert_allclose(test.labels, [2.25, 3.0])
    batch = collate([test[0], test[1]])
    assert batch.features["text"].shape == (2, 3, 4) and batch.mask("text").sum() == 5


def test_interleaved_splits_raw_text_and_unimodal_labels(tmp_path):
    n = 6
    columns = {"label": ["0.5", "-1", "2", "0", "1.5", "-0.25"],
               "text_label": ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6"],
               "raw_text": ["hello, world", "a", "b", "c", "d", "e"]}
    folder = write_folder(tmp_path / "mine", n=n, splits=["train", "valid", "train", "test",
                                                          "train", "test"], columns=columns)
    datasets = load_arrays(folder)
    train = datasets["train"]
    assert train.ids == ["clip0", "clip2", "clip4"]
    np.testing.assert_array_equal(train.features["audio"],
                                  np.load(folder / "audio.npy")[[0, 2, 4]].astype(np.float32))
    np.testing.assert_allclose(train.unimodal_labels["text"], [0.1, 0.3, 0.5], rtol=1e-6)
    assert train.raw_text == ["hello, world", "b", "d"] and datasets["valid"].raw_text == ["a"]


def test_round_trip_through_the_folder_and_the_cache(tmp_path, write_pickle, make_mmsa):
    data = make_mmsa(aligned=False, sims=True)
    for split in data.values():
        split["modality_reliability"] = np.random.default_rng(0).uniform(size=(len(split["id"]), 3))
    original = load_mmsa(write_pickle(data), label_range=(-3, 3))
    folder = write_arrays(original, tmp_path / "arrays")
    back = load_arrays(folder)
    cached = load_dataset(convert_to_cache(folder, tmp_path / "cache"))
    for split, dataset in original.items():
        for copy in (back[split], cached[split]):
            assert copy.ids == dataset.ids and copy.raw_text == dataset.raw_text
            assert copy.extras.keys() == dataset.extras.keys() == {"modality_reliability"}
            np.testing.assert_array_equal(copy.extras["modality_reliability"],
                                          dataset.extras["modality_reliability"])
            np.testing.assert_array_equal(copy.labels, dataset.labels)
            assert copy.unimodal_labels.keys() == dataset.unimodal_labels.keys()
            for name in dataset.unimodal_labels:
                np.testing.assert_array_equal(copy.unimodal_labels[name],
                                              dataset.unimodal_labels[name])
            for name in dataset.modalities:
                np.testing.assert_array_equal(copy.lengths[name], dataset.lengths[name])
                for i in range(len(dataset)):  # every sample, cropped to its length
                    np.testing.assert_array_equal(copy[i]["features"][name],
                                                  dataset[i]["features"][name])


def test_token_ids_and_vocabulary_round_trip(tmp_path):
    splits = {split: dataset_from_arrays(
        {"text": [np.array([2, 3, 1]), np.array([4])][: n],
         "audio": np.ones((n, 2, 3), dtype=np.float32)},
        np.zeros(n), vocabulary=["<pad>", "<unk>", "a", "b", "c"], split=split)
        for split, n in (("train", 2), ("valid", 1), ("test", 1))}
    back = load_arrays(write_arrays(splits, tmp_path / "arrays"))
    assert back["train"].features["text"].dtype == np.int64
    assert back["train"].features["text"].tolist() == [[2, 3, 1], [4, 0, 0]]
    assert back["valid"].vocabulary == ["<pad>", "<unk>", "a", "b", "c"]
    assert back["train"].lengths["text"].tolist() == [3, 1]


def test_from_arrays_pads_sequences_and_checks_them():
    rng = np.random.default_rng(0)
    sequences = [rng.normal(size=(t, 3)) for t in (4, 1, 2)]
    dataset = dataset_from_arrays(
        {"eeg": sequences, "face": rng.normal(size=(3, 5, 2)).astype(np.float32)},
        np.array([0.5, -1.0, 2.0]), lengths={"face": np.array([5, 2, 1])}, split="train")
    assert dataset.modalities == ("eeg", "face") and dataset.ids == ["0", "1", "2"]
    assert dataset.lengths["eeg"].tolist() == [4, 1, 2]
    assert dataset.features["eeg"].shape == (3, 4, 3)
    assert dataset.features["eeg"].dtype == np.float32
    np.testing.assert_allclose(dataset[2]["features"]["eeg"], sequences[2], rtol=1e-6)
    assert not dataset.features["eeg"][1, 1:].any()
    assert dataset[1]["features"]["face"].shape == (2, 2)
    vectors = dataset_from_arrays({"a": [np.ones(3), np.zeros(3)]}, np.zeros(2))
    assert vectors.features["a"].shape == (2, 1, 3)

    bad = [({"a": [np.ones((2, 3)), np.ones((2, 4))]}, {}, "malformed sequence"),
           ({"a": [np.ones((2, 3)), np.ones((0, 3))]}, {}, "malformed sequence"),
           ({"a": np.ones((2, 3, 4, 5))}, {}, "wrong rank"),
           ({"a": np.full((2, 3, 4), np.nan)}, {}, "NaN or infinite"),
           ({"a": [np.ones((2, 3))] * 2}, {"lengths": {"a": [1, 1]}}, "lengths given twice"),
           ({"a": np.ones((2, 3, 4))}, {"lengths": {"b": [1, 1]}}, "unknown modality"),
           ({"a": np.ones((2, 3, 4))}, {"lengths": {"a": [1, 9]}}, "length outside"),
           ({"a": np.ones((3, 3, 4))}, {}, "disagree on the number of samples")]
    for features, options, problem in bad:
        with pytest.raises(DatasetError, match=problem):
            dataset_from_arrays(features, np.zeros(2), **options)


@pytest.mark.parametrize("change, problem, field", [
    (lambda d: (d / "labels.csv").unlink(), "unrecognised dataset path", None),
    (lambda d: (d / "labels.csv").write_text("id,label\nclip0,1\n"), "missing column 'split'",
     None),
    (lambda d: _add_column(d, "mood"), "unknown column", "mood"),
    (lambda d: _add_column(d, "vision_label"), "unknown column", "vision_label"),
    (lambda d: _edit_cell(d, 3, 1, "dev"), "unknown split", "line 3"),
    (lambda d: _edit_cell(d, 4, 0, "clip0"), "repeated id", "line 4"),
    (lambda d: _edit_cell(d, 5, 2, "high"), "label is not a number", "label, line 5"),
    (lambda d: _edit_cell(d, 5, 2, "nan"), "NaN or infinite label", "label, line 5"),
    (lambda d: _edit_cell(d, 5, 2, "-inf"), "NaN or infinite label", "label, line 5"),
    (lambda d: np.save(d / "text.npy", np.zeros((8, 6, 4))), "wrong shape.*8, 6, 4", "shape"),
    (lambda d: np.save(d / "text.npy", np.array([[None]] * 9), allow_pickle=True),
     "wrong dtype.*a pickle", "dtype"),
    (lambda d: np.save(d / "text_lengths.npy", np.full(9, 1.5)), "wrong dtype", "dtype"),
    (lambda d: np.save(d / "text_lengths.npy", np.full(9, 7)), "length outside", "text_lengths"),
    (lambda d: (d / "vocabulary.json").write_text("{}"), "malformed vocabulary", None),
])
def test_bad_folders(tmp_path, change, problem, field):
    folder = write_folder(tmp_path / "mine")
    change(folder)
    with pytest.raises(DatasetError, match=problem) as info:
        load_dataset(folder)
    assert str(folder) in str(info.value)
    if field is not None:
        assert info.value.field == field


def _edit_cell(folder, line, column, value):
    with (folder / "labels.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    rows[line - 1][column] = value
    with (folder / "labels.csv").open("w", newline="") as file:
        csv.writer(file).writerows(rows)


def _add_column(folder, name):
    with (folder / "labels.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    with (folder / "labels.csv").open("w", newline="") as file:
        csv.writer(file).writerows([rows[0] + [name]] + [row + ["1"] for row in rows[1:]])


def test_ids_may_repeat_across_splits(tmp_path):
    folder = write_folder(tmp_path / "mine")
    _edit_cell(folder, 8, 0, "clip0")  # line 8 is in 'valid', clip0 in 'train'
    datasets = load_arrays(folder)
    assert datasets["valid"].ids == ["clip5", "clip0"] and datasets["train"].ids[0] == "clip0"


def test_a_split_without_samples_and_the_label_range(tmp_path):
    folder = write_folder(tmp_path / "mine", n=4, splits=["train", "train", "test", "test"])
    with pytest.raises(DatasetError, match="none of 'valid'"):
        load_arrays(folder)
    folder = write_folder(tmp_path / "other")
    with pytest.raises(DatasetError, match=r"labels in \[-1, 1\]"):
        load_dataset(folder, label_range=(-1, 1))


def test_write_refuses_a_folder_with_files(tmp_path, write_pickle, make_mmsa):
    datasets = load_mmsa(write_pickle(make_mmsa()))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write_arrays(datasets, tmp_path / "full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.pkl", "full"]
    (tmp_path / "empty").mkdir()
    assert load_arrays(write_arrays(datasets, tmp_path / "empty"))["test"].ids == \
        datasets["test"].ids


def test_dhmd_describe_and_convert_a_folder(tmp_path, capsys):
    folder = write_folder(tmp_path / "mine")
    assert main(["describe", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "train: 5 samples" in out and "gaze     shape (5, 1, 2)" in out
    assert main(["convert", str(folder), str(tmp_path / "cache")]) == 0
    _edit_cell(folder, 2, 2, "x")
    assert main(["convert", str(folder), str(tmp_path / "other")]) == 2
    assert "label is not a number" in capsys.readouterr().err
