"""The MulT-format reader, and load_dataset telling MulT from MMSA pickles."""

import pickle

import numpy as np
import pytest

from dhmd_graph.data import convert_to_cache, load_dataset
from dhmd_graph.data.errors import DatasetError
from dhmd_graph.data.labels import IEMOCAP4_EMOTIONS
from dhmd_graph.data.loading import pickle_format
from dhmd_graph.data.mult import load_mult

DIMS = {"text": 6, "audio": 4, "vision": 5}
SIZES = {"train": 5, "valid": 3, "test": 4}


def iemocap_labels(n, rng):
    """(n, 4, 2) one-hot per emotion, one emotion present per sample (as in IEMOCAP)."""
    present = np.eye(4, dtype=int)[rng.integers(0, 4, n)]  # (n, 4)
    return np.eye(2, dtype=np.float32)[present]


def mult_split(n, labels, *, seed=0, ids=True):
    rng = np.random.default_rng(seed)
    split = {m: rng.normal(size=(n, 7, d)).astype(np.float32) for m, d in DIMS.items()}
    split["labels"] = labels(n, rng)
    if ids:
        split["id"] = np.array([[f"vid{i}".encode(), b"1.5", b"3.0"] for i in range(n)])
    return split


def mult_data(labels=iemocap_labels, **options):
    return {split: mult_split(n, labels, seed=i, **options)
            for i, (split, n) in enumerate(SIZES.items())}


def test_iemocap_layout_reads_as_four_named_multi_hot_labels(write_pickle):
    data = mult_data()
    data["train"]["audio"][0, 2, 1] = -np.inf
    splits = load_mult(write_pickle(data))
    train = splits["train"]
    assert list(splits) == ["train", "valid", "test"] and len(splits["test"]) == 4
    assert train.label_kind == "multi_hot" and train.labels.shape == (5, 4)
    assert train.label_names == IEMOCAP4_EMOTIONS
    np.testing.assert_array_equal(train.labels, data["train"]["labels"].argmax(2))
    assert (train.labels.sum(1) == 1).all()
    assert train.features["audio"][0, 2, 1] == 0.0  # -inf set to 0, as MulT does
    assert {m: a.shape for m, a in train.features.items()} == {
        "text": (5, 7, 6), "audio": (5, 7, 4), "vision": (5, 7, 5)}
    assert all((length == 7).all() for length in train.lengths.values())  # no lengths: all valid
    assert train.ids[2] == "vid2$_$1.5_3.0"


def test_sentiment_layout_reads_as_scores(write_pickle):
    scores = mult_data(lambda n, rng: rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32), ids=False)
    splits = load_mult(write_pickle(scores))
    assert splits["valid"].label_kind == "score" and splits["valid"].labels.shape == (3,)
    np.testing.assert_array_equal(splits["valid"].labels, scores["valid"]["labels"][:, 0, 0])
    assert splits["valid"].ids == ["valid_0", "valid_1", "valid_2"]
    scores["test"]["labels"][1, 0, 0] = 3.5
    with pytest.raises(DatasetError, match=r"split 'test', field 'labels'.*3.5 at sample 1"):
        load_mult(write_pickle(scores))


def test_integer_labels_read_as_classes(write_pickle):
    data = mult_data(lambda n, rng: np.arange(n) % 3)  # classes 0..2 in every split
    splits = load_mult(write_pickle(data))
    assert splits["train"].label_kind == "class" and splits["train"].num_classes == 3
    assert splits["train"].labels.dtype == np.int64
    named = load_mult(write_pickle(data), label_names=["a", "b", "c", "d"])
    assert named["test"].num_classes == 4 and named["test"].label_names == ("a", "b", "c", "d")
    # Whole-number floats read as classes when asked.
    floats = mult_data(lambda n, rng: (np.arange(n) % 2).astype(np.float32).reshape(n, 1, 1))
    forced = load_mult(write_pickle(floats), label_kind="class")
    assert forced["valid"].labels.tolist() == [0, 1, 0] and forced["valid"].num_classes == 2


def _pair_not_one_hot(data):
    data["valid"]["labels"][2] = [[1, 0], [1, 1], [1, 0], [1, 0]]  # "present and absent"


@pytest.mark.parametrize("mutate, split, field, found", [
    (_pair_not_one_hot, "valid", "labels", "[[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]] at sample 2"),
    (lambda d: d["test"].pop("labels"), "test", "labels", "fields ['audio', 'id', 'text',"),
    (lambda d: d.pop("valid"), "valid", None, "keys ['test', 'train']"),
    (lambda d: d["train"].__setitem__("vision", np.zeros((5, 7))), "train", "vision",
     "shape (5, 7)"),
    (lambda d: d["test"]["text"].__setitem__((0, 0, 0), np.nan), "test", "text", "sample 0"),
    (lambda d: d["train"].__setitem__("labels", np.zeros((5, 1, 1), np.float32)), "train",
     "labels", "train: score, valid: multi_hot"),
    (lambda d: d["test"]["labels"].__setitem__((1, 0), [0.5, 0.5]), "test", "labels",
     "at sample 1"),
])
def test_invalid_files_name_file_split_field(write_pickle, mutate, split, field, found):
    data = mult_data()
    mutate(data)
    path = write_pickle(data)
    with pytest.raises(DatasetError) as info:
        load_mult(path)
    error = info.value
    assert error.file == str(path) and error.field == field
    assert error.split == split or (split == "train" and error.split is None)
    assert found in str(error) and error.fix


def test_refuses_unsafe_pickles_and_other_objects(tmp_path, write_pickle):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": Payload()}))
    with pytest.raises(DatasetError, match="forbidden global.*'builtins.print'"):
        load_mult(path)
    with pytest.raises(DatasetError, match="not a MulT pickle"):
        load_mult(write_pickle([1, 2]))
    with pytest.raises(ValueError, match="label_kind must be one of"):
        load_mult(write_pickle(mult_data()), label_kind="ordinal")


def test_load_dataset_tells_mult_from_mmsa(write_pickle, make_mmsa):
    mult_path = write_pickle(mult_data(), "iemocap_data.pkl")
    mmsa = make_mmsa()
    for split in mmsa.values():
        split["classification_labels"] = np.arange(len(split["id"])) % 3
    mmsa_path = write_pickle(mmsa, "aligned_50.pkl")
    assert load_dataset(mult_path)["train"].label_kind == "multi_hot"
    assert load_dataset(mmsa_path)["train"].label_kind == "score"
    assert pickle_format(mult_data()) == "mult" and pickle_format(make_mmsa()) == "mmsa"
    assert pickle_format([1]) == "mmsa"
    # An explicit format wins: read as MMSA, the MulT file lacks MMSA's fields.
    with pytest.raises(DatasetError, match="missing field.*'regression_labels'"):
        load_dataset(mult_path, format="mmsa")
    # Reader options travel through load_dataset.
    classes = load_dataset(mmsa_path, labels="classification")
    assert classes["train"].label_kind == "class"
    with pytest.raises(ValueError, match="format must be one of"):
        load_dataset(mult_path, format="hdf5")
    with pytest.raises(DatasetError, match="unrecognised dataset path.*drop format='cache'"):
        load_dataset(mult_path, format="cache")


def test_a_mult_file_converts_to_a_cache_with_its_labels(tmp_path, write_pickle):
    path = write_pickle(mult_data())
    cache = convert_to_cache(path, tmp_path / "cache", format="mult")
    cached = load_dataset(cache)
    assert cached["train"].label_kind == "multi_hot"
    assert cached["train"].label_names == IEMOCAP4_EMOTIONS
    np.testing.assert_array_equal(cached["test"].labels, load_mult(path)["test"].labels)
    mtime = (cache / "manifest.json").stat().st_mtime_ns
    assert convert_to_cache(path, cache, format="mult") == cache  # same source and options
    assert (cache / "manifest.json").stat().st_mtime_ns == mtime
    with pytest.raises(DatasetError, match="another cache already exists"):
        convert_to_cache(path, cache, format="mult", label_names=list("abcd"))
    with pytest.raises(ValueError, match="apply to pickle files only"):
        load_dataset(cache, label_kind="class")


def test_describe_counts_classes_and_labels(write_pickle):
    from dhmd_graph.data.loading import describe

    text = describe(load_mult(write_pickle(mult_data())))
    assert "labels   4 multi-hot labels, 1.00 present per sample" in text
    train = load_mult(write_pickle(mult_data()))["train"]
    happy = int(train.labels[:, 1].sum())
    assert f"happy | {'#' * max(1, round(40 * happy / train.labels.sum(0).max()))} {happy}" in text
    classes = describe(load_mult(write_pickle(mult_data(lambda n, rng: np.arange(n) % 3))))
    assert "labels   3 classes, one per sample" in classes
    assert "  0 | " in classes and "  2 | " in classes


def test_classes_beyond_the_sentiment_range_convert_and_read_back(write_pickle, tmp_path):
    import json

    from dhmd_graph.data import convert_to_cache, load_cache

    data = mult_data(lambda n, rng: np.arange(n) % 6)  # classes 0..5: outside [-3, 3]
    cache = convert_to_cache(write_pickle(data), tmp_path / "cache")
    assert json.loads((cache / "manifest.json").read_text())["label_range"] is None
    train = load_cache(cache, verify=True)["train"]
    assert train.label_kind == "class" and train.labels.tolist() == data["train"]["labels"].tolist()


@pytest.mark.parametrize("labels, found", [
    (lambda n, rng: rng.integers(0, 2, size=(n, 4, 3)), "shape (5, 4, 3)"),
    (lambda n, rng: np.zeros((n, 0, 2), np.float32), "shape (5, 0, 2)"),
    (lambda n, rng: np.zeros((n, 0), np.int64), "shape (5, 0)"),
    (lambda n, rng: np.zeros((n, 2, 1), np.float32), "shape (5, 2, 1)"),
    (lambda n, rng: np.zeros((n, 1, 1, 1), np.float32), "shape (5, 1, 1, 1)"),
    (lambda n, rng: np.array([2_000_000_000] + [0] * (n - 1)), "class index too large"),
])
def test_unexpected_label_layouts_are_refused_through_the_cli(write_pickle, tmp_path, capsys,
                                                               labels, found):
    """(N, 4, 3) labels, an empty class axis and a class id of two billion: exit 2 with
    one line naming the file and the labels, nothing written, and nothing allocated per
    class (a class id of 2e9 would ask for gigabytes)."""
    from dhmd_graph.cli import main

    path = write_pickle(mult_data(labels))
    for argv in (["describe", str(path)], ["convert", str(path), str(tmp_path / "cache")]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "Traceback" not in error
        assert f"file '{path}'" in error and "field 'labels'" in error and found in error
    assert not (tmp_path / "cache").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
